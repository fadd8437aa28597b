package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/streams"
)

// worker delivers one endpoint's deliveries in this process. A healthy
// endpoint's worker pulls as many deliveries as it may have in flight now
// (its share of the endpoint's concurrency, within its rate limit); a
// failing one's sends one probe at a time at backoff intervals; a failing or
// disabled one's leaves the backlog unread in JetStream and only
// dead-letters what passes its deadline.
type worker struct {
	d    *Dispatcher
	id   string
	log  *slog.Logger
	wake chan struct{}
	// lane is the lane of an ordered endpoint this worker delivers, -1 for
	// an unordered endpoint's worker; subject is what its consumer reads.
	lane    int
	subject string

	consumer jetstream.Consumer

	mu       sync.Mutex
	inflight int
	freed    chan struct{} // signalled when a send ends
	limiter  *rate.Limiter
	// goneDone is the 410 mark whose waiting retries this process swept
	// (a cache: another process sweeps the same mark harmlessly).
	goneDone uint64
	// drained is set once a deleted ordered endpoint's lane was drained.
	drained bool

	sends sync.WaitGroup
	done  chan struct{}
}

func newWorker(d *Dispatcher, id string) *worker {
	return &worker{
		d: d, id: id, log: d.log.With("endpoint", id), lane: -1, subject: streams.DeliverySubject(id),
		wake: make(chan struct{}, 1), freed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// newLaneWorker is the worker of one lane of an ordered endpoint.
func newLaneWorker(d *Dispatcher, id string, lane int) *worker {
	return &worker{
		d: d, id: id, log: d.log.With("endpoint", id, "lane", lane), lane: lane, subject: streams.LaneSubject(id, lane),
		wake: make(chan struct{}, 1), freed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// consumerConfig is the durable consumer this worker reads.
func (w *worker) consumerConfig() jetstream.ConsumerConfig {
	if w.lane >= 0 {
		return laneConsumerConfig(w.d.cfg, w.id, w.lane)
	}
	return deliveryConsumerConfig(w.d.cfg, w.id)
}

// misplaced reports whether this worker no longer belongs to the endpoint
// as configured: an unordered endpoint's worker for an ordered endpoint
// (never the case for a live endpoint: ordered cannot change), or a lane
// past its partitions (after a lane change, which is refused while any
// lane holds a delivery).
func (w *worker) misplaced(ep *streams.Endpoint) bool {
	if ep.Deleted {
		return false
	}
	if w.lane < 0 {
		return ep.Ordered
	}
	return !ep.Ordered || w.lane >= ep.Lanes()
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run is the worker's loop; it returns when ctx ends or the endpoint is gone
// for good. In-flight sends run on sendCtx so that a graceful stop lets them
// finish.
func (w *worker) run(ctx, sendCtx context.Context) {
	defer close(w.done)
	defer w.sends.Wait()
	for ctx.Err() == nil {
		v := w.d.catalog.get(w.id)
		if v == nil || v.ep == nil {
			return
		}
		if w.misplaced(v.ep) && w.retire(ctx) {
			return
		}
		if v.ep.Deleted && w.drained {
			if w.removeLane(ctx, v) {
				return
			}
			continue
		}
		if w.consumer == nil && v.ep.Deleted {
			// A deleted endpoint's consumer is never made again: if it is
			// gone, the endpoint (or this lane) was removed already (its
			// strays are the janitor's).
			c, err := w.d.js.Consumer(ctx, streams.StreamDeliveries, w.consumerConfig().Durable)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				if w.lane >= 0 {
					// A lane without a consumer has nothing in flight: what
					// it holds (a lane never read before the deletion) is
					// dead-lettered from the stream.
					if err := w.sweepStream(ctx, 0, math.MaxUint64, streams.ReasonEndpointDeleted); err != nil {
						w.log.Warn("dead-letter deleted endpoint's lane", "err", err)
						w.sleep(ctx, time.Second)
						continue
					}
					w.drained = true
					continue
				}
				_ = w.d.removeEndpoint(ctx, w.id, 0)
				return
			}
			if err == nil {
				w.consumer = c
			}
		}
		if w.consumer == nil {
			c, err := w.d.ensureDeliveryConsumer(ctx, w.consumerConfig())
			if err != nil {
				w.log.Warn("delivery consumer", "err", err)
				w.sleep(ctx, time.Second)
				continue
			}
			w.consumer = c
		}
		if v.ep.Deleted {
			if w.drainDeleted(ctx, sendCtx, v) {
				return
			}
			continue
		}
		switch v.status() {
		case streams.StatusHealthy:
			if w.lane >= 0 {
				w.activeLane(ctx, sendCtx, v)
				break
			}
			w.active(ctx, sendCtx, v)
		case streams.StatusFailing:
			w.failing(ctx, sendCtx, v)
		default:
			w.hold(ctx, sendCtx, v, time.Time{})
		}
	}
}

// sleep waits d, or less when poked or stopped.
func (w *worker) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-t.C:
	}
}

// conc is the endpoint's concurrency across every dispatcher.
func (w *worker) conc(v *endpointView) int {
	if v.ep.Concurrency > 0 {
		return v.ep.Concurrency
	}
	return w.d.cfg.Concurrency
}

// limits returns this process's share of the endpoint's concurrency and
// rate limit, as allocated by the slots shared with the other dispatchers
// (exact: together they never exceed the endpoint's figures).
func (w *worker) limits(v *endpointView) (int, rate.Limit) {
	conc := w.conc(v)
	return w.d.slots.share(w.id, conc), w.d.slots.rate(w.id, conc, v.ep.RateLimit)
}

// active sends a healthy endpoint's deliveries. Without a rate limit it
// keeps one continuous pull open, sized to this process's share of the
// endpoint's concurrency, instead of a pull request per freed slot (one
// endpoint was capped near 5.5k/s by those); with one, it pulls a delivery
// only once a token is there. It returns when the endpoint's state or this
// process's share changes, so the loop looks again.
func (w *worker) active(ctx, sendCtx context.Context, v *endpointView) {
	share, r := w.limits(v)
	if share <= 0 {
		// Another dispatcher holds every slot now.
		w.sleep(ctx, w.d.cfg.PullWait)
		return
	}
	if r != rate.Inf {
		w.activeLimited(ctx, sendCtx, v, r)
		return
	}
	// A short idle heartbeat: when the iterator's count of messages asked
	// for drifts from the server's (nats.go#1622 under load), no pull is
	// open and nothing flows until two heartbeats are missed; with the
	// default (half the expiry) that stalled an endpoint for 10 s at a time.
	it, err := w.consumer.Messages(jetstream.PullMaxMessages(share), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		w.log.Warn("pull deliveries", "err", err)
		w.sleep(ctx, 100*time.Millisecond)
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A change of health or of the share ends the stream.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-sctx.Done():
				return
			case <-w.wake:
				cur := w.d.catalog.get(w.id)
				if cur == nil || cur.ep == nil || cur.ep.Deleted || cur.status() != streams.StatusHealthy {
					cancel()
					return
				}
				if s, nr := w.limits(cur); s != share || nr != r {
					cancel()
					return
				}
			}
		}
	}()
	for sctx.Err() == nil {
		// A slot first, then the next delivery: what is pulled waits in
		// memory at most until a send ends, never for its AckWait. The
		// send must begin while this process's lease on the slot holds.
		until, ok := w.waitSlot(sctx, v)
		if !ok {
			break
		}
		nctx, ncancel := context.WithDeadline(sctx, until)
		m, err := it.Next(jetstream.NextContext(nctx))
		ncancel()
		if err != nil {
			w.d.slots.put(w.id, 1)
			if sctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				continue // the lease ran out; a share change ends the stream
			}
			if sctx.Err() == nil {
				w.log.Warn("pull deliveries", "err", err)
				w.sleep(ctx, 100*time.Millisecond)
			}
			break
		}
		w.start(sendCtx, m, false)
	}
	cancel()
	<-watchDone
	// What was pulled and not sent goes back (not an attempt) rather than
	// wait out its AckWait here: at once while the endpoint is healthy (the
	// share changed), else behind the retries that are due, so that a
	// failing endpoint's probes try those first.
	held := false
	if cur := w.d.catalog.get(w.id); cur == nil || cur.ep == nil || cur.status() != streams.StatusHealthy {
		held = true
	}
	it.Drain()
	for {
		m, err := it.Next()
		if err != nil {
			break
		}
		if !held {
			_ = m.Nak()
			continue
		}
		delay := w.d.cfg.RetryInitial
		if meta, err := m.Metadata(); err == nil {
			delay = min(delay, meta.Timestamp.Add(w.d.cfg.RetryMaxAge).Sub(w.d.cfg.Now()))
		}
		_ = m.NakWithDelay(max(delay, w.d.cfg.RetryMinDelay))
	}
}

// pullExpiry and pullHeartbeat are the continuous pull's request expiry and
// idle heartbeat: a missed pull is noticed, and a new one opened, within
// 2 × pullHeartbeat.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = 500 * time.Millisecond
)

// waitSlot takes one of this process's slots of the endpoint; the send
// must begin before the time returned. Every slot taken is given back (put)
// when its send ends, or at once when it goes unused.
func (w *worker) waitSlot(ctx context.Context, v *endpointView) (time.Time, bool) {
	conc := w.conc(v)
	for {
		if n, until := w.d.slots.take(w.id, conc, 1); n == 1 {
			return until, true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-w.freed:
		}
	}
}

// activeLimited sends a rate-limited endpoint's deliveries: one pull per
// token, so a delivery never waits in memory for its turn.
func (w *worker) activeLimited(ctx, sendCtx context.Context, v *endpointView, r rate.Limit) {
	if w.limiter == nil || w.limiter.Limit() != r {
		w.limiter = rate.NewLimiter(r, 1)
	}
	until, ok := w.waitSlot(ctx, v)
	if !ok {
		return
	}
	started := false
	defer func() {
		if !started {
			w.d.slots.put(w.id, 1)
		}
	}()
	if err := w.limiter.Wait(ctx); err != nil {
		return
	}
	fctx, cancel := context.WithDeadline(ctx, minTime(time.Now().Add(w.d.cfg.PullWait), until))
	defer cancel()
	// A health change (to failing or disabled) ends the pull early.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-stop:
		case <-fctx.Done():
		case <-w.wake:
			cancel()
		}
	}()
	batch, err := w.consumer.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			w.log.Warn("fetch deliveries", "err", err)
			w.sleep(ctx, 100*time.Millisecond)
		}
		return
	}
	for m := range batch.Messages() {
		started = true
		w.start(sendCtx, m, false)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// start sends m in its own goroutine, holding one in-flight slot.
func (w *worker) start(sendCtx context.Context, m jetstream.Msg, probe bool) {
	w.mu.Lock()
	w.inflight++
	w.mu.Unlock()
	w.sends.Add(1)
	go func() {
		defer w.sends.Done()
		defer func() {
			w.d.slots.put(w.id, 1)
			w.mu.Lock()
			w.inflight--
			w.mu.Unlock()
			if w.lane >= 0 {
				w.d.laneFreed(w.id)
			} else {
				select {
				case w.freed <- struct{}{}:
				default:
				}
			}
		}()
		w.d.deliver(sendCtx, w, m, probe)
	}()
}

// failing sends one probe when one is due and this process wins it, and
// otherwise holds the backlog until the next probe.
func (w *worker) failing(ctx, sendCtx context.Context, v *endpointView) {
	now := w.d.cfg.Now()
	h := v.health
	w.mu.Lock()
	busy := w.inflight > 0
	w.mu.Unlock()
	if !busy && !now.Before(h.NextProbe) {
		// A probe is a send like any other: it needs one of this
		// process's slots.
		if n, until := w.d.slots.take(w.id, w.conc(v), 1); n == 1 {
			sent := false
			if w.d.health.claimProbe(ctx, w.id, now) {
				fctx, cancel := context.WithDeadline(ctx, minTime(time.Now().Add(w.d.cfg.PullWait), until))
				batch, err := w.consumer.Fetch(1, jetstream.FetchContext(fctx))
				if err == nil {
					for m := range batch.Messages() {
						sent = true
						w.start(sendCtx, m, true)
					}
				}
				cancel()
			}
			if !sent {
				w.d.slots.put(w.id, 1)
			}
			if sent {
				return
			}
		}
	}
	w.hold(ctx, sendCtx, v, h.NextProbe)
}

// hold leaves the backlog unread, dead-letters what passed its deadline
// (or lies below a 410's mark), and waits for the next deadline, probe or
// change.
func (w *worker) hold(ctx, sendCtx context.Context, v *endpointView, nextProbe time.Time) {
	next := w.sweep(ctx, sendCtx)
	if !nextProbe.IsZero() && (next.IsZero() || nextProbe.Before(next)) {
		next = nextProbe
	}
	// Look again at least every PullWait: new deliveries arrive without a
	// wake-up, and a held backlog must be noticed (for the catch-up).
	wait := w.d.cfg.PullWait
	if !next.IsZero() {
		wait = min(wait, next.Sub(w.d.cfg.Now()))
	}
	w.sleep(ctx, wait)
}

// laneConsumerConfig is one lane's durable consumer on DELIVERIES. With
// MaxAckPending 1, JetStream never hands out a lane's next delivery before
// the previous one was acked or terminated (dead-lettered), across every
// dispatcher and through NAK-delayed retries (a NAK-delayed delivery keeps
// its slot), restarts and crashes (the consumer's state is durable).
func laneConsumerConfig(c Config, endpointID string, lane int) jetstream.ConsumerConfig {
	cc := deliveryConsumerConfig(c, endpointID)
	cc.Durable = streams.LaneConsumer(endpointID, lane)
	cc.Description = "deliveries to ordered endpoint " + endpointID + ", lane " + strconv.Itoa(lane)
	cc.FilterSubject = streams.LaneSubject(endpointID, lane)
	cc.MaxAckPending = 1
	cc.MaxWaiting = 64
	return cc
}

// deliveryConsumerConfig is an endpoint's durable consumer on DELIVERIES.
// No BackOff list: it would add to the NakWithDelay delays instead of
// yielding to them. MaxAckPending is large because a NAK-delayed delivery
// keeps its slot; in-flight concurrency is the dispatcher's own business.
func deliveryConsumerConfig(c Config, endpointID string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       streams.DeliveryConsumer(endpointID),
		Description:   "deliveries to endpoint " + endpointID,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: streams.DeliverySubject(endpointID),
		MaxWaiting:    512,
	}
}
