package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// notDeadError refuses a replay of a record that is no longer dead.
type notDeadError struct{ state string }

func (e notDeadError) Error() string {
	if e.state == streams.DLQStateReplayed || e.state == streams.DLQStateDelivered {
		return "already " + e.state
	}
	return fmt.Sprintf("state %q is not %s", e.state, streams.DLQStateDead)
}

func (e notDeadError) Unwrap() error { return httpjson.ErrConflict }

// endpointGoneError refuses a replay to an endpoint that is deleted.
type endpointGoneError struct{ endpoint string }

func (e endpointGoneError) Error() string { return "endpoint " + e.endpoint + " is deleted" }

func (e endpointGoneError) Unwrap() error { return httpjson.ErrConflict }

// Replay publishes the next generation of the record's delivery and marks
// the record replayed. A record that is not dead (already replayed or
// delivered) or whose endpoint is deleted is httpjson.ErrConflict; an
// unknown id httpjson.ErrNotFound; a store that cannot take the delivery
// streams.ErrUnavailable, and then nothing changed.
func (s *Service) Replay(ctx context.Context, id string) (*Record, error) {
	m, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.replay(ctx, m, nil)
}

// replay replays the record m. eps, when not nil, caches endpoint checks
// across the records of one job step.
//
// The order is what makes it crash-safe and idempotent: the delivery is
// published (and acknowledged) before the state changes, so a crash in
// between leaves a dead record whose next replay publishes the same
// Nats-Msg-Id and is answered as a duplicate; and two concurrent replays
// publish one message id, so whichever loses the compare-and-set still has
// exactly one delivery behind it.
func (s *Service) replay(ctx context.Context, m match, eps map[string]endpointCheck) (*Record, error) {
	dl := m.dl
	log := s.cfg.Logger.With("dead_letter_id", dl.ID, "endpoint_id", dl.EndpointID, "event_id", dl.Event.ID)
	if state := stateOf(m.st); state != streams.DLQStateDead {
		return nil, fmt.Errorf("dead letter %s: %w", dl.ID, notDeadError{state})
	}
	if dl.Reason == streams.ReasonUndecodable {
		// Its event is the raw bytes set aside, not one to send.
		return nil, fmt.Errorf("dead letter %s: an undecodable delivery set aside cannot be replayed: %w", dl.ID, httpjson.ErrConflict)
	}
	ep, err := s.checkEndpoint(ctx, dl.EndpointID, eps)
	if err != nil {
		return nil, fmt.Errorf("dead letter %s: %w", dl.ID, err)
	}

	d := streams.Delivery{Event: dl.Event, EndpointID: dl.EndpointID, Generation: dl.Generation + 1, DeadLetterID: dl.ID}
	b, err := streams.Marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("encode delivery: %w", err)
	}
	// An ordered endpoint's replay goes to its key's lane, as the fan-out's
	// deliveries do: it is delivered after whatever the key has pending in
	// the lane now (not in its original place, which is long gone).
	ack, err := s.js.Publish(ctx, streams.DeliveryTarget(ep, &dl.Event), b,
		jetstream.WithMsgID(d.MsgID()), jetstream.WithExpectStream(streams.StreamDeliveries))
	if err != nil {
		return nil, storeErr("publish delivery", err)
	}

	stateMissing := m.st == nil
	now := s.now()
	st, _, err := streams.Update[streams.DLQState](ctx, s.states, dl.ID, func(cur *streams.DLQState) (*streams.DLQState, error) {
		switch {
		case cur == nil && !stateMissing:
			// Deleted meanwhile: the delivery stands, there is nothing to mark.
			return nil, streams.ErrNoChange
		case cur == nil:
			// The dispatcher crashed before writing the state: write it.
			cur = &streams.DLQState{
				ID: dl.ID, Seq: m.seq, EndpointID: dl.EndpointID, EventID: dl.Event.ID,
				EventType: dl.Event.Type, Reason: dl.Reason, DeadAt: dl.DeadAt,
			}
		case cur.State != streams.DLQStateDead:
			// A concurrent replay (same message id, so the same single
			// delivery) or that delivery's success got here first.
			return nil, streams.ErrNoChange
		}
		next := *cur
		next.State, next.ReplayGeneration, next.UpdatedAt = streams.DLQStateReplayed, d.Generation, now
		return &next, nil
	})
	if err != nil && !errors.Is(err, streams.ErrNoChange) {
		// The delivery is stored: the record stays dead until a retry, which
		// JetStream answers as a duplicate inside the window.
		return nil, storeErr("mark dead letter replayed", err)
	}
	if st == nil {
		st = &streams.DLQState{ID: dl.ID, State: streams.DLQStateReplayed, ReplayGeneration: d.Generation}
	}
	log.Info("dead letter replayed", "generation", d.Generation, "delivery_seq", ack.Sequence, "duplicate", ack.Duplicate)
	r := newRecord(dl, st, m.seq)
	return &r, nil
}

// checkEndpoint refuses a replay to an endpoint that is deleted or being
// deleted. eps, when not nil, caches the answers.
func (s *Service) checkEndpoint(ctx context.Context, id string, eps map[string]endpointCheck) (*streams.Endpoint, error) {
	if c, ok := eps[id]; ok {
		return c.ep, c.err
	}
	ep, _, found, err := streams.Get[streams.Endpoint](ctx, s.endpoints, id)
	switch {
	case errors.Is(err, jetstream.ErrInvalidKey):
		err = endpointGoneError{id}
	case err != nil:
		return nil, storeErr("read endpoint", err)
	case !found || ep.Deleted:
		err = endpointGoneError{id}
	}
	if err != nil {
		ep = nil
	}
	if eps != nil {
		eps[id] = endpointCheck{ep: ep, err: err}
	}
	return ep, err
}

// endpointCheck is checkEndpoint's answer, cached across one job step.
type endpointCheck struct {
	ep  *streams.Endpoint
	err error
}
