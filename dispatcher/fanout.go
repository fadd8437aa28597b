package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// fanoutRetryDelay is how long an event whose fan-out failed waits before it
// is tried again (its INDEX entry keeps the deliveries made so far from
// being made twice).
const fanoutRetryDelay = time.Second

// fanout turns each event in EVENTS into one delivery per subscribed
// unordered endpoint (orderedFanout feeds the ordered ones' lanes). An
// event is acked only after every delivery message and its index entry
// were stored, so a crash half-way makes the event come back; the second
// pass skips the endpoints the first pass's INDEX entry names.
type fanout struct {
	cfg      Config
	js       jetstream.JetStream
	consumer jetstream.Consumer
	catalog  *catalog
	log      *slog.Logger
	metrics  *metrics
}

func (f *fanout) run(ctx context.Context) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, f.cfg.PullWait)
		batch, err := f.consumer.Fetch(f.cfg.FanoutBatch, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				f.log.Warn("fan-out fetch", "err", err)
				waitCtx(ctx, fanoutRetryDelay)
			}
			continue
		}
		var msgs []jetstream.Msg
		stale := false
		for m := range batch.Messages() {
			if stale {
				// The rest of the pull goes back too, as it arrives: none
				// waits here for the catalog.
				f.putBack(m)
				continue
			}
			msgs = append(msgs, m)
			// Take what is there now rather than wait for a full batch:
			// fan-out latency is delivery latency.
			if len(batch.Messages()) == 0 {
				stale = !f.process(ctx, msgs)
				msgs = msgs[:0]
			}
		}
		cancel()
		if len(msgs) > 0 && !stale {
			stale = !f.process(ctx, msgs)
		}
		if stale {
			f.waitFresh(ctx)
		}
	}
}

// catchUpWait bounds how long fan-out, holding a group of events, waits for
// the catalog to apply the endpoints bucket as of now: well inside AckWait,
// so that no event is sent again to another dispatcher meanwhile.
func (f *fanout) catchUpWait() time.Duration {
	return min(f.cfg.AckWait/4, 5*time.Second)
}

// putBack returns an event that cannot be fanned out from a stale catalog.
// It is not a failure: it comes back after fanoutRetryDelay, to this
// dispatcher or another.
func (f *fanout) putBack(m jetstream.Msg) {
	if err := m.NakWithDelay(fanoutRetryDelay); err != nil {
		f.log.Warn("fan-out nak", "err", err, "subject", m.Subject())
	}
}

// waitFresh waits, holding no event, until the catalog is up and caught up
// again (or ctx ends).
func (f *fanout) waitFresh(ctx context.Context) {
	for ctx.Err() == nil {
		f.catalog.waitUp(ctx)
		cctx, cancel := context.WithTimeout(ctx, f.catchUpWait())
		err := f.catalog.caughtUp(cctx)
		cancel()
		if err == nil {
			return
		}
		waitCtx(ctx, fanoutRetryDelay)
	}
}

// process fans out a group of events with all their publishes in flight at
// once, then acks each event whose publishes were all stored. When the
// catalog is stale (a watch down, or not caught up within catchUpWait) it
// publishes nothing, puts every event back and reports false: an endpoint
// the catalog does not know yet must still receive them.
func (f *fanout) process(ctx context.Context, msgs []jetstream.Msg) bool {
	wctx, cancelWait := context.WithTimeout(ctx, f.catchUpWait())
	err := f.catalog.caughtUp(wctx)
	cancelWait()
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("fan-out: endpoint catalog stale; events put back", "err", err, "events", len(msgs))
		}
		for _, m := range msgs {
			f.putBack(m)
		}
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	eps := f.catalog.all()
	work := make([]pendingEvent, len(msgs))
	outstanding, done := 0, 0
	for i, m := range msgs {
		if outstanding >= maxOutstandingPublishes {
			// Keep the async publish window bounded (an event to a
			// thousand endpoints is a thousand publishes).
			f.settle(cctx, work[done:i])
			done, outstanding = i, 0
		}
		work[i].msg = m
		var ev streams.Event
		if err := streams.Unmarshal(m.Data(), &ev); err != nil {
			work[i].msg = nil
			if errors.Is(err, streams.ErrVersion) {
				// A newer build's event (a rolling upgrade): left for a
				// dispatcher that can read it.
				f.metrics.unreadable("version")
				f.log.Warn("fan-out: event of an envelope version this build cannot read; left for a newer dispatcher",
					"subject", m.Subject(), "err", err, "retry_in", unknownVersionRetry)
				_ = m.NakWithDelay(unknownVersionRetry)
				continue
			}
			// Bytes no version can read: nothing to deliver. Terminated so
			// it is not redelivered forever; it stays in EVENTS, where an
			// operator finds it by the log line's sequence.
			f.metrics.unreadable("corrupt")
			f.log.Error("fan-out: undecodable event set aside in EVENTS", "subject", m.Subject(), "seq", metaSeq(m), "err", err)
			_ = m.TermWithReason("undecodable")
			continue
		}
		meta, err := m.Metadata()
		if err != nil {
			work[i].err = err
			continue
		}
		work[i].ev = ev.ID
		work[i].seq = meta.Sequence.Stream
		// An event seen before (a fan-out that failed, crashed or timed
		// out half-way) skips the endpoints its INDEX entry shows a
		// delivery for. Deliveries carry no Nats-Msg-Id: de-duplicating
		// them would keep an id per delivery in the server's memory for
		// the whole duplicate window, to guard against a redelivery that
		// this check covers (only a crash between a delivery's store and
		// its event's INDEX entry sends one twice; receivers de-duplicate
		// on the event id).
		var made map[string]bool
		if meta.NumDelivered > 1 {
			idx, err := streams.FindIndex(cctx, f.js, ev.ID)
			if err != nil {
				work[i].err = fmt.Errorf("read INDEX entry of a redelivered event: %w", err)
				continue
			}
			if idx != nil {
				work[i].indexed = true
				made = make(map[string]bool, len(idx.Deliveries))
				for _, d := range idx.Deliveries {
					made[d.Endpoint] = true
				}
			}
		}
		for _, v := range eps {
			// Ordered endpoints' lanes are fed by the ordered fan-out.
			if v.ep.Deleted || v.ep.Ordered || made[v.ep.ID] || !v.ep.Matches(&ev) {
				continue
			}
			d := streams.Delivery{Event: ev, EndpointID: v.ep.ID}
			b, err := streams.Marshal(&d)
			if err != nil {
				work[i].err = err
				break
			}
			fut, err := f.js.PublishAsync(streams.DeliverySubject(v.ep.ID), b)
			if err != nil {
				work[i].err = err
				break
			}
			work[i].futures = append(work[i].futures, fut)
			work[i].targets = append(work[i].targets, v.ep.ID)
		}
		if work[i].err != nil {
			continue
		}
		outstanding += len(work[i].futures)
		f.metrics.fannedOut(len(work[i].targets))
	}
	f.settle(cctx, work[done:])
	return true
}

// maxOutstandingPublishes bounds the delivery publishes in flight at once.
const maxOutstandingPublishes = 1024

type pendingEvent struct {
	msg     jetstream.Msg
	ev      string
	seq     uint64
	targets []string
	futures []jetstream.PubAckFuture
	index   jetstream.PubAckFuture
	// indexed is set when an INDEX entry of an earlier pass was found:
	// no entry is written again unless this pass made deliveries.
	indexed bool
	err     error
}

// settle waits for each event's delivery publishes, writes its INDEX entry
// with their sequences (all entries in flight together), and acks each
// event once its entry is stored too. An event any of whose publishes
// failed is NAKed with a delay; the entry of the deliveries that were
// stored is written all the same, so the next pass makes only the others.
func (f *fanout) settle(cctx context.Context, work []pendingEvent) {
	now := f.cfg.Now().UTC()
	for i := range work {
		w := &work[i]
		if w.msg == nil || w.err != nil {
			continue
		}
		idx := streams.EventIndex{EventID: w.ev, Seq: w.seq, FannedOutAt: now, Deliveries: make([]streams.IndexDelivery, 0, len(w.futures))}
		for k, fut := range w.futures {
			ack, err := waitAck(cctx, fut)
			if err != nil {
				w.err = err
				continue
			}
			idx.Deliveries = append(idx.Deliveries, streams.IndexDelivery{Endpoint: w.targets[k], Seq: ack.Sequence})
		}
		// An event whose earlier pass left an entry needs another only
		// for deliveries made now; a failed pass needs one only for those
		// it stored.
		if (w.indexed || w.err != nil) && len(idx.Deliveries) == 0 {
			continue
		}
		b, err := streams.Marshal(&idx)
		if err == nil {
			w.index, err = f.js.PublishAsync(streams.IndexSubject(w.ev), b)
		}
		if w.err == nil {
			w.err = err
		}
	}
	for i := range work {
		w := &work[i]
		if w.msg == nil {
			continue
		}
		err := w.err
		if w.index != nil {
			if _, ierr := waitAck(cctx, w.index); err == nil {
				err = ierr
			}
		}
		if err != nil {
			f.log.Warn("fan-out failed; event will be tried again", "err", err, "subject", w.msg.Subject())
			_ = w.msg.NakWithDelay(fanoutRetryDelay)
			continue
		}
		if err := w.msg.Ack(); err != nil {
			f.log.Warn("fan-out ack", "err", err)
		}
	}
}

func metaSeq(m jetstream.Msg) uint64 {
	if meta, err := m.Metadata(); err == nil {
		return meta.Sequence.Stream
	}
	return 0
}

func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// fanoutConsumerConfig is the durable consumer on EVENTS.
func fanoutConsumerConfig(c Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       streams.ConsumerFanout,
		Description:   "fans events out to deliveries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4 * c.FanoutBatch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: streams.SubjectEvents + ".>",
	}
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cc.Durable, stream, err)
	}
	return c, nil
}
