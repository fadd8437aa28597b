package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
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
// stored order. The rule that keeps it so: an event's lane deliveries are
// published only once every earlier event was fanned out and acked, and
// events are acked only in EVENTS order. So:
//
//   - The fan-out takes a contiguous run of events starting right after the
//     consumer's ack floor (its own last ack, or the floor JetStream
//     reports): nothing earlier is pending anywhere. What it was handed
//     beyond the run (a crashed dispatcher's events not yet due again, or
//     another dispatcher's run not yet acked) goes back, NAKed with a short
//     delay, and comes again once the floor has reached it. This holds for
//     any number of dispatchers, after a crash, and whatever order
//     JetStream redelivers in.
//   - Within a run, each lane's deliveries are published one after the
//     other, the next only once the previous is stored: a lane's stored
//     deliveries are always a prefix of the run's, in order. A failed
//     publish is retried in place (its Nats-Msg-Id makes a retry of a
//     stored one a duplicate).
//   - Acks go in EVENTS order and stop at the first event not fully
//     stored within half an AckWait: it and every later event of the run
//     are NAKed and come back; their deliveries already stored answer as
//     duplicates, keeping their place.
//   - One dispatcher at a time is handed the events (a pinned priority
//     group), so that the others do not fetch runs only to put them back;
//     the pin moves after PinnedTTL without a pull from the pinned one.
//     Correctness does not rest on it: two dispatchers cannot both hold the
//     event after the floor, while a run takes less than its AckWait.
type orderedFanout struct {
	cfg      Config
	js       jetstream.JetStream
	events   jetstream.Stream
	consumer jetstream.Consumer
	catalog  *catalog
	log      *slog.Logger
	metrics  *metrics

	// floor is the EVENTS sequence up to which every event is known acked
	// on the ordered fan-out consumer (by this process, or as JetStream
	// last reported).
	floor uint64
}

// orderedFetchWait bounds one pull of the ordered fan-out.
func orderedFetchWait(c Config) time.Duration { return min(c.PullWait, 5*time.Second) }

// orderedPutBack is how soon an event handed out of turn comes again.
const orderedPutBack = 100 * time.Millisecond

// fanoutOrderedConsumerConfig is the durable consumer on EVENTS that feeds
// the lanes of ordered endpoints.
func fanoutOrderedConsumerConfig(c Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        streams.ConsumerFanoutOrdered,
		Description:    "fans events out to the lanes of ordered endpoints, in order",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.FanoutBatch,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubject:  streams.SubjectEvents + ".>",
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{orderedGroup},
		// A crashed pinned dispatcher's events come due after AckWait;
		// another takes over about then.
		PinnedTTL: c.AckWait + orderedFetchWait(c),
	}
}

func (f *orderedFanout) run(ctx context.Context) {
	defer f.unpin()
	for ctx.Err() == nil {
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
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			if len(batch.Messages()) == 0 {
				f.handle(ctx, msgs)
				msgs = msgs[:0]
			}
		}
		if len(msgs) > 0 {
			f.handle(ctx, msgs)
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, context.Canceled) && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			// 423 (another dispatcher is pinned) and the like: nothing was
			// handed to us.
			f.log.Debug("ordered fan-out pull", "err", err)
			waitCtx(ctx, orderedPutBack)
		}
	}
}

// unpin lets another dispatcher take the ordered fan-out at once after a
// stop.
func (f *orderedFanout) unpin() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.events.UnpinConsumer(ctx, streams.ConsumerFanoutOrdered, orderedGroup); err != nil {
		f.log.Debug("ordered fan-out unpin", "err", err)
	}
}

// seqMsg is a fetched event with its EVENTS sequence.
type seqMsg struct {
	msg jetstream.Msg
	seq uint64
}

// handle processes the run of msgs that starts right after the ack floor
// and puts the rest back.
func (f *orderedFanout) handle(ctx context.Context, msgs []jetstream.Msg) {
	items := make([]seqMsg, 0, len(msgs))
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			_ = m.NakWithDelay(orderedPutBack)
			continue
		}
		items = append(items, seqMsg{msg: m, seq: meta.Sequence.Stream})
	}
	slices.SortFunc(items, func(a, b seqMsg) int { return cmp.Compare(a.seq, b.seq) })
	n := f.runLength(ctx, items)
	for _, it := range items[n:] {
		_ = it.msg.NakWithDelay(orderedPutBack)
	}
	if n > 0 {
		f.process(ctx, items[:n])
	}
}

// runLength is how many of items (sorted) form a run that may be fanned
// out now: events at or below the floor (redeliveries of events already
// fanned out, whose deliveries answer as duplicates), then events that
// follow the floor without a gap.
func (f *orderedFanout) runLength(ctx context.Context, items []seqMsg) int {
	i := 0
	for i < len(items) && items[i].seq <= f.floor {
		i++
	}
	if i == len(items) {
		return i
	}
	if items[i].seq != f.floor+1 {
		// Another dispatcher may have moved the floor, or the stream has
		// deleted sequences in between: ask.
		if ci, err := f.consumer.Info(ctx); err == nil && ci.AckFloor.Stream > f.floor {
			f.floor = ci.AckFloor.Stream
		}
		for i < len(items) && items[i].seq <= f.floor {
			i++
		}
		if i == len(items) {
			return i
		}
		if items[i].seq != f.floor+1 && !f.gapDeleted(ctx, f.floor+1, items[i].seq) {
			return 0
		}
	}
	next := items[i].seq
	for i < len(items) && items[i].seq == next {
		i++
		next++
	}
	return i
}

// gapDeleted reports whether EVENTS holds none of the sequences in
// [from, to): then nothing is pending between the floor and to.
func (f *orderedFanout) gapDeleted(ctx context.Context, from, to uint64) bool {
	if to-from > 64 {
		return false
	}
	for seq := from; seq < to; seq++ {
		if _, err := f.events.GetMsg(ctx, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false
		}
	}
	return true
}

// lanePub is one delivery to publish on a lane, for event ev of the batch.
type lanePub struct {
	ev    int
	ep    string
	msgID string
	data  []byte
}

// process fans a run of events out to the lanes of ordered endpoints and
// acks, in order, those whose deliveries were all stored, up to the first
// that is not; that one and the rest go back (see orderedFanout). A stop
// lets a run finish (bounded by its deadline): it is never left
// half-published by choice.
func (f *orderedFanout) process(ctx context.Context, items []seqMsg) {
	deadline := time.Now().Add(f.cfg.AckWait / 2)
	msgs := make([]jetstream.Msg, len(items))
	for i := range items {
		msgs[i] = items[i].msg
	}
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
			f.log.Warn("ordered fan-out: endpoint catalog stale; events put back", "err", err, "events", len(msgs))
			for _, m := range msgs {
				_ = m.NakWithDelay(fanoutRetryDelay)
			}
			return
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
				// read it. The events after it wait (the floor stops
				// here): finish the upgrade of every dispatcher.
				f.log.Warn("ordered fan-out: event of an envelope version this build cannot read; held for a newer dispatcher",
					"subject", m.Subject(), "err", err)
				work[i].pending = 1
				continue
			}
			// The unordered fan-out logs it; nothing to deliver.
			_ = m.TermWithReason("undecodable")
			continue
		}
		work[i].id, work[i].seq = ev.ID, items[i].seq
		for _, v := range ordered {
			if !v.ep.Matches(&ev) {
				continue
			}
			d := streams.Delivery{Event: ev, EndpointID: v.ep.ID, EventSeq: items[i].seq}
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
	// The acked prefix: every event up to the first not fully stored.
	done := len(work)
	for i := range work {
		if work[i].pending > 0 {
			done = i
			break
		}
	}
	now := f.cfg.Now().UTC()
	futs := make([]jetstream.PubAckFuture, done)
	for i := range work[:done] {
		w := &work[i]
		if w.skip || len(w.idx) == 0 {
			continue
		}
		f.metrics.fannedOut(len(w.idx))
		b, err := streams.Marshal(&streams.EventIndex{EventID: w.id, Seq: w.seq, FannedOutAt: now, Deliveries: w.idx})
		if err == nil {
			futs[i], err = f.js.PublishAsync(streams.IndexSubject(w.id), b)
		}
		if err != nil {
			f.log.Warn("ordered fan-out: index entry", "err", err, "event", w.id)
		}
	}
	for i := range work[:done] {
		w := &work[i]
		if futs[i] != nil {
			if _, err := waitAck(wctx, futs[i]); err != nil {
				// The deliveries are stored; only GET /v1/events/{id} misses
				// them.
				f.log.Warn("ordered fan-out: index entry", "err", err, "event", w.id)
			}
		}
		if !w.skip {
			if err := w.msg.Ack(); err != nil {
				f.log.Warn("ordered fan-out ack", "err", err)
			}
		}
		f.floor = max(f.floor, items[i].seq)
	}
	if done < len(work) {
		f.log.Warn("ordered fan-out: deliveries not stored in time; the events from the first not stored on go back, in order",
			"events", len(work)-done, "from_seq", items[done].seq)
		for i := range work[done:] {
			_ = work[done+i].msg.NakWithDelay(fanoutRetryDelay)
		}
	}
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
		ack, err := f.js.Publish(ctx, subj, p.data, jetstream.WithMsgID(p.msgID))
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
