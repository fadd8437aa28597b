package poller

import (
	"context"
	"time"
)

// dueReason says why a source is to be polled now.
type dueReason int

const (
	notDue dueReason = iota
	// dueNow: its next poll time came (interval, back-off, a new source, a
	// catch-up poll after recovery, more pages left).
	dueNow
	// dueGap: its next poll is further away but it has sent no event
	// within its expected window.
	dueGap
)

// due decides whether a source is to be polled at now. lastEvent is the
// newest event of the source seen in EVENTS (zero: unknown). Gap detection
// counts from the last event, whoever published it (its producer, a poll,
// or a push to POST /ingest/{id}, recorded as LastPush), or the last poll,
// which looked for one: a silent source is polled once per window, not at
// every tick. It skips a source that is unreachable or auth_required, which keeps
// to its back-off.
func due(st *sourceState, window time.Duration, lastEvent, now time.Time) dueReason {
	if st == nil || !now.Before(st.NextPoll) {
		return dueNow
	}
	if st.Status != StatusHealthy {
		return notDue
	}
	ref := st.LastPoll
	for _, t := range []time.Time{st.LastEvent, st.LastPush, lastEvent} {
		if t.After(ref) {
			ref = t
		}
	}
	if now.Sub(ref) >= window {
		return dueGap
	}
	return notDue
}

// backoff is the delay before the next poll of a source that is not
// healthy, after failures failed polls since it left healthy (1 for the poll
// that changed its status): interval × 2^failures, capped at max.
func backoff(interval, max time.Duration, failures int) time.Duration {
	d := interval
	for range failures {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// schedule looks for due sources and unpublished status changes every Tick
// until ctx is done; the work it starts runs under workCtx.
func (p *Poller) schedule(ctx, workCtx context.Context) {
	defer p.loops.Done()
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		now := p.tick(ctx, workCtx)
		if p.hooks.afterTick != nil {
			p.hooks.afterTick(now)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick starts what is due at now and returns now.
func (p *Poller) tick(ctx, workCtx context.Context) time.Time {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return now
	}
	ids := make([]string, 0, len(p.registered)+len(p.configs))
	for id := range p.registered {
		ids = append(ids, id)
	}
	for id, c := range p.configs {
		if _, ok := p.registered[id]; !ok && c.polled() {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if len(p.inflight) >= maxConcurrentPolls {
			return now
		}
		if p.inflight[id] {
			continue
		}
		cs := p.states[id]
		if cs.st != nil && cs.st.statusEvent() != nil {
			// A status change whose event a crash (or a failed publish) left
			// unsent: the outbox.
			p.startLocked(id, func() { p.notifyLogged(workCtx, id) })
			continue
		}
		switch due(cs.st, p.windowLocked(id), p.lastEvent[id], now) {
		case dueNow:
			p.startLocked(id, func() { p.runPoll(workCtx, id, dueNow) })
		case dueGap:
			p.startLocked(id, func() { p.runPoll(workCtx, id, dueGap) })
		}
	}
	return now
}

// windowLocked is source id's expected window.
func (p *Poller) windowLocked(id string) time.Duration {
	if r, ok := p.registered[id]; ok {
		return r.window
	}
	if c, ok := p.configs[id]; ok {
		return orDefault(c.ExpectedWindow, p.cfg.ExpectedWindowDefault)
	}
	return p.cfg.ExpectedWindowDefault
}

// startLocked runs fn for source id in the background, one at a time per
// source.
func (p *Poller) startLocked(id string, fn func()) {
	p.inflight[id] = true
	p.work.Add(1)
	go func() {
		defer func() {
			p.mu.Lock()
			delete(p.inflight, id)
			p.mu.Unlock()
			p.work.Done()
		}()
		fn()
	}()
}
