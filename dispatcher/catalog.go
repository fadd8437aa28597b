package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// endpointView is what a dispatcher knows of one endpoint: its configuration
// and its shared health, both kept current by KV watches. Views are
// replaced, never mutated, so a worker can hold one without locking.
type endpointView struct {
	ep     *streams.Endpoint
	signer *webhook.Signer
	// signerUntil is when a secret of the signer expires and the signer must
	// be rebuilt (zero: never).
	signerUntil time.Time
	health      *streams.Health
	healthRev   uint64
}

func (v *endpointView) status() string {
	if v.health == nil {
		return streams.StatusHealthy
	}
	return v.health.Status
}

// catalog mirrors the endpoints and health buckets in memory. It is a
// cache: when a watch ends it is opened again (with back-off), and what it
// reports then replaces what was held, deletions made meanwhile included.
// While a watch is down, err says so and caughtUp refuses, so that fan-out
// never works from a catalog it knows to be stale.
type catalog struct {
	endpoints jetstream.KeyValue
	health    jetstream.KeyValue
	now       func() time.Time
	onChange  func(id string)
	// log defaults to slog.Default().
	log *slog.Logger
	// watchKV opens the watches; tests replace it to end one.
	watchKV watchFunc

	mu       sync.RWMutex
	views    map[string]*endpointView
	applied  uint64 // the endpoints bucket's revision seen so far
	appliedC *sync.Cond
	// down is why the catalog may be stale: not loaded yet, or a watch
	// being opened again. nil while both watches are up.
	down error
	// The buckets' streams as last watched: a stream created anew starts
	// its revisions again, so what was held is not newer than its values.
	endpointsCreated, healthCreated time.Time
}

func newCatalog(endpoints, health jetstream.KeyValue, now func() time.Time, onChange func(string)) *catalog {
	c := &catalog{
		endpoints: endpoints, health: health, now: now, onChange: onChange, views: map[string]*endpointView{},
		down: errors.New("endpoint catalog: not loaded yet"),
	}
	c.appliedC = sync.NewCond(&c.mu)
	return c
}

// err is nil while the catalog follows both buckets, and otherwise says
// which watch is down (or that the endpoints are not loaded yet).
func (c *catalog) err() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.down
}

func (c *catalog) setErr(err error) {
	c.mu.Lock()
	c.down = err
	c.appliedC.Broadcast()
	c.mu.Unlock()
}

// waitUp waits until both watches are up, or ctx ends.
func (c *catalog) waitUp(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.appliedC.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.down != nil && ctx.Err() == nil {
		c.appliedC.Wait()
	}
}

// get returns the current view of id, rebuilding its signer when a secret
// expired.
func (c *catalog) get(id string) *endpointView {
	c.mu.RLock()
	v := c.views[id]
	c.mu.RUnlock()
	if v == nil || v.ep == nil {
		return v
	}
	if !v.signerUntil.IsZero() && !c.now().Before(v.signerUntil) {
		c.mu.Lock()
		if cur := c.views[id]; cur == v {
			nv := *v
			nv.signer, nv.signerUntil = buildSigner(v.ep, c.now())
			c.views[id] = &nv
			v = &nv
		}
		c.mu.Unlock()
	}
	return v
}

// all returns every configured endpoint's view.
func (c *catalog) all() []*endpointView {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*endpointView, 0, len(c.views))
	for _, v := range c.views {
		if v.ep != nil {
			out = append(out, v)
		}
	}
	return out
}

func buildSigner(ep *streams.Endpoint, now time.Time) (*webhook.Signer, time.Time) {
	var keys [][]byte
	var until time.Time
	for _, s := range ep.ActiveSecrets(now) {
		k, err := webhook.ParseSecret(s.Key)
		if err != nil {
			continue
		}
		keys = append(keys, k)
		if !s.ExpiresAt.IsZero() && (until.IsZero() || s.ExpiresAt.Before(until)) {
			until = s.ExpiresAt
		}
	}
	return webhook.NewSigner(keys...), until
}

func (c *catalog) setEndpoint(id string, ep *streams.Endpoint, rev uint64) {
	c.mu.Lock()
	old := c.views[id]
	nv := &endpointView{}
	if old != nil {
		*nv = *old
	}
	nv.ep = ep
	if ep != nil {
		nv.signer, nv.signerUntil = buildSigner(ep, c.now())
	}
	if ep == nil && nv.health == nil {
		delete(c.views, id)
	} else {
		c.views[id] = nv
	}
	if rev > c.applied {
		c.applied = rev
	}
	c.appliedC.Broadcast()
	c.mu.Unlock()
	c.onChange(id)
}

// setHealth records h at rev unless a newer revision is already known.
func (c *catalog) setHealth(id string, h *streams.Health, rev uint64) {
	c.mu.Lock()
	old := c.views[id]
	if old != nil && old.healthRev >= rev && rev != 0 {
		c.mu.Unlock()
		return
	}
	nv := &endpointView{}
	if old != nil {
		*nv = *old
	}
	nv.health, nv.healthRev = h, rev
	if h == nil && nv.ep == nil {
		delete(c.views, id)
	} else {
		c.views[id] = nv
	}
	c.mu.Unlock()
	c.onChange(id)
}

// caughtUp waits until the endpoints bucket's state as of now is applied,
// so that an endpoint created before an event was published receives it.
// It fails at once while a watch is down, and as soon as one goes down.
func (c *catalog) caughtUp(ctx context.Context) error {
	if err := c.err(); err != nil {
		return err
	}
	st, err := c.endpoints.Status(ctx)
	if err != nil {
		return fmt.Errorf("endpoints bucket status: %w", err)
	}
	kvs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil
	}
	want := kvs.StreamInfo().State.LastSeq
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down != nil || c.applied >= want {
		return c.down
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.appliedC.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.down == nil && c.applied < want {
		if ctx.Err() != nil {
			return fmt.Errorf("endpoint catalog at revision %d of %d: %w", c.applied, want, ctx.Err())
		}
		c.appliedC.Wait()
	}
	return c.down
}

// watch mirrors both buckets until ctx ends, opening the watches again
// whenever one ends. ready is closed once the initial values are in.
func (c *catalog) watch(ctx context.Context, ready chan<- struct{}) error {
	log := c.log
	if log == nil {
		log = slog.Default()
	}
	rewatch(ctx, log, "endpoint catalog", c.setErr, func(ctx context.Context, up func()) error {
		return c.session(ctx, func() {
			up()
			if ready != nil {
				close(ready)
				ready = nil
			}
		})
	})
	return nil
}

// session watches both buckets once: it applies their current values,
// forgets what they no longer hold, calls up, then follows their changes
// until a watch ends.
func (c *catalog) session(ctx context.Context, up func()) error {
	// The buckets' state before the watches open: every key in it is in the
	// watches' initial values or was deleted.
	ep, err := bucketAt(ctx, c.endpoints)
	if err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	hp, err := bucketAt(ctx, c.health)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	c.restart(ep, hp)
	openWatch := c.watchKV
	if openWatch == nil {
		openWatch = watchKeys
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ew, err := openWatch(wctx, c.endpoints, jetstream.AllKeys)
	if err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	defer func() { _ = ew.Stop() }()
	hw, err := openWatch(wctx, c.health, jetstream.AllKeys)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer func() { _ = hw.Stop() }()
	eSeen, hSeen := map[string]bool{}, map[string]bool{}
	eDone, hDone, isUp := false, false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ew.Updates():
			if !ok {
				return fmt.Errorf("endpoints: %w", errWatchEnded)
			}
			switch {
			case e == nil:
				eDone = true
				c.forgetEndpoints(eSeen, ep.last)
			default:
				if !eDone {
					eSeen[e.Key()] = true
				}
				c.applyEndpoint(e)
			}
		case e, ok := <-hw.Updates():
			if !ok {
				return fmt.Errorf("health: %w", errWatchEnded)
			}
			switch {
			case e == nil:
				hDone = true
				c.forgetHealth(hSeen, hp.last)
			default:
				if !hDone {
					hSeen[e.Key()] = true
				}
				c.applyHealth(e)
			}
		}
		if eDone && hDone && !isUp {
			isUp = true
			up()
		}
	}
}

// restart notes the buckets' streams; one created anew since the last
// watch numbers its revisions from 1 again, so what is held must not win
// over its values by revision.
func (c *catalog) restart(ep, hp bucketPoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.endpointsCreated.IsZero() && !ep.created.Equal(c.endpointsCreated) {
		c.applied = 0
	}
	c.endpointsCreated = ep.created
	if !c.healthCreated.IsZero() && !hp.created.Equal(c.healthCreated) {
		for id, v := range c.views {
			if v.healthRev != 0 {
				nv := *v
				nv.healthRev = 0
				c.views[id] = &nv
			}
		}
	}
	c.healthCreated = hp.created
}

// forgetEndpoints drops the endpoints a (re-)watch's initial values did not
// hold: they were deleted while no watch was up. Then everything up to last
// is applied.
func (c *catalog) forgetEndpoints(seen map[string]bool, last uint64) {
	c.mu.RLock()
	var gone []string
	for id, v := range c.views {
		if v.ep != nil && !seen[id] {
			gone = append(gone, id)
		}
	}
	c.mu.RUnlock()
	for _, id := range gone {
		c.setEndpoint(id, nil, 0)
	}
	c.mu.Lock()
	if last > c.applied {
		c.applied = last
	}
	c.appliedC.Broadcast()
	c.mu.Unlock()
}

// forgetHealth drops the health records a (re-)watch's initial values did
// not hold, except those this process wrote after the watch opened.
func (c *catalog) forgetHealth(seen map[string]bool, last uint64) {
	c.mu.RLock()
	var gone []string
	for id, v := range c.views {
		if v.health != nil && !seen[id] && v.healthRev <= last {
			gone = append(gone, id)
		}
	}
	c.mu.RUnlock()
	for _, id := range gone {
		c.setHealth(id, nil, 0)
	}
}

func (c *catalog) applyEndpoint(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		c.setEndpoint(e.Key(), nil, e.Revision())
		return
	}
	var ep streams.Endpoint
	if err := streams.Unmarshal(e.Value(), &ep); err != nil {
		c.mu.Lock()
		if e.Revision() > c.applied {
			c.applied = e.Revision()
		}
		c.appliedC.Broadcast()
		c.mu.Unlock()
		return
	}
	c.setEndpoint(e.Key(), &ep, e.Revision())
}

func (c *catalog) applyHealth(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		c.setHealth(e.Key(), nil, e.Revision())
		return
	}
	var h streams.Health
	if err := streams.Unmarshal(e.Value(), &h); err != nil {
		return
	}
	c.setHealth(e.Key(), &h, e.Revision())
}
