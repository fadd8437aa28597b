package dlq

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// List returns up to limit records matching f, oldest first (by DLQ stream
// sequence), starting at cursor (a decimal DLQ sequence; "" for the start),
// and the cursor to continue from, "" when there is nothing more now. A
// limit below 1 is taken as 100, one above 1000 as 1000. Bad filter values
// and cursors are *httpjson.Error 400s naming the field.
func (s *Service) List(ctx context.Context, f Filter, limit int, cursor string) ([]Record, string, error) {
	if err := f.validate(); err != nil {
		return nil, "", err
	}
	if limit < 1 {
		limit = httpjson.LimitDefault
	}
	limit = min(limit, httpjson.LimitMax)
	from, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	found, next, err := s.scan(ctx, f, from, limit, 0)
	if err != nil {
		return nil, "", err
	}
	out := make([]Record, 0, len(found))
	for _, m := range found {
		out = append(out, newRecord(m.dl, m.st, m.seq))
	}
	if next == 0 {
		return out, "", nil
	}
	return out, strconv.FormatUint(next, 10), nil
}

func parseCursor(c string) (uint64, error) {
	if c == "" {
		return 1, nil
	}
	n, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return 0, httpjson.BadRequest("cursor: must be a DLQ sequence number (a whole number), got %q", c)
	}
	return max(n, 1), nil
}

// match is one record found by scan.
type match struct {
	dl  *streams.DeadLetter
	st  *streams.DLQState // nil when the state key is missing
	seq uint64
}

// scan walks the DLQ stream from sequence from, on dlq.<endpoint> when f
// names one, and returns up to limit records matching f with their state,
// and the sequence to continue from (0 when nothing is left now). upTo, when
// not 0, is the last sequence to consider. It reads at most s.scanBudget
// messages.
//
// A record whose state key is missing is dead: the dispatcher writes the
// message first and the state right after, and a crash between the two
// must not hide it.
func (s *Service) scan(ctx context.Context, f Filter, from uint64, limit int, upTo uint64) ([]match, uint64, error) {
	subj := streams.SubjectDLQ + ".>"
	if f.Endpoint != "" {
		subj = streams.DLQSubject(f.Endpoint)
	}
	past := func(seq uint64) bool { return upTo > 0 && seq > upTo }
	// next is the sequence after seq where a message on subj exists, 0
	// when there is none (now).
	next := func(seq uint64) (uint64, error) {
		if past(seq) {
			return 0, nil
		}
		msg, err := s.dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return 0, nil
		case err != nil:
			return 0, storeErr("read dlq", err)
		case past(msg.Sequence):
			return 0, nil
		}
		return msg.Sequence, nil
	}

	var out []match
	seq := max(from, 1)
	for range s.scanBudget {
		if past(seq) {
			return out, 0, nil
		}
		msg, err := s.dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return out, 0, nil
		case err != nil:
			return nil, 0, storeErr("read dlq", err)
		case past(msg.Sequence):
			return out, 0, nil
		}
		seq = msg.Sequence + 1
		dl := new(streams.DeadLetter)
		if err := streams.Unmarshal(msg.Data, dl); err != nil {
			s.cfg.Logger.Warn("dlq: skipping a record that does not decode", "seq", msg.Sequence, "subject", msg.Subject, "err", err)
			continue
		}
		if !f.matchFields(dl.EndpointID, dl.Reason, dl.Event.Type, dl.DeadAt) {
			continue
		}
		st, err := s.state(ctx, dl.ID)
		if err != nil {
			return nil, 0, err
		}
		if !f.matchState(stateOf(st)) {
			continue
		}
		out = append(out, match{dl: dl, st: st, seq: msg.Sequence})
		if len(out) == limit {
			n, err := next(seq)
			if err != nil {
				return nil, 0, err
			}
			return out, n, nil
		}
	}
	return out, seq, nil
}

// state reads a record's state; nil when the key is missing.
func (s *Service) state(ctx context.Context, id string) (*streams.DLQState, error) {
	st, _, found, err := streams.Get[streams.DLQState](ctx, s.states, id)
	switch {
	case errors.Is(err, jetstream.ErrInvalidKey):
		return nil, nil
	case err != nil:
		return nil, storeErr("read dead-letter state", err)
	case !found:
		return nil, nil
	}
	return st, nil
}

// stateOf is the state of a record whose state key is st.
func stateOf(st *streams.DLQState) string {
	if st == nil {
		return streams.DLQStateDead
	}
	return st.State
}
