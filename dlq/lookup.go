package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// Get returns the record id; an unknown id is httpjson.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Record, error) {
	m, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	r := newRecord(m.dl, m.st, m.seq)
	return &r, nil
}

// Delete removes the record id: its stream message, then its state (so a
// crash in between leaves a state without a message, which reads as not
// found, never a message without a state, which would read as dead). An
// unknown id is httpjson.ErrNotFound.
func (s *Service) Delete(ctx context.Context, id string) error {
	m, err := s.load(ctx, id)
	if err != nil && m.st != nil {
		// Only the state is left (a deletion that crashed half-way, or a
		// message aged out): finish the job, but the record was gone.
		if derr := s.states.Delete(ctx, id); derr != nil {
			return storeErr("delete dead-letter state", derr)
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := s.dlq.DeleteMsg(ctx, m.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return storeErr("delete dead letter", err)
	}
	if err := s.states.Delete(ctx, id); err != nil {
		return storeErr("delete dead-letter state", err)
	}
	s.cfg.Logger.Info("dead letter deleted", "dead_letter_id", id, "endpoint_id", m.dl.EndpointID, "event_id", m.dl.Event.ID)
	return nil
}

// load finds a record by id: its state names its DLQ sequence. When the
// state exists but the message does not, the error is not found and the
// match holds the state alone.
func (s *Service) load(ctx context.Context, id string) (match, error) {
	notFound := fmt.Errorf("dead letter %s: %w", id, httpjson.ErrNotFound)
	st, err := s.state(ctx, id)
	if err != nil {
		return match{}, err
	}
	if st == nil {
		return match{}, notFound
	}
	msg, err := s.dlq.GetMsg(ctx, st.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return match{st: st}, notFound
	}
	if err != nil {
		return match{}, storeErr("read dlq", err)
	}
	dl := new(streams.DeadLetter)
	if err := streams.Unmarshal(msg.Data, dl); err != nil {
		return match{}, fmt.Errorf("dead letter %s at seq %d: %w", id, st.Seq, err)
	}
	if dl.ID != id {
		// The sequence holds another record: this one is gone.
		return match{st: st}, notFound
	}
	return match{dl: dl, st: st, seq: msg.Sequence}, nil
}
