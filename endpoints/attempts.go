package endpoints

import (
	"context"
	"errors"
	"strconv"

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

// attemptsPage reads an endpoint's attempt log, newest first: up to limit
// attempts stored below sequence before (0: from the newest), and the
// cursor of the next page (0 on the last).
//
// The log holds at most a bounded number of attempts per endpoint (the
// ATTEMPTS stream's per-subject limit, 1000 by default), so the page is found
// by walking the endpoint's subject forward and keeping the last limit+1
// messages below the cursor: a read of at most that many small messages.
func (r *Registry) attemptsPage(ctx context.Context, id string, limit int, before uint64) ([]attemptJSON, uint64, error) {
	if _, err := r.endpoint(ctx, id); err != nil {
		return nil, 0, err
	}
	subj := streams.AttemptSubject(id)
	var window []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := r.attempts.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, storeErr("read attempts of endpoint "+id, err)
		}
		if before != 0 && m.Sequence >= before {
			break
		}
		window = append(window, m)
		if len(window) > limit+1 {
			window = window[1:]
		}
		seq = m.Sequence + 1
	}
	var next uint64
	if len(window) > limit {
		// The oldest message kept only shows that another page follows.
		window = window[1:]
		next = window[0].Sequence
	}
	out := make([]attemptJSON, 0, len(window))
	for i := len(window) - 1; i >= 0; i-- {
		m := window[i]
		var a streams.Attempt
		if err := streams.Unmarshal(m.Data, &a); err != nil {
			// One unreadable record must not hide the rest of the log.
			r.cfg.Logger.Warn("skip unreadable attempt", "endpoint", id, "seq", m.Sequence, "err", err)
			continue
		}
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

// parseSeqCursor reads an attempts cursor: a stream sequence, or "" for the
// first page.
func parseSeqCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, httpjson.BadRequest("cursor: %q is not a cursor this list returned", s)
	}
	return n, nil
}
