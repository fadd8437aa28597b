package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// loadHealth notes the catch-ups owed in a watch's initial values; one
// noted before and since sent is simply found to have nothing to send.
func (p *Poller) loadHealth(es []jetstream.KeyValueEntry) {
	for _, e := range es {
		p.onHealth(e)
	}
}

// onHealth notes an endpoint whose health carries a catch-up window still to
// announce (streams.Health.Transition leaves one when an endpoint returns to
// healthy after losing deliveries or holding a backlog).
func (p *Poller) onHealth(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var h streams.Health
	if err := streams.Unmarshal(e.Value(), &h); err != nil {
		p.log.Warn("skipping unreadable endpoint health", "endpoint", e.Key(), "err", err)
		return
	}
	if h.Catchup == nil {
		return
	}
	p.mu.Lock()
	p.catchups[e.Key()] = true
	p.mu.Unlock()
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// catchupWorker sends the catch-ups noted by onHealth, retrying a failed one
// every Tick, until ctx is done.
func (p *Poller) catchupWorker(ctx, workCtx context.Context) {
	defer p.loops.Done()
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.poke:
		case <-t.C:
		}
		p.mu.Lock()
		eps := make([]string, 0, len(p.catchups))
		for ep := range p.catchups {
			eps = append(eps, ep)
		}
		p.mu.Unlock()
		for _, ep := range eps {
			if ctx.Err() != nil {
				return
			}
			if err := p.sendCatchup(workCtx, ep); err != nil {
				if workCtx.Err() == nil {
					p.log.Warn("send webhook.catchup", "endpoint", ep, "err", err)
				}
				continue
			}
			p.mu.Lock()
			delete(p.catchups, ep)
			p.mu.Unlock()
		}
	}
}

// sendCatchup publishes the webhook.catchup owed to endpoint ep, then clears
// the window by compare-and-set if it is still the same gap. The event's id
// is webhook.catchup:<endpoint>:<transition>, so pollers racing for it, or a
// crash before the window is cleared, store it once.
//
// Missed deliveries are the endpoint's dead letters whose dead_at is inside
// the window, webhook.catchup ones excepted: a catch-up that itself failed
// never triggers another, and a gap whose only losses were catch-ups sends
// nothing. A gap that only held a backlog (no losses) still gets its
// catch-up, naming the window.
func (p *Poller) sendCatchup(ctx context.Context, ep string) error {
	h, _, found, err := streams.Get[streams.Health](ctx, p.healthKV, ep)
	if err != nil {
		return err
	}
	if !found || h.Catchup == nil {
		return nil
	}
	cw := *h.Catchup
	ids, missed, lostCatchups, err := p.missedEvents(ctx, ep, cw.From, cw.To)
	if err != nil {
		return err
	}
	var lostOthers uint64
	if cw.Lost > lostCatchups {
		lostOthers = cw.Lost - lostCatchups
	}
	if missed == 0 && cw.Lost > 0 && lostOthers == 0 {
		p.log.Info("gap lost only catch-ups; no webhook.catchup", "endpoint", ep, "transition", cw.Transition)
	} else {
		if missed == 0 {
			// The dead letters were purged (or not written yet): the
			// dispatcher's count of losses is all there is.
			missed = lostOthers
		}
		data, err := json.Marshal(streams.WebhookCatchup{
			Endpoint: ep, From: cw.From.UTC(), To: cw.To.UTC(),
			Missed: missed, EventIDs: ids, Seq: cw.Transition,
		})
		if err != nil {
			return fmt.Errorf("encode webhook.catchup: %w", err)
		}
		ev := &streams.Event{
			ID:     streams.OwnEventID(streams.TypeWebhookCatchup, ep, cw.Transition),
			Type:   streams.TypeWebhookCatchup,
			Source: streams.OwnSource,
			Time:   cw.To.UTC(),
			Data:   data,
			Target: ep,
		}
		if err := ev.Validate(p.cfg.MaxEventData); err != nil {
			// An endpoint id that is no valid target cannot be sent to:
			// clear the window rather than retry forever.
			p.log.Error("webhook.catchup not valid; dropped", "endpoint", ep, "err", err)
		} else if _, err := streams.PublishEvent(ctx, p.cfg.JS, ev); err != nil {
			return err
		} else {
			p.log.Info("webhook.catchup published", "endpoint", ep, "event_id", ev.ID, "missed", missed)
		}
	}
	_, _, err = streams.Update[streams.Health](ctx, p.healthKV, ep, func(cur *streams.Health) (*streams.Health, error) {
		if cur == nil || cur.Catchup == nil || cur.Catchup.Transition != cw.Transition {
			return nil, streams.ErrNoChange
		}
		cur.Catchup = nil
		return cur, nil
	})
	if err != nil && !errors.Is(err, streams.ErrNoChange) {
		return fmt.Errorf("clear the catch-up window: %w", err)
	}
	return nil
}

// missedEvents reads endpoint ep's dead letters and returns, for those that
// died within [from, to]: the first MaxCatchupEventIDs distinct event ids,
// how many distinct events there were, and how many were webhook.catchup
// deliveries (not counted in either).
func (p *Poller) missedEvents(ctx context.Context, ep string, from, to time.Time) (ids []string, missed, catchups uint64, err error) {
	subj := streams.DLQSubject(ep)
	seen := map[string]bool{}
	ids = []string{}
	for seq := uint64(1); ; {
		m, err := p.dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return ids, missed, catchups, nil
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read dead letters of %s: %w", ep, err)
		}
		seq = m.Sequence + 1
		var dl streams.DeadLetter
		if err := streams.Unmarshal(m.Data, &dl); err != nil {
			p.log.Warn("skipping unreadable dead letter", "endpoint", ep, "seq", m.Sequence, "err", err)
			continue
		}
		if dl.DeadAt.Before(from) || dl.DeadAt.After(to) {
			continue
		}
		if dl.Event.Type == streams.TypeWebhookCatchup {
			catchups++
			continue
		}
		if seen[dl.Event.ID] {
			continue
		}
		seen[dl.Event.ID] = true
		missed++
		if len(ids) < streams.MaxCatchupEventIDs {
			ids = append(ids, dl.Event.ID)
		}
	}
}
