package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// orderedGroup is the priority group of the ordered fan-out consumer.
const orderedGroup = "ordered"

// orderedFanout fans EVENTS out to the lanes of ordered endpoints. A lane's
// deliveries must be stored in EVENTS order, whatever fails and however many
// dispatchers run, since its consumer (MaxAckPending 1) hands them out in
// stored order. So, unlike the fan-out of unordered endpoints:
//
//   - One dispatcher at a time fans out to lanes: the consumer is a pinned
//     priority group; the server hands events to the pinned client alone
//     and pins another only after PinnedTTL without a pull from it.
//     PinnedTTL is above AckWait, so by the time another dispatcher gets
//     events, those a crashed one held are due for redelivery and come
//     first (redeliveries are served before new messages).
//   - It takes one batch at a time and publishes each lane's deliveries one
//     after the other, the next only once the previous is stored: a lane's
//     stored deliveries are always a prefix of the batch's, in order, never
//     with a gap that a later publish could fill out of order. A failed
//     publish is retried in place (de-duplicated by its Nats-Msg-Id), not
//     NAKed: a NAKed event would come back after newer ones.
//   - A batch whose publishes cannot all be stored within half an AckWait
//     is abandoned: the events whose deliveries were all stored are acked;
//     the rest are not, and the fan-out waits until they are due for
//     redelivery before it fetches again, so they come back first. Their
//     lanes stopped at the failed delivery, so nothing of theirs was stored
//     after it.
//
// What it does not cover: a pinned dispatcher that stalls (not crashed, not
// pulling) for longer than PinnedTTL and then resumes its batch could
// publish alongside the newly pinned one.
type orderedFanout struct {
	cfg      Config
	js       jetstream.JetStream
	events   jetstream.Stream
	consumer jetstream.Consumer
	catalog  *catalog
	log      *slog.Logger
	metrics  *metrics
}

// orderedFetchWait bounds one pull of the ordered fan-out: a pinned client
// must pull again within PinnedTTL.
func orderedFetchWait(c Config) time.Duration { return min(c.PullWait, 5*time.Second) }

// fanoutOrderedConsumerConfig is the durable consumer on EVENTS that feeds
// the lanes of ordered endpoints.
func fanoutOrderedConsumerConfig(c Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        streams.ConsumerFanoutOrdered,
		Description:    "fans events out to the lanes of ordered endpoints, one dispatcher at a time",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.FanoutBatch,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubject:  streams.SubjectEvents + ".>",
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{orderedGroup},
		// Above the longest gap between two pulls of a live pinned client
		// (a batch abandoned: up to AckWait and a second, plus a pull), and
		// above AckWait, so that a crashed client's events are due for
		// redelivery when another is pinned.
		PinnedTTL: 2*c.AckWait + orderedFetchWait(c) + 2*time.Second,
	}
}

func (f *orderedFanout) run(ctx context.Context) {
	clean := true
	defer func() {
		if clean {
			f.unpin()
		}
	}()
	for ctx.Err() == nil {
		fetchStart := time.Now()
		fctx, cancel := context.WithTimeout(ctx, orderedFetchWait(f.cfg))
		batch, err := f.consumer.Fetch(f.cfg.FanoutBatch, jetstream.FetchContext(fctx), jetstream.FetchPriorityGroup(orderedGroup))
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				f.log.Warn("ordered fan-out fetch", "err", err)
				waitCtx(ctx, fanoutRetryDelay)
			}
			continue
		}
		var msgs []jetstream.Msg
		var first time.Time
		abandoned := false
		for m := range batch.Messages() {
			if len(msgs) == 0 {
				first = time.Now()
			}
			msgs = append(msgs, m)
			if len(batch.Messages()) == 0 {
				if abandoned = !f.process(ctx, msgs, first); abandoned {
					break
				}
				msgs = msgs[:0]
			}
		}
		if !abandoned && len(msgs) > 0 {
			abandoned = !f.process(ctx, msgs, first)
		}
		cancel()
		clean = !abandoned
		if abandoned {
			// Not one more event until the unacked ones are due again (the
			// last the server may have handed this pull went out before it
			// expired): the next pull gets them first.
			waitCtx(ctx, time.Until(fetchStart.Add(orderedFetchWait(f.cfg)+f.cfg.AckWait+time.Second)))
			clean = ctx.Err() == nil
		} else if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, context.Canceled) && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			// 423 (another dispatcher is pinned) and the like: nothing was
			// handed to us.
			f.log.Debug("ordered fan-out pull", "err", err)
			waitCtx(ctx, 100*time.Millisecond)
		}
	}
}

// unpin lets another dispatcher take the ordered fan-out at once after a
// stop. It is safe only because run returns between batches: every group
// was settled, or abandoned and its wait for redelivery cut short by the
// stop — then another dispatcher could be handed newer events before those
// come due; that is why an abandoned run does not unpin.
func (f *orderedFanout) unpin() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.events.UnpinConsumer(ctx, streams.ConsumerFanoutOrdered, orderedGroup); err != nil {
		f.log.Debug("ordered fan-out unpin", "err", err)
	}
}

// lanePub is one delivery to publish on a lane, for event ev of the batch.
type lanePub struct {
	ev    int
	ep    string
	msgID string
	data  []byte
}

// process fans a group of events out to the lanes of ordered endpoints
// and acks those whose deliveries were all stored; it reports false when
// it had to abandon some (see orderedFanout). A stop lets a group finish
// (bounded by its deadline): it is never left half-published by choice.
func (f *orderedFanout) process(ctx context.Context, msgs []jetstream.Msg, first time.Time) bool {
	deadline := first.Add(f.cfg.AckWait / 2)
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(wctx, f.catchUpWaitTime())
		err := f.catalog.caughtUp(cctx)
		ccancel()
		if err == nil {
			break
		}
		if wctx.Err() != nil {
			f.log.Warn("ordered fan-out: endpoint catalog stale; events left for redelivery", "err", err, "events", len(msgs))
			return false
		}
		waitCtx(wctx, 100*time.Millisecond)
	}
	var ordered []*endpointView
	for _, v := range f.catalog.all() {
		if v.ep.Ordered && !v.ep.Deleted {
			ordered = append(ordered, v)
		}
	}
	type evWork struct {
		msg     jetstream.Msg
		id      string
		seq     uint64
		pending int // deliveries not stored yet
		skip    bool
		idx     []streams.IndexDelivery
	}
	work := make([]evWork, len(msgs))
	lanes := map[string][]lanePub{}
	var laneOrder []string
	for i, m := range msgs {
		work[i].msg = m
		var ev streams.Event
		if err := streams.Unmarshal(m.Data(), &ev); err != nil {
			work[i].skip = true
			if errors.Is(err, streams.ErrVersion) {
				// A newer build's event: left for a dispatcher that can
				// read it. It loses its place among its key's events.
				f.log.Warn("ordered fan-out: event of an envelope version this build cannot read; left for a newer dispatcher",
					"subject", m.Subject(), "err", err)
				_ = m.NakWithDelay(unknownVersionRetry)
				continue
			}
			// The unordered fan-out logs it; nothing to deliver.
			_ = m.TermWithReason("undecodable")
			continue
		}
		meta, err := m.Metadata()
		if err != nil {
			work[i].skip = true
			continue
		}
		work[i].id, work[i].seq = ev.ID, meta.Sequence.Stream
		for _, v := range ordered {
			if !v.ep.Matches(&ev) {
				continue
			}
			d := streams.Delivery{Event: ev, EndpointID: v.ep.ID, EventSeq: meta.Sequence.Stream}
			b, err := streams.Marshal(&d)
			if err != nil {
				f.log.Error("ordered fan-out: encode delivery", "err", err)
				continue
			}
			subj := streams.DeliveryTarget(v.ep, &ev)
			if _, ok := lanes[subj]; !ok {
				laneOrder = append(laneOrder, subj)
			}
			lanes[subj] = append(lanes[subj], lanePub{ev: i, ep: v.ep.ID, msgID: d.MsgID(), data: b})
			work[i].pending++
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, subj := range laneOrder {
		wg.Add(1)
		go func(subj string, pubs []lanePub) {
			defer wg.Done()
			for _, p := range pubs {
				seq, ok := f.publishInPlace(wctx, subj, p)
				if !ok {
					return // the lane stops here: nothing after it
				}
				mu.Lock()
				work[p.ev].pending--
				work[p.ev].idx = append(work[p.ev].idx, streams.IndexDelivery{Endpoint: p.ep, Seq: seq})
				mu.Unlock()
			}
		}(subj, lanes[subj])
	}
	wg.Wait()
	complete := true
	now := f.cfg.Now().UTC()
	futs := make([]jetstream.PubAckFuture, len(work))
	for i := range work {
		w := &work[i]
		if w.skip {
			continue
		}
		if w.pending > 0 {
			complete = false
			continue
		}
		if len(w.idx) == 0 {
			continue
		}
		f.metrics.fannedOut(len(w.idx))
		b, err := streams.Marshal(&streams.EventIndex{EventID: w.id, Seq: w.seq, FannedOutAt: now, Deliveries: w.idx})
		if err == nil {
			futs[i], err = f.js.PublishAsync(streams.IndexSubject(w.id), b, jetstream.WithExpectStream(streams.StreamIndex))
		}
		if err != nil {
			f.log.Warn("ordered fan-out: index entry", "err", err, "event", w.id)
		}
	}
	for i := range work {
		w := &work[i]
		if w.skip || w.pending > 0 {
			continue
		}
		if futs[i] != nil {
			if _, err := waitAck(wctx, futs[i]); err != nil {
				// The deliveries are stored; only GET /v1/events/{id} misses
				// them. Sent again, the lanes would store nothing twice.
				f.log.Warn("ordered fan-out: index entry", "err", err, "event", w.id)
			}
		}
		if err := w.msg.Ack(); err != nil {
			f.log.Warn("ordered fan-out ack", "err", err)
		}
	}
	if !complete {
		f.log.Warn("ordered fan-out: deliveries not stored in time; their events are left for redelivery, in order", "events", len(msgs))
	}
	return complete
}

func (f *orderedFanout) catchUpWaitTime() time.Duration {
	return min(f.cfg.AckWait/4, 5*time.Second)
}

// publishInPlace stores one lane delivery, trying again (the Nats-Msg-Id
// makes a retry of a stored one a duplicate, answered with its sequence)
// until it is stored or ctx ends.
func (f *orderedFanout) publishInPlace(ctx context.Context, subj string, p lanePub) (uint64, bool) {
	delay := 50 * time.Millisecond
	for {
		ack, err := f.js.Publish(ctx, subj, p.data, jetstream.WithMsgID(p.msgID), jetstream.WithExpectStream(streams.StreamDeliveries))
		if err == nil {
			return ack.Sequence, true
		}
		if ctx.Err() != nil {
			return 0, false
		}
		f.log.Warn("ordered fan-out: lane publish failed; trying again in place", "subject", subj, "err", err)
		waitCtx(ctx, delay)
		delay = min(2*delay, time.Second)
	}
}
