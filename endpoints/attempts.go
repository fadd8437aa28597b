package endpoints

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// attemptJSON is one attempt of the log as the API shows it: the stored
// attempt with its duration as a Go duration string.
type attemptJSON struct {
	streams.Attempt
	Duration string `json:"duration"`
}

// attemptPos is where an attempt lies in the log: its message's stream
// sequence and its place in that message (a batch of successes holds
// several, oldest first).
type attemptPos struct {
	seq uint64
	idx int
}

func (p attemptPos) before(q attemptPos) bool {
	return p.seq < q.seq || p.seq == q.seq && p.idx < q.idx
}

// cursor is the page cursor that starts below p: "seq", or "seq.idx"
// inside a batch.
func (p attemptPos) cursor() string {
	if p.idx == 0 {
		return strconv.FormatUint(p.seq, 10)
	}
	return strconv.FormatUint(p.seq, 10) + "." + strconv.Itoa(p.idx)
}

type loggedAttempt struct {
	pos attemptPos
	a   streams.Attempt
}

// attemptsPage reads an endpoint's attempt log, newest first: up to limit
// attempts stored before position before (zero: from the newest), and the
// position the next page starts below (zero on the last).
//
// The log holds a bounded number of messages per endpoint (the ATTEMPTS
// stream's per-subject limit, 1000 by default; a message is one failed
// attempt or a batch of successes), so the page is found by walking the
// endpoint's subject forward and keeping the last limit+1 attempts below
// the cursor: a read of at most that many small messages.
func (r *Registry) attemptsPage(ctx context.Context, id string, limit int, before attemptPos) ([]attemptJSON, attemptPos, error) {
	if _, err := r.endpoint(ctx, id); err != nil {
		return nil, attemptPos{}, err
	}
	subj := streams.AttemptSubject(id)
	var window []loggedAttempt
	for seq := uint64(1); ; {
		m, err := r.attempts.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, attemptPos{}, storeErr("read attempts of endpoint "+id, err)
		}
		if before.seq != 0 && m.Sequence > before.seq {
			break
		}
		seq = m.Sequence + 1
		as, err := streams.DecodeAttempts(m.Data)
		if err != nil {
			// One unreadable record must not hide the rest of the log.
			r.cfg.Logger.Warn("skip unreadable attempt", "endpoint", id, "seq", m.Sequence, "err", err)
			continue
		}
		for i, a := range as {
			p := attemptPos{seq: m.Sequence, idx: i}
			if before.seq != 0 && !p.before(before) {
				break
			}
			window = append(window, loggedAttempt{pos: p, a: a})
		}
		if len(window) > limit+1 {
			window = window[len(window)-(limit+1):]
		}
	}
	var next attemptPos
	if len(window) > limit {
		// The oldest attempt kept only shows that another page follows.
		window = window[1:]
		next = window[0].pos
	}
	out := make([]attemptJSON, 0, len(window))
	for i := len(window) - 1; i >= 0; i-- {
		a := window[i].a
		// The dispatcher stores error texts with their URL redacted; one
		// stored before it did ("Post \"http://user:***@host/?token=T\"")
		// is redacted here, so the log never shows a URL's credentials.
		a.Error = netguard.RedactText(a.Error)
		a.Time = a.Time.UTC()
		if !a.NextAttempt.IsZero() {
			a.NextAttempt = a.NextAttempt.UTC()
		}
		out = append(out, attemptJSON{Attempt: a, Duration: a.Duration.String()})
	}
	return out, next, nil
}

// parseSeqCursor reads an attempts cursor: a stream sequence with, inside a
// batch, the attempt's place ("seq" or "seq.idx"), or "" for the first page.
func parseSeqCursor(s string) (attemptPos, error) {
	if s == "" {
		return attemptPos{}, nil
	}
	bad := httpjson.BadRequest("cursor: %q is not a cursor this list returned", s)
	seqText, idxText, inBatch := strings.Cut(s, ".")
	n, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || n == 0 {
		return attemptPos{}, bad
	}
	p := attemptPos{seq: n}
	if inBatch {
		i, err := strconv.Atoi(idxText)
		if err != nil || i <= 0 || i >= streams.AttemptBatchMax {
			return attemptPos{}, bad
		}
		p.idx = i
	}
	return p, nil
}
