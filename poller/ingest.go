package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hookstream/hookstream/inbound"
	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

const (
	// pushRecordMax caps pushRecordEvery.
	pushRecordMax = time.Minute
	// pushRecordTimeout bounds the state write that records a push: the
	// push is stored by then, and its 202 should not wait on a slow KV.
	pushRecordTimeout = 2 * time.Second
	// refusalLogEvery bounds the log lines of refused pushes to one per
	// source per interval: the route is public, and a flood of forged
	// pushes must not become a flood of lines (the metric counts them all).
	refusalLogEvery = time.Second
)

// pushMark is what this process knows of a source's pushes.
type pushMark struct {
	last     time.Time // the newest push this process stored
	written  time.Time // when it last wrote LastPush to the source's state
	instance string    // the X-Discourse-Instance it last wrote
	// loggedAt is when a refusal was last logged; suppressed counts those
	// not logged since.
	loggedAt   time.Time
	suppressed int
}

// pushRecordEvery is how often one API process writes a source's LastPush:
// at most once per a quarter of its expected window (capped at a minute),
// so that a push costs no KV write of its own, while the stored LastPush
// never lags far enough for gap detection to poll a source that is still
// pushing (and the poller's gap check asks EVENTS for the exact time
// before it polls anyway).
func pushRecordEvery(window time.Duration) time.Duration { return min(window/4, pushRecordMax) }

// IngestPath is the path providers push source id's webhooks to.
func IngestPath(id string) string { return "/ingest/" + id }

// PublicRoutes are the routes a provider calls: POST /ingest/{source},
// mounted outside /v1 and without the bearer token, because the provider's
// signature is the authentication. They need no Start.
func (p *Poller) PublicRoutes() []httpjson.Route {
	return []httpjson.Route{{Method: http.MethodPost, Pattern: "/ingest/{source}", Handler: p.handleIngest}}
}

// receiver is the inbound.Receiver of source id's settings at now.
func (p *Poller) receiver(id string, ic *inboundConfig, now time.Time) inbound.Receiver {
	return inbound.Receiver{
		Format: inbound.Format(ic.Format), Secrets: ic.activeSecrets(now), Header: ic.Header, IDHeader: ic.IDHeader,
		IDFrom: ic.IDFrom, Type: ic.Type, Tolerance: p.cfg.IngestTolerance,
		MaxIDLength: streams.MaxIDLength - len(id) - 1,
	}
}

// ingestAnswer is the 202 of a stored push, the publish API's shape.
type ingestAnswer struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// handleIngest takes one push of a source's provider: the source must have
// inbound settings (404), its signature headers must be there (401) before
// the body is read (413 over MaxEventData), the signature must verify on
// the raw body (401) before anything parses it, and the body must be a JSON
// object with the format's id and type (400). It is published as event
// "<source>:<provider id>" with the body as data, and 202 is answered only
// once JetStream acknowledged it (503 with Retry-After when it did not).
func (p *Poller) handleIngest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("source")
	if streams.ValidateSource(id) != nil {
		p.metrics.push(pushUnknownSource)
		httpjson.Fail(w, fmt.Errorf("source %.64q: %w", id, httpjson.ErrNotFound))
		return
	}
	ctx := r.Context()
	c, _, found, err := streams.Get[sourceConfig](ctx, p.sourcesKV, id)
	switch {
	case err != nil:
		p.metrics.push(pushUnavailable)
		httpjson.Fail(w, unavailable(fmt.Errorf("read source: %w", err)))
		return
	case !found || c.Inbound == nil:
		p.metrics.push(pushUnknownSource)
		httpjson.Fail(w, fmt.Errorf("source %q: %w (or it receives no pushes)", id, httpjson.ErrNotFound))
		return
	}
	now := p.cfg.Now()
	rc := p.receiver(id, c.Inbound, now)
	if err := rc.Signed(r.Header); err != nil {
		p.refuse(w, r, id, rc.Format, err)
		return
	}
	limit := int64(p.cfg.MaxEventData)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.metrics.push(pushTooLarge)
			httpjson.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than the limit of %d bytes", limit))
			return
		}
		p.metrics.push(pushInvalid)
		httpjson.Fail(w, httpjson.BadRequest("body: cut short: %v", err))
		return
	}
	if err := rc.Verify(r.Header, body, now); err != nil {
		p.refuse(w, r, id, rc.Format, err)
		return
	}
	push, err := rc.Read(r.Header, body, now)
	if err != nil {
		p.metrics.push(pushInvalid)
		httpjson.Fail(w, httpjson.BadRequest("%s", err))
		return
	}
	ev := &streams.Event{ID: id + ":" + push.ID, Type: push.Type, Source: id, Time: push.Time.UTC(), Data: body}
	if err := ev.Validate(p.cfg.MaxEventData); err != nil {
		p.metrics.push(pushInvalid)
		httpjson.Fail(w, err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	res, err := streams.PublishEvent(pctx, p.cfg.JS, ev)
	cancel()
	if err != nil {
		p.metrics.push(pushUnavailable)
		p.log.Warn("push not stored", "source", id, "event_id", ev.ID, "err", err)
		httpjson.Fail(w, unavailable(err))
		return
	}
	p.notePush(ctx, id, orDefault(c.ExpectedWindow, p.cfg.ExpectedWindowDefault), push.Instance, now)
	if res.Duplicate {
		p.metrics.push(pushDuplicate)
	} else {
		p.metrics.push(pushStored)
	}
	p.log.Debug("push stored", "source", id, "event_id", ev.ID, "type", ev.Type, "duplicate", res.Duplicate)
	httpjson.WriteJSON(w, http.StatusAccepted, ingestAnswer{ID: ev.ID, Duplicate: res.Duplicate})
}

// refuse answers a push whose signature did not verify: 401, counted, and
// logged (at most once per refusalLogEvery per source) with the reason,
// which names the header but never a secret or a signature.
func (p *Poller) refuse(w http.ResponseWriter, r *http.Request, id string, format inbound.Format, err error) {
	p.metrics.push(pushBadSignature)
	now := time.Now()
	p.mu.Lock()
	m := p.pushes[id]
	logIt := now.Sub(m.loggedAt) >= refusalLogEvery
	suppressed := m.suppressed
	if logIt {
		m.loggedAt, m.suppressed = now, 0
	} else {
		m.suppressed++
	}
	p.pushes[id] = m
	p.mu.Unlock()
	if logIt {
		p.log.Warn("push refused", "source", id, "format", string(format), "reason", err.Error(),
			"remote", r.RemoteAddr, "refused_unlogged", suppressed)
	}
	httpjson.WriteError(w, http.StatusUnauthorized, err.Error())
}

// notePush records that source id received a push at now: at once in this
// process (gap detection here sees it as an event), and in the source's
// state in JetStream, where the pollers and the other API processes see it,
// at most once per pushRecordEvery(window) (or when the instance changes).
// Another process's recent write is not repeated. A failed write is logged
// and retried at the next push; the push itself is stored already.
func (p *Poller) notePush(ctx context.Context, id string, window time.Duration, instance string, now time.Time) {
	every := pushRecordEvery(window)
	p.mu.Lock()
	m := p.pushes[id]
	if now.After(m.last) {
		m.last = now
	}
	if now.After(p.lastEvent[id]) {
		p.lastEvent[id] = now
	}
	prev := m
	write := now.Sub(m.written) >= every || (instance != "" && instance != m.instance)
	if write {
		// Claimed before the write, so that concurrent pushes do not all
		// write.
		m.written = now
		if instance != "" {
			m.instance = instance
		}
	}
	p.pushes[id] = m
	p.mu.Unlock()
	if !write {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushRecordTimeout)
	defer cancel()
	st, rev, err := streams.Update(ctx, p.stateKV, id, func(cur *sourceState) (*sourceState, error) {
		next := newState(id, now)
		if cur != nil {
			if now.Sub(cur.LastPush) < every && (instance == "" || instance == cur.LastPushInstance) {
				return nil, streams.ErrNoChange
			}
			c := *cur
			next = &c
		}
		if now.After(next.LastPush) {
			next.LastPush = now
		}
		if instance != "" {
			next.LastPushInstance = instance
		}
		return next, nil
	})
	switch {
	case errors.Is(err, streams.ErrNoChange):
		if st != nil {
			p.cacheState(id, st, rev)
		}
	case err != nil:
		p.mu.Lock()
		if cur := p.pushes[id]; cur.written.Equal(now) {
			cur.written, cur.instance = prev.written, prev.instance
			p.pushes[id] = cur
		}
		p.mu.Unlock()
		p.log.Warn("record the push on the source", "source", id, "err", err)
	default:
		p.cacheState(id, st, rev)
	}
}
