package dispatcher

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// strayInterval is how often, in PullWaits, a dispatcher looks for stray
// deliveries: 60 s by default.
const strayInterval = 6

// janitor dead-letters (endpoint_deleted) the deliveries that no consumer
// will ever settle: those whose endpoint's key is gone. A fan-out or a
// replay in a process that had not yet seen a deletion can publish after the
// deleted endpoint's consumer was removed; without the janitor such a
// delivery would sit in DELIVERIES until its max age deleted it, with no
// record. Every dispatcher runs it; two at once write each record once.
func (d *Dispatcher) janitor(ctx context.Context) {
	t := time.NewTicker(strayInterval * d.cfg.PullWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.sweepStrays(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("stray deliveries", "err", err)
		}
	}
}

// sweepStrays makes one pass of the janitor.
func (d *Dispatcher) sweepStrays(ctx context.Context) error {
	info, err := d.deliveries.Info(ctx, jetstream.WithSubjectFilter(streams.SubjectDeliveries+".>"))
	if err != nil {
		return err
	}
	var errs []error
	for subj := range info.State.Subjects {
		// deliveries.<ep> or a lane of an ordered one, deliveries.<ep>.<lane>.
		id := streams.EndpointOfSubject(subj)
		if _, err := d.endpointsKV.Get(ctx, id); !errors.Is(err, jetstream.ErrKeyNotFound) {
			// Its endpoint exists (or is being deleted): its worker settles
			// them. An error is looked at again next time.
			continue
		}
		consumer := streams.DeliveryConsumer(id)
		if lane := strings.TrimPrefix(subj, streams.DeliverySubject(id)+"."); lane != subj {
			n, err := strconv.Atoi(lane)
			if err != nil {
				continue // not a subject hookstream writes
			}
			consumer = streams.LaneConsumer(id, n)
		}
		// No endpoint, so no worker: a consumer left behind has nobody
		// sending through it.
		if err := d.js.DeleteConsumer(ctx, streams.StreamDeliveries, consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, err)
			continue
		}
		w := &worker{d: d, id: id, lane: -1, subject: subj, log: d.log.With("endpoint", id)}
		if err := w.sweepStream(ctx, 0, math.MaxUint64, streams.ReasonEndpointDeleted); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
