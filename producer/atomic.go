package producer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/hookstream/hookstream/streams"
)

// Atomic makes PublishBatch store every event of the batch or none, with
// contiguous EVENTS sequences in the batch's order (JetStream's atomic batch
// publish). An id may appear only once in an atomic batch. Re-sending a
// batch that was stored answers every event as a duplicate and stores
// nothing twice; a batch that mixes ids stored earlier with new ones is
// refused (streams.ErrInvalidEvent), since it can be stored neither whole
// nor not at all.
func Atomic() BatchOption { return func(o *batchOptions) { o.atomic = true } }

// Error codes of the server's atomic batch publish.
const (
	errCodeAtomicDisabled     jetstream.ErrorCode = 10174
	errCodeAtomicTooLarge     jetstream.ErrorCode = 10199
	errCodeAtomicDuplicate    jetstream.ErrorCode = 10201
	errCodeWrongLastMsgID     jetstream.ErrorCode = 10070
	probeExpectedLastMsgIDVal                     = "hookstream probe: no event has this id"
)

// checkAtomic refuses what no server would store atomically: an id twice,
// or more bytes than the batch limit.
func (p *Producer) checkAtomic(events []streams.Event) error {
	first := make(map[string]int, len(events))
	size := 0
	for i := range events {
		if j, ok := first[events[i].ID]; ok {
			return fmt.Errorf("events[%d].id: %q is also the id of events[%d]; an atomic batch stores each id once: %w",
				i, events[i].ID, j, streams.ErrInvalidEvent)
		}
		first[events[i].ID] = i
		size += len(events[i].Data)
	}
	if int64(size) > p.lim.maxBatchBody {
		return fmt.Errorf("events: %d bytes of data is over the batch limit of %d bytes: %w", size, p.lim.maxBatchBody, streams.ErrInvalidEvent)
	}
	return nil
}

// storeAtomic publishes complete, valid events as one JetStream atomic
// batch: all stored, contiguously and in order, or none. Every result then
// carries the same error.
func (p *Producer) storeAtomic(ctx context.Context, events []streams.Event) ([]BatchResult, error) {
	results := make([]BatchResult, len(events))
	for i := range events {
		results[i].ID = events[i].ID
	}
	fail := func(err error) ([]BatchResult, error) {
		for i := range results {
			results[i].Err = err
		}
		if errors.Is(err, streams.ErrUnavailable) {
			p.metrics.unavailable()
			p.log.WarnContext(ctx, "atomic batch not stored", "events", len(events), "err", err)
		}
		return results, err
	}
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		return fail(fmt.Errorf("%w: nats connection is %s", streams.ErrUnavailable, nc.Status()))
	}
	msgs := make([]*nats.Msg, len(events))
	for i := range events {
		ev := &events[i]
		b, err := streams.Marshal(ev)
		if err != nil {
			return fail(fmt.Errorf("events[%d]: encode: %w", i, err))
		}
		m := nats.NewMsg(streams.EventSubject(ev.Source, ev.Type))
		m.Data = b
		m.Header.Set(jetstream.MsgIDHeader, ev.ID)
		m.Header.Set(jetstream.ExpectedStreamHeader, streams.StreamEvents)
		msgs[i] = m
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, p.js, msgs)
	if err == nil {
		first := ack.Sequence - uint64(len(events)) + 1
		for i := range results {
			results[i].Seq = first + uint64(i)
			p.metrics.stored()
		}
		p.log.DebugContext(ctx, "atomic batch stored", "events", len(events), "first_seq", first)
		return results, nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeAtomicDuplicate:
			// An id already stored inside the duplicate window refuses the
			// whole batch: find out whether it is this batch sent again.
			return p.resolveDuplicate(ctx, events, results)
		case errCodeAtomicTooLarge:
			return fail(fmt.Errorf("events: %d events is over the server's atomic batch limit (%s): %w",
				len(events), apiErr.Description, streams.ErrInvalidEvent))
		case errCodeAtomicDisabled:
			return fail(fmt.Errorf("%w: stream %s does not allow atomic publish: %w", streams.ErrUnavailable, streams.StreamEvents, streams.ErrNoAtomicPublish))
		}
	}
	return fail(streams.PublishError(err))
}

// resolveDuplicate answers an atomic batch refused for a duplicate id. When
// every event is already stored (the batch was stored before: a retry after
// a lost answer), every result is a duplicate with its stored sequence and
// nothing is stored; when only some are, the batch is refused naming the
// first stored one.
func (p *Producer) resolveDuplicate(ctx context.Context, events []streams.Event, results []BatchResult) ([]BatchResult, error) {
	seqs, err := p.storedSeqs(ctx, events)
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		p.metrics.unavailable()
		return results, err
	}
	firstStored, firstNew := -1, -1
	for i, s := range seqs {
		if s > 0 && firstStored < 0 {
			firstStored = i
		}
		if s == 0 && firstNew < 0 {
			firstNew = i
		}
	}
	if firstNew < 0 {
		for i := range results {
			results[i].Seq, results[i].Duplicate = seqs[i], true
			p.metrics.duplicate()
		}
		return results, nil
	}
	var refused error
	if firstStored < 0 {
		// The duplicate left the window between the two requests: the
		// publisher sends again and it is stored.
		refused = fmt.Errorf("%w: atomic batch refused for a duplicate id no longer found; send it again", streams.ErrUnavailable)
	} else {
		refused = fmt.Errorf("events[%d].id: %q is already stored (by an earlier batch) while events[%d] is not: "+
			"an atomic batch is stored whole or not at all; publish the new events in a batch of their own: %w",
			firstStored, events[firstStored].ID, firstNew, streams.ErrInvalidEvent)
	}
	for i := range results {
		results[i].Err = refused
	}
	return results, refused
}

// storedSeqs reports, for each event, the EVENTS sequence its id is stored
// at inside the duplicate window, or 0. It stores nothing: each probe
// carries the id as Nats-Msg-Id and an expected last message id that no
// event has, and the server checks duplicates first (a duplicate is
// answered with the stored sequence), then refuses the rest for the
// expected id.
func (p *Producer) storedSeqs(ctx context.Context, events []streams.Event) ([]uint64, error) {
	futs := make([]jetstream.PubAckFuture, len(events))
	for i := range events {
		m := nats.NewMsg(streams.EventSubject(events[i].Source, events[i].Type))
		m.Header.Set(jetstream.MsgIDHeader, events[i].ID)
		m.Header.Set(jetstream.ExpectedStreamHeader, streams.StreamEvents)
		m.Header.Set(jetstream.ExpectedLastMsgIDHeader, probeExpectedLastMsgIDVal)
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			return nil, streams.PublishError(err)
		}
		futs[i] = f
	}
	seqs := make([]uint64, len(events))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			if !ack.Duplicate {
				// Cannot happen (the expected id never matches); it would
				// mean the probe stored an empty event.
				return nil, fmt.Errorf("%w: probe of event %s stored at %d", streams.ErrUnavailable, events[i].ID, ack.Sequence)
			}
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastMsgID {
				continue
			}
			return nil, streams.PublishError(err)
		case <-ctx.Done():
			return nil, streams.PublishError(ctx.Err())
		}
	}
	return seqs, nil
}
