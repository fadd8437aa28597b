package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/streams"
)

// An ordered endpoint is delivered through lanes: a key's events hash to
// one of the endpoint's partitions (streams.LaneOf), the ordered fan-out
// stores each lane's deliveries in EVENTS order on deliveries.<ep>.<lane>,
// and each lane has its own durable consumer with MaxAckPending 1 and its
// own worker here (the same health, probe, sweep and drain logic as an
// unordered endpoint's worker, on its own subject). JetStream, not this
// process, keeps a lane to one delivery in flight: across dispatchers,
// through the whole retry schedule of a failed delivery (NAK-delayed, it
// keeps the lane's one slot) and across crashes. A dead letter (expired,
// 410, deleted) terminates or removes the delivery and frees the lane.
//
// Slots: every send of every lane takes one of the endpoint's slots
// (slots.take), so an ordered endpoint has at most min(concurrency,
// partitions) in flight. A lane pulls first and takes a slot second (an
// idle lane must not sit on a slot, or ten idle lanes would starve six busy
// ones); the one delivery it holds meanwhile is its lane's head, which no
// other dispatcher could send anyway, and it goes back (a plain NAK, not an
// attempt) if no slot frees within a third of AckWait.

// startLanes starts the missing lane workers of ordered endpoint id.
// Called with d.mu held.
func (d *Dispatcher) startLanesLocked(id string, partitions int) []*worker {
	ws := d.lanes[id]
	for len(ws) < partitions {
		ws = append(ws, nil)
	}
	var started []*worker
	for lane := 0; lane < partitions; lane++ {
		if ws[lane] != nil {
			continue
		}
		w := newLaneWorker(d, id, lane)
		ws[lane] = w
		started = append(started, w)
		runCtx, sendCtx := d.runCtx, d.sendCtx
		d.goBG(func() {
			w.run(runCtx, sendCtx)
			d.mu.Lock()
			defer d.mu.Unlock()
			cur := d.lanes[id]
			if w.lane < len(cur) && cur[w.lane] == w {
				cur[w.lane] = nil
			}
			for _, o := range cur {
				if o != nil {
					return
				}
			}
			delete(d.lanes, id)
			delete(d.limiters, id)
			if d.workers[id] == nil {
				d.slots.forget(id)
			}
		})
	}
	d.lanes[id] = ws
	return started
}

// lanesOf is the lane workers of endpoint id (a lane past a reduced
// partition count included, until it retires).
func (d *Dispatcher) lanesOf(id string) []*worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*worker(nil), d.lanes[id]...)
}

// laneLimiter is the rate limiter the lanes of endpoint id share in this
// process (its share of the endpoint's rate across dispatchers).
func (d *Dispatcher) laneLimiter(id string, r rate.Limit) *rate.Limiter {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.limiters[id]
	if l == nil || l.Limit() != r {
		l = rate.NewLimiter(r, 1)
		d.limiters[id] = l
	}
	return l
}

// laneFreed wakes every lane of endpoint id that waits for a slot.
func (d *Dispatcher) laneFreed(id string) {
	d.mu.Lock()
	ws := append([]*worker(nil), d.lanes[id]...)
	d.mu.Unlock()
	for _, w := range ws {
		if w == nil {
			continue
		}
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}
}

// activeLane sends a healthy ordered endpoint's lane: it pulls the lane's
// head (JetStream gives it only once the previous delivery is settled),
// then takes a slot and a token, then sends it, and returns so the loop
// looks at the endpoint's state again.
func (w *worker) activeLane(ctx, sendCtx context.Context, v *endpointView) {
	share, r := w.limits(v)
	if share <= 0 {
		w.sleep(ctx, w.d.cfg.PullWait)
		return
	}
	// The pull is never cancelled from this side: a delivery the server
	// hands to a pull the client gave up would be lost in flight and hold
	// the lane for a whole AckWait. It expires on the server instead, soon
	// enough for a change of health to be noticed.
	batch, err := w.consumer.Fetch(1, jetstream.FetchMaxWait(min(w.d.cfg.PullWait, time.Second)))
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("fetch lane", "err", err)
			w.sleep(ctx, 100*time.Millisecond)
		}
		return
	}
	for m := range batch.Messages() {
		if cur := w.d.catalog.get(w.id); cur == nil || cur.ep == nil || cur.ep.Deleted || cur.status() != streams.StatusHealthy {
			_ = m.Nak() // not an attempt: the loop looks at the endpoint again
			return
		}
		if !w.laneSlot(ctx, v) {
			_ = m.Nak() // not an attempt: the lane's head, for whoever has a slot
			return
		}
		if r != rate.Inf {
			if err := w.d.laneLimiter(w.id, r).Wait(ctx); err != nil {
				w.d.slots.put(w.id, 1)
				_ = m.Nak()
				return
			}
		}
		w.start(sendCtx, m, false)
	}
}

// laneSlot takes one of this process's slots of the endpoint for a lane
// holding its head, waiting at most a third of AckWait.
func (w *worker) laneSlot(ctx context.Context, v *endpointView) bool {
	conc := w.conc(v)
	t := time.NewTimer(w.d.cfg.AckWait / 3)
	defer t.Stop()
	for {
		if n, _ := w.d.slots.take(w.id, conc, 1); n == 1 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-w.freed:
		}
	}
}

// retire ends a lane worker that no longer belongs to its endpoint (a lane
// past a reduced partition count) once its lane is empty: its consumer is
// removed. A lane that still holds deliveries keeps being delivered.
func (w *worker) retire(ctx context.Context) bool {
	n, err := w.d.subjectCount(ctx, w.subject)
	if err != nil || n > 0 {
		return false
	}
	cc := w.consumerConfig()
	if err := w.d.js.DeleteConsumer(ctx, streams.StreamDeliveries, cc.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		w.log.Warn("remove retired lane's consumer", "err", err)
	}
	return true
}

// subjectCount is how many deliveries DELIVERIES holds on subject
// (wildcards allowed).
func (d *Dispatcher) subjectCount(ctx context.Context, subject string) (uint64, error) {
	info, err := d.deliveries.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// removeLane ends a deleted ordered endpoint's drained lane: its consumer
// goes, and lane 0's worker, once every lane is empty, removes the other
// lanes' consumers and the endpoint's keys. It reports whether this worker
// is done.
func (w *worker) removeLane(ctx context.Context, v *endpointView) bool {
	w.drained = true
	if w.lane != 0 {
		cc := w.consumerConfig()
		if err := w.d.js.DeleteConsumer(ctx, streams.StreamDeliveries, cc.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			w.log.Warn("remove drained lane's consumer", "err", err)
			w.sleep(ctx, time.Second)
			return false
		}
		return true
	}
	n, err := w.d.subjectCount(ctx, streams.DeliverySubject(w.id)+".>")
	if err != nil || n > 0 {
		w.sleep(ctx, min(w.d.cfg.PullWait, time.Second))
		return false
	}
	return w.d.removeEndpoint(ctx, w.id, max(v.ep.Lanes(), len(w.d.lanesOf(w.id)))) == nil
}
