package dispatcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// deadItem is one delivery to dead-letter. It was taken through the
// endpoint's consumer (msg set: terminated once its record is stored), or
// read straight from the stream (msg nil: deleted from the stream once its
// record is stored, which also drops it from the consumer's pending set).
type deadItem struct {
	msg    jetstream.Msg
	seq    uint64
	stored time.Time // the delivery's JetStream timestamp
	dl     *streams.Delivery
	raw    []byte // the bytes of a delivery no version can read (dl nil)
	reason string
	// last is the attempt that ended it, if one did; st is the delivery's
	// state when the caller read it already.
	last *streams.Attempt
	st   *streams.DeliveryState

	// Filled in while the record is written.
	id    string
	skip  bool // written before (a crash before the terminate, a swept retry)
	err   error
	dup   bool
	state *streams.DeliveryState
}

// deadLetterParallel bounds the state look-ups of one batch in flight.
const deadLetterParallel = 32

// deadLetter writes the records of items, each acknowledged by JetStream,
// with their publishes in flight together, and only then settles each
// delivery. An item whose record could not be written is put back (or left
// in the stream) to be tried again: no delivery is ever dropped silently.
// It returns how many were settled.
func (d *Dispatcher) deadLetter(ctx context.Context, epID string, items []*deadItem, log *slog.Logger) int {
	if len(items) == 0 {
		return 0
	}
	now := d.cfg.Now().UTC()
	d.lookUpDead(ctx, epID, items)

	// The records, all in flight at once.
	futs := make([]jetstream.PubAckFuture, len(items))
	recs := make([]*streams.DeadLetter, len(items))
	for i, it := range items {
		if it.err != nil || it.skip {
			continue
		}
		rec := d.buildRecord(epID, it, now)
		b, err := streams.Marshal(rec)
		if err == nil {
			futs[i], err = d.js.PublishAsync(streams.DLQSubject(epID), b,
				jetstream.WithMsgID(rec.ID), jetstream.WithExpectStream(streams.StreamDLQ))
		}
		it.err, recs[i] = err, rec
	}
	acks := make([]*jetstream.PubAck, len(items))
	for i, f := range futs {
		if f != nil {
			acks[i], items[i].err = waitAck(ctx, f)
			if items[i].err != nil {
				items[i].err = fmt.Errorf("publish dead letter: %w", items[i].err)
			}
		}
	}
	// Then each record's state, created once: a key that exists already
	// means the record was written before, whatever the stream's
	// duplicate window.
	futs = make([]jetstream.PubAckFuture, len(items))
	for i, it := range items {
		if acks[i] == nil || it.err != nil {
			continue
		}
		rec := recs[i]
		it.dup = acks[i].Duplicate
		st := streams.DLQState{
			ID: rec.ID, State: streams.DLQStateDead, Seq: acks[i].Sequence, EndpointID: epID,
			EventID: rec.Event.ID, EventType: rec.Event.Type, Reason: it.reason, DeadAt: now, UpdatedAt: now,
		}
		b, err := streams.Marshal(&st)
		if err == nil {
			futs[i], err = d.js.PublishAsync(kvSubject(streams.BucketDLQState, rec.ID), b, jetstream.WithExpectLastSequencePerSubject(0))
		}
		it.err = err
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		if _, err := waitAck(ctx, f); err != nil && !isWrongLastSeq(err) {
			items[i].err = fmt.Errorf("dead letter state: %w", err)
		}
	}
	// The record is the delivery's state now: its own goes (it had one
	// only if an attempt failed).
	for i, it := range items {
		if acks[i] != nil && it.err == nil && it.dl != nil && it.state != nil && it.state.Attempts > 0 {
			d.purgeState(it.dl.Event.ID, epID)
		}
	}

	settled, lost := 0, 0
	for _, it := range items {
		l := log
		if it.dl != nil {
			l = log.With("event", it.dl.Event.ID, "generation", it.dl.Generation)
		}
		if it.err != nil {
			l.Error("dead-letter write failed; delivery kept", "reason", it.reason, "seq", it.seq, "err", it.err)
			if it.msg != nil {
				_ = it.msg.NakWithDelay(d.cfg.RetryMinDelay)
			}
			continue
		}
		if it.msg != nil {
			if err := it.msg.TermWithReason(it.reason); err != nil {
				l.Warn("terminate", "err", err)
			}
		} else if err := d.deliveries.DeleteMsg(ctx, it.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			l.Warn("remove dead-lettered delivery", "seq", it.seq, "err", err)
		}
		settled++
		if it.skip || it.dup {
			continue
		}
		if it.dl == nil || it.dl.Event.Type != streams.TypeWebhookCatchup {
			// A catch-up that itself fails never triggers another.
			lost++
		}
		d.metrics.deadLettered(epID, it.reason)
		l.Warn("dead-lettered", "reason", it.reason)
	}
	if lost > 0 {
		d.health.addLost(ctx, epID, lost)
	}
	return settled
}

// lookUpDead finds, for every item, whether its record exists already and,
// when the caller did not, the delivery's state (its attempt history), with
// the look-ups in flight together.
func (d *Dispatcher) lookUpDead(ctx context.Context, epID string, items []*deadItem) {
	sem := make(chan struct{}, deadLetterParallel)
	var wg sync.WaitGroup
	for _, it := range items {
		if it.dl != nil {
			it.id = streams.DeadLetterID(it.dl.MsgID())
		} else {
			it.id = streams.DeadLetterID(epID + ".seq." + strconv.FormatUint(it.seq, 10))
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := d.dlqState.Get(ctx, it.id); err == nil {
				it.skip = true
				return
			} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
				it.err = fmt.Errorf("dead letter state: %w", err)
				return
			}
			if it.dl == nil {
				return
			}
			st := it.st
			if st == nil {
				var err error
				st, _, _, err = streams.Get[streams.DeliveryState](ctx, d.deliveryState, streams.DeliveryKey(it.dl.Event.ID, epID))
				if err != nil {
					it.err = err
					return
				}
			}
			if st == nil || st.Generation != it.dl.Generation {
				st = &streams.DeliveryState{EventID: it.dl.Event.ID, EndpointID: epID, Generation: it.dl.Generation}
			}
			if it.last != nil {
				st.AddAttempt(*it.last)
				st.Attempts = max(st.Attempts, it.last.Attempt)
				// The attempt that ended it is in the attempt log too.
				d.logAttempt(it.last)
			}
			it.state = st
		}()
	}
	wg.Wait()
}

// buildRecord makes the record of one item.
func (d *Dispatcher) buildRecord(epID string, it *deadItem, now time.Time) *streams.DeadLetter {
	rec := &streams.DeadLetter{ID: it.id, EndpointID: epID, Reason: it.reason, DeadAt: now}
	if v := d.catalog.get(epID); v != nil && v.ep != nil {
		rec.URL = netguard.RedactURL(v.ep.URL)
	}
	if it.dl == nil {
		// Bytes no version can read: the record keeps them, base64, so an
		// operator sees what was set aside.
		data, _ := json.Marshal(map[string]any{
			"seq": it.seq, "stored": it.stored.UTC(), "raw_base64": base64.StdEncoding.EncodeToString(it.raw),
		})
		rec.Event = streams.Event{
			V: streams.EventVersion, ID: "undecodable:" + epID + ":" + strconv.FormatUint(it.seq, 10),
			Type: streams.TypeUndecodable, Source: "hookstream", Time: it.stored.UTC(), Data: data,
		}
		return rec
	}
	rec.Event, rec.Generation = it.dl.Event, it.dl.Generation
	if st := it.state; st != nil {
		rec.Attempts, rec.AttemptCount, rec.LastAttempt = st.History, st.Attempts, st.LastAttempt
		if len(st.History) > 0 {
			rec.FirstAttempt = st.History[0].Time
		}
	}
	return rec
}

func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

func waitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case a := <-f.Ok():
		return a, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// isWrongLastSeq is the answer to a create of a key that exists.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
