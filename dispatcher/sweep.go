package dispatcher

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// sweepBatch is how many held deliveries one sweep round takes at once.
const sweepBatch = 256

// settleMargin is added to AckWait before deliveries that wait for a retry
// are read straight from the stream (after a 410 or a delete): by then
// every send in flight at that moment has ended, acked or NAKed, even in a
// dispatcher that saw the change a little late.
const settleMargin = time.Second

// sweep dead-letters the held deliveries that passed their deadline (or lie
// below a 410's mark), oldest first and in batches, and returns the next
// time it has to look. Everything it knows comes from JetStream: the
// consumer's ack floor and the stream (a work queue, so every message in it
// is unsettled, and deadlines follow stream order), never from this
// process's memory, so a restart or another dispatcher sweeps the same.
// A held backlog costs no pending slots and no timers: the head is read,
// not taken, until it is due.
func (w *worker) sweep(ctx, sendCtx context.Context) time.Time {
	cfg := w.d.cfg
	for ctx.Err() == nil {
		v := w.d.catalog.get(w.id)
		if v == nil || v.ep == nil {
			return time.Time{}
		}
		ci, err := w.consumer.Info(ctx)
		if err != nil {
			w.log.Warn("consumer info", "err", err)
			return cfg.Now().Add(time.Second)
		}
		if v.status() == streams.StatusDisabled && (v.health == nil || !v.health.Held) && ci.NumPending+uint64(ci.NumAckPending) > 0 {
			w.d.health.markHeld(ctx, w.id)
		}
		now := cfg.Now()
		var next time.Time
		if h := v.health; h != nil && h.GoneSeq > w.goneDone {
			// Retries waiting at the 410 may be hours away: once every
			// send in flight then has ended, read them from the stream.
			if settle := h.GoneAt.Add(cfg.AckWait + settleMargin); now.Before(settle) {
				next = settle
			} else if err := w.sweepStream(ctx, ci.AckFloor.Stream, h.GoneSeq, streams.ReasonEndpointGone); err != nil {
				w.log.Warn("dead-letter retries at 410", "err", err)
				return now.Add(time.Second)
			} else {
				w.goneDone = h.GoneSeq
				continue
			}
		}
		head, err := w.d.deliveries.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(w.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return next
		}
		if err != nil {
			w.log.Warn("read backlog head", "err", err)
			return now.Add(time.Second)
		}
		deadline := head.Time.Add(cfg.RetryMaxAge)
		gone := v.health != nil && v.health.GoneSeq >= head.Sequence
		if !gone && now.Before(deadline) {
			return earliest(next, deadline)
		}
		if w.takeHeld(ctx, sendCtx) == 0 {
			// The head is due but not to be had: in flight elsewhere (a
			// probe), or waiting for a retry below a 410's mark.
			return earliest(next, now.Add(min(cfg.PullWait, cfg.AckWait/4)))
		}
	}
	return time.Time{}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// takeHeld takes what the consumer gives now (due retries first, then the
// unread backlog), dead-letters what must be (in one batch) and puts back
// the rest until its deadline. It returns how many it dead-lettered.
func (w *worker) takeHeld(ctx, sendCtx context.Context) int {
	batch, err := w.consumer.FetchNoWait(sweepBatch)
	if err != nil {
		return 0
	}
	now := w.d.cfg.Now()
	v := w.d.catalog.get(w.id)
	var dead []*deadItem
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		dl, ok := w.d.decode(sendCtx, w, m, meta)
		if !ok {
			continue
		}
		deadline := meta.Timestamp.Add(w.d.cfg.RetryMaxAge)
		reason := heldReason(v, meta.Sequence.Stream, deadline, now)
		if reason == "" {
			_ = m.NakWithDelay(max(w.d.cfg.RetryMinDelay, deadline.Sub(now)))
			continue
		}
		dead = append(dead, &deadItem{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, dl: dl, reason: reason})
	}
	return w.d.deadLetter(sendCtx, w.id, dead, w.log)
}

// sweepStream dead-letters, from the stream itself, the endpoint's
// deliveries with sequences in (floor, upto]: the ones that wait for a retry
// (taken by no one now). Each is removed from the stream once its record is
// stored, which drops it from the consumer's pending set too.
func (w *worker) sweepStream(ctx context.Context, floor, upto uint64, reason string) error {
	subj := w.subject
	var items []*deadItem
	flush := func() {
		w.d.deadLetter(ctx, w.id, items, w.log)
		items = items[:0]
	}
	for seq := floor + 1; seq <= upto; {
		raw, err := w.d.deliveries.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			flush()
			return err
		}
		if raw.Sequence > upto {
			break
		}
		seq = raw.Sequence + 1
		it := &deadItem{seq: raw.Sequence, stored: raw.Time, reason: reason}
		var dl streams.Delivery
		if err := streams.Unmarshal(raw.Data, &dl); err != nil {
			it.raw, it.reason = raw.Data, streams.ReasonUndecodable
		} else {
			it.dl = &dl
		}
		if items = append(items, it); len(items) == sweepBatch {
			flush()
		}
	}
	flush()
	return nil
}

// drainDeleted dead-letters every delivery of a deleted endpoint
// (endpoint_deleted): what the consumer gives at once, then, when every send
// in flight at the deletion has ended, those waiting for a retry, read from
// the stream. Then it removes the consumer and the endpoint's keys. It
// reports whether the endpoint is gone for good.
func (w *worker) drainDeleted(ctx, sendCtx context.Context, v *endpointView) bool {
	cfg := w.d.cfg
	for ctx.Err() == nil {
		batch, err := w.consumer.FetchNoWait(sweepBatch)
		if err != nil {
			w.sleep(ctx, time.Second)
			return false
		}
		var dead []*deadItem
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			dl, ok := w.d.decode(sendCtx, w, m, meta)
			if !ok {
				continue
			}
			dead = append(dead, &deadItem{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, dl: dl, reason: streams.ReasonEndpointDeleted})
		}
		if len(dead) == 0 {
			break
		}
		w.d.deadLetter(sendCtx, w.id, dead, w.log)
	}
	if settle := v.ep.UpdatedAt.Add(cfg.AckWait + settleMargin); cfg.Now().Before(settle) {
		w.sleep(ctx, settle.Sub(cfg.Now()))
		return false
	}
	w.mu.Lock()
	busy := w.inflight > 0
	w.mu.Unlock()
	if busy {
		w.sleep(ctx, 50*time.Millisecond)
		return false
	}
	ci, err := w.consumer.Info(ctx)
	if err != nil {
		w.sleep(ctx, time.Second)
		return false
	}
	if err := w.sweepStream(ctx, ci.AckFloor.Stream, math.MaxUint64, streams.ReasonEndpointDeleted); err != nil {
		w.log.Warn("dead-letter deleted endpoint's retries", "err", err)
		w.sleep(ctx, time.Second)
		return false
	}
	if w.lane >= 0 {
		return w.removeLane(ctx, v)
	}
	return w.d.removeEndpoint(ctx, w.id, 0) == nil
}
