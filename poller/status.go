package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// Source statuses.
const (
	StatusHealthy      = "healthy"
	StatusUnreachable  = "unreachable"
	StatusAuthRequired = "auth_required"
)

// finish records a poll's outcome on the source's state, by compare-and-set:
//
//   - success: healthy (a transition from unreachable or auth_required is
//     followed at once by a catch-up poll), failures cleared, next poll after
//     the interval, or at once when has_more pages were left;
//   - ErrAuth: auth_required at once;
//   - ErrUnreachable, ErrBadFeed (or any unclassified error): unreachable
//     after UnreachableAfter in a row. A feed that answers pages that cannot
//     be read is as stalled as one that does not answer, and DESIGN's three
//     statuses have no better word for it; the error (and the
//     connection.status_changed) says "bad feed". Invalid changes in a
//     readable page are not a failure: they were skipped and recorded;
//   - a failed publish or state write (storeErr): hookstream's own store
//     failed, not the source; recorded as last_error only, retried after the
//     interval from the saved cursor.
//
// A source that is not healthy is polled at interval × 2^n after its n-th
// failed poll since it left healthy, capped at MaxBackoff. A status change is
// then published as connection.status_changed (the outbox retries it if that
// fails).
func (p *Poller) finish(ctx context.Context, sp spec, start time.Time, pollErr, storeErr error, more bool, log *slog.Logger) {
	p.metrics.polled(pollErr, storeErr)
	st, rev, err := streams.Update(ctx, p.stateKV, sp.id, func(cur *sourceState) (*sourceState, error) {
		if cur == nil {
			return nil, errSourceGone
		}
		now := p.cfg.Now()
		next := *cur
		next.LastPoll = start
		switch {
		case storeErr != nil:
			next.LastError, next.LastErrorAt = cutText(storeErr.Error(), maxErrorText), now
			next.NextPoll = now.Add(sp.interval)
		case pollErr == nil:
			next.Failures, next.Unreachable, next.Backoff = 0, 0, 0
			next.LastSuccess = now
			if next.transition(StatusHealthy, "", now) || more {
				next.NextPoll = now
			} else {
				next.NextPoll = now.Add(sp.interval)
			}
		default:
			msg := cutText(pollErr.Error(), maxErrorText)
			next.Failures++
			next.LastError, next.LastErrorAt = msg, now
			switch {
			case errors.Is(pollErr, ErrAuth):
				next.Unreachable = 0
				next.transition(StatusAuthRequired, msg, now)
			default:
				next.Unreachable++
				if next.Unreachable >= p.cfg.UnreachableAfter {
					next.transition(StatusUnreachable, msg, now)
				}
			}
			if next.Status == StatusHealthy {
				next.NextPoll = now.Add(sp.interval)
			} else {
				next.Backoff++
				next.NextPoll = now.Add(backoff(sp.interval, max(p.cfg.MaxBackoff, sp.interval), next.Backoff))
			}
		}
		return &next, nil
	})
	if err != nil {
		if !errors.Is(err, errSourceGone) && ctx.Err() == nil {
			log.Warn("record the poll", "err", err)
		}
		return
	}
	p.cacheState(sp.id, st, rev)
	switch {
	case storeErr != nil:
		log.Warn("poll not stored", "err", storeErr)
	case pollErr != nil:
		log.Warn("poll failed", "err", pollErr, "failures", st.Failures, "status", st.Status, "next_poll", st.NextPoll)
	}
	if ev := st.statusEvent(); ev != nil {
		log.Info("source status changed", "from", ev.From, "to", ev.To, "seq", ev.Seq, "err", ev.Error)
		p.notifyLogged(ctx, sp.id)
	}
}

// notifyLogged is notify, logging a failure: the outbox retries it at the
// next tick.
func (p *Poller) notifyLogged(ctx context.Context, id string) {
	if err := p.notify(ctx, id); err != nil && ctx.Err() == nil {
		p.log.Warn("publish connection.status_changed", "source", id, "err", err)
	}
}

// notify publishes the connection.status_changed of source id's last
// transition, if not yet published, and then records it as published. Its id
// is deterministic (connection.status_changed:<source>:<transition>), so a
// crash between the publish and the record re-publishes a duplicate that is
// stored once. Only the last transition is kept: should two happen before
// either is published, the first is never sent (under any id).
func (p *Poller) notify(ctx context.Context, id string) error {
	st, _, found, err := streams.Get[sourceState](ctx, p.stateKV, id)
	if err != nil || !found {
		return err
	}
	ev := st.statusEvent()
	if ev == nil {
		return nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode status event: %w", err)
	}
	e := &streams.Event{
		ID:     streams.OwnEventID(streams.TypeConnectionStatusChanged, id, ev.Seq),
		Type:   streams.TypeConnectionStatusChanged,
		Source: streams.OwnSource,
		Time:   ev.Since.UTC(),
		Data:   data,
	}
	if _, err := streams.PublishEvent(ctx, p.cfg.JS, e); err != nil {
		return err
	}
	next, rev, err := streams.Update(ctx, p.stateKV, id, func(cur *sourceState) (*sourceState, error) {
		if cur == nil || cur.Notified >= ev.Seq {
			return nil, streams.ErrNoChange
		}
		n := *cur
		n.Notified = ev.Seq
		return &n, nil
	})
	switch {
	case errors.Is(err, streams.ErrNoChange):
		return nil
	case err != nil:
		return fmt.Errorf("record status event %s as sent: %w", e.ID, err)
	}
	p.cacheState(id, next, rev)
	return nil
}
