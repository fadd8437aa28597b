package dispatcher

import (
	"context"
	"errors"
	"fmt"
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

// catalog mirrors the endpoints and health buckets in memory.
type catalog struct {
	endpoints jetstream.KeyValue
	health    jetstream.KeyValue
	now       func() time.Time
	onChange  func(id string)

	mu       sync.RWMutex
	views    map[string]*endpointView
	applied  uint64 // the endpoints bucket's revision seen so far
	appliedC *sync.Cond
}

func newCatalog(endpoints, health jetstream.KeyValue, now func() time.Time, onChange func(string)) *catalog {
	c := &catalog{endpoints: endpoints, health: health, now: now, onChange: onChange, views: map[string]*endpointView{}}
	c.appliedC = sync.NewCond(&c.mu)
	return c
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
func (c *catalog) caughtUp(ctx context.Context) error {
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
	if c.applied >= want {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.appliedC.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.applied < want {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.appliedC.Wait()
	}
	return nil
}

// watch mirrors both buckets until ctx ends. ready is closed once the
// initial values are in.
func (c *catalog) watch(ctx context.Context, ready chan<- struct{}) error {
	ew, err := c.endpoints.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch endpoints: %w", err)
	}
	defer ew.Stop()
	hw, err := c.health.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch health: %w", err)
	}
	defer hw.Stop()
	eDone, hDone := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ew.Updates():
			if !ok {
				return errors.New("endpoints watch closed")
			}
			if e == nil {
				eDone = true
			} else {
				c.applyEndpoint(e)
			}
		case e, ok := <-hw.Updates():
			if !ok {
				return errors.New("health watch closed")
			}
			if e == nil {
				hDone = true
			} else {
				c.applyHealth(e)
			}
		}
		if eDone && hDone && ready != nil {
			close(ready)
			ready = nil
		}
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
