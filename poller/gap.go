package poller

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// checkGap looks up the newest event of source id in EVENTS (published by
// its own producer or by a poll) and reports whether it is still silent past
// its window. The answer is cached, so that EVENTS is asked only when the
// cached view says the window has passed: about once per window per source.
func (p *Poller) checkGap(ctx context.Context, sp spec) (bool, error) {
	m, err := p.events.GetLastMsgForSubject(ctx, streams.SubjectEvents+"."+sp.id+".>")
	var last time.Time
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return false, err
	default:
		last = m.Time
	}
	p.mu.Lock()
	if last.After(p.lastEvent[sp.id]) {
		p.lastEvent[sp.id] = last
	}
	cs := p.states[sp.id]
	last = p.lastEvent[sp.id]
	p.mu.Unlock()
	return due(cs.st, sp.window, last, p.cfg.Now()) == dueGap, nil
}

// noteEvent records that the poller itself published an event of source id
// at t.
func (p *Poller) noteEvent(id string, t time.Time) {
	p.mu.Lock()
	if t.After(p.lastEvent[id]) {
		p.lastEvent[id] = t
	}
	p.mu.Unlock()
}
