package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Poller polls sources' change feeds into EVENTS, keeps their connection
// status and sends endpoints their webhook.catchup. Its routes work without
// Start (an API-only process mounts them); Start runs the polling.
type Poller struct {
	cfg   Config
	log   *slog.Logger
	owner string // this process's lease value

	sourcesKV, stateKV, leasesKV, healthKV jetstream.KeyValue
	events, dlq                            jetstream.Stream

	mu         sync.Mutex
	registered map[string]registration
	configs    map[string]*sourceConfig // BucketSources, kept by a watcher
	states     map[string]cachedState   // BucketSourceState, kept by a watcher
	inflight   map[string]bool          // sources with a poll or notification running
	lastEvent  map[string]time.Time     // newest EVENTS message seen per source
	pushes     map[string]pushMark      // what this process recorded of each source's pushes
	catchups   map[string]bool          // endpoints whose catch-up is to be sent
	poke       chan struct{}            // wakes the catch-up worker
	// watchesDown are the buckets whose watch ended and is not open again
	// yet: Ready fails while there is one.
	watchesDown map[string]watchDown

	life       sync.Mutex
	started    bool
	stopped    bool
	running    atomic.Int32       // notStarted, running or stopped, for Ready without life
	cancel     context.CancelFunc // stops the scheduler, watchers and worker
	workCancel context.CancelFunc // cancels polls and sends in flight
	loops      sync.WaitGroup
	work       sync.WaitGroup

	metrics *metrics
	hooks   testHooks
}

// Values of Poller.running.
const (
	runNotStarted int32 = iota
	runRunning
	runStopped
)

// testHooks let tests stop a poll where a crash would.
type testHooks struct {
	// afterPublish runs once a page's publishes were acknowledged, before
	// its cursor is saved; returning true ends the poll there, as a crash
	// would.
	afterPublish func(source string) bool
	// afterTick runs after each scheduler tick, with the time it used.
	afterTick func(now time.Time)
}

type registration struct {
	src              Source
	interval, window time.Duration
}

type cachedState struct {
	st  *sourceState
	rev uint64
}

// New opens the buckets and streams the poller works with (streams.Ensure
// must have run) and checks cfg.
func New(ctx context.Context, cfg Config) (*Poller, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("poller: %w", err)
	}
	p := &Poller{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "poller"),
		owner:      newOwner(),
		registered: map[string]registration{},
		configs:    map[string]*sourceConfig{},
		states:     map[string]cachedState{},
		inflight:   map[string]bool{},
		lastEvent:  map[string]time.Time{},
		pushes:     map[string]pushMark{},
		catchups:   map[string]bool{},
		poke:       make(chan struct{}, 1),

		watchesDown: map[string]watchDown{},
	}
	var err error
	if p.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("poller: %w", err)
	}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{
		{streams.BucketSources, &p.sourcesKV}, {streams.BucketSourceState, &p.stateKV},
		{streams.BucketLeases, &p.leasesKV}, {streams.BucketHealth, &p.healthKV},
	} {
		if *b.kv, err = cfg.JS.KeyValue(ctx, b.name); err != nil {
			return nil, fmt.Errorf("poller: open bucket %s: %w", b.name, err)
		}
	}
	if p.events, err = cfg.JS.Stream(ctx, streams.StreamEvents); err != nil {
		return nil, fmt.Errorf("poller: open stream %s: %w", streams.StreamEvents, err)
	}
	if p.dlq, err = cfg.JS.Stream(ctx, streams.StreamDLQ); err != nil {
		return nil, fmt.Errorf("poller: open stream %s: %w", streams.StreamDLQ, err)
	}
	return p, nil
}

func newOwner() string { return streams.NewID("poller_") }

// Register plugs a Go source in under id, polled every interval and polled
// at once after expectedWindow without an event (zero: the configured
// defaults). Its cursor and status are kept like any source's, but it is not
// stored in BucketSources and the API does not show it; the API refuses to
// create a source with its id. Register may be called before or after
// Start. It panics on an invalid id (streams.ValidateSource, or the reserved
// "hookstream") or a nil src: a programming error.
func (p *Poller) Register(id string, src Source, interval, expectedWindow time.Duration) {
	if err := validateID(id); err != nil {
		panic("poller: register: " + err.Error())
	}
	if src == nil {
		panic("poller: register " + id + ": nil source")
	}
	if interval <= 0 {
		interval = p.cfg.IntervalDefault
	}
	if expectedWindow <= 0 {
		expectedWindow = p.cfg.ExpectedWindowDefault
	}
	p.mu.Lock()
	p.registered[id] = registration{src: src, interval: interval, window: expectedWindow}
	p.mu.Unlock()
}

// Start runs the polling scheduler, the status-event outbox and the
// catch-up watcher. It returns once the poller has read every source, state
// and endpoint health, so that the first tick sees them all.
func (p *Poller) Start(ctx context.Context) error {
	p.life.Lock()
	defer p.life.Unlock()
	switch {
	case p.stopped:
		return errors.New("poller: stopped")
	case p.started:
		return errors.New("poller: already started")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, workCancel := context.WithCancel(context.WithoutCancel(ctx))
	buckets := []watched{
		{kv: p.sourcesKV, load: p.loadSources, on: p.onSource},
		{kv: p.stateKV, load: p.loadStates, on: p.onState},
		{kv: p.healthKV, load: p.loadHealth, on: p.onHealth},
	}
	ready := make(chan error, len(buckets))
	for _, b := range buckets {
		p.loops.Add(1)
		go p.keepWatching(runCtx, b, ready)
	}
	for range buckets {
		select {
		case err := <-ready:
			if err != nil {
				cancel()
				workCancel()
				p.loops.Wait()
				return fmt.Errorf("poller: %w", err)
			}
		case <-ctx.Done():
			cancel()
			workCancel()
			p.loops.Wait()
			return fmt.Errorf("poller: start: %w", ctx.Err())
		}
	}
	p.loops.Add(2)
	go p.schedule(runCtx, workCtx)
	go p.catchupWorker(runCtx, workCtx)
	p.started, p.cancel, p.workCancel = true, cancel, workCancel
	p.running.Store(runRunning)
	p.log.Info("poller started", "owner", p.owner)
	return nil
}

// Stop stops polling: no new poll starts, the polls in flight may finish
// until ctx is done, then they are cancelled. It is idempotent and safe
// without Start. A Source must return once its context is cancelled.
func (p *Poller) Stop(ctx context.Context) error {
	p.life.Lock()
	if !p.started || p.stopped {
		p.life.Unlock()
		return nil
	}
	p.stopped = true
	p.running.Store(runStopped)
	p.life.Unlock()

	p.cancel()
	done := make(chan struct{})
	go func() {
		p.loops.Wait()
		p.work.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.workCancel()
		p.log.Info("poller stopped")
		return nil
	case <-ctx.Done():
		p.workCancel()
		<-done
		return fmt.Errorf("poller: stop: %w", ctx.Err())
	}
}

// loadSources replaces the known sources with a watch's initial values.
func (p *Poller) loadSources(es []jetstream.KeyValueEntry) {
	configs := make(map[string]*sourceConfig, len(es))
	for _, e := range es {
		if c := p.decodeSource(e); c != nil {
			configs[e.Key()] = c
		}
	}
	p.mu.Lock()
	p.configs = configs
	p.mu.Unlock()
}

func (p *Poller) onSource(e jetstream.KeyValueEntry) {
	c := p.decodeSource(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c == nil {
		delete(p.configs, e.Key())
		return
	}
	p.configs[e.Key()] = c
}

// decodeSource is the configuration e holds, nil for a deletion (or an
// unreadable record, which is logged and treated as no source).
func (p *Poller) decodeSource(e jetstream.KeyValueEntry) *sourceConfig {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	c, err := decodeRecord[sourceConfig](e.Value())
	if err != nil {
		p.log.Warn("skipping unreadable source", "source", e.Key(), "err", err)
		return nil
	}
	return c
}

// loadStates replaces the cached states with a watch's initial values. A
// poll's newer state cached meanwhile may be replaced by an older one for a
// moment: the watch brings the newer one right after.
func (p *Poller) loadStates(es []jetstream.KeyValueEntry) {
	states := make(map[string]cachedState, len(es))
	for _, e := range es {
		if st := p.decodeState(e); st != nil {
			states[e.Key()] = cachedState{st: st, rev: e.Revision()}
		}
	}
	p.mu.Lock()
	p.states = states
	p.mu.Unlock()
}

func (p *Poller) onState(e jetstream.KeyValueEntry) {
	st := p.decodeState(e)
	if st == nil {
		if e.Operation() != jetstream.KeyValuePut {
			p.mu.Lock()
			delete(p.states, e.Key())
			p.mu.Unlock()
		}
		return
	}
	p.cacheState(e.Key(), st, e.Revision())
}

// decodeState is the state e holds, nil for a deletion or an unreadable
// record (logged).
func (p *Poller) decodeState(e jetstream.KeyValueEntry) *sourceState {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	st, err := decodeRecord[sourceState](e.Value())
	if err != nil {
		p.log.Warn("skipping unreadable source state", "source", e.Key(), "err", err)
		return nil
	}
	return st
}

// cacheState keeps the newest state seen: a poll writes its result here
// before the watcher brings it, so that the scheduler never acts on the
// state from before the poll.
func (p *Poller) cacheState(id string, st *sourceState, rev uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.states[id]; ok && cur.rev >= rev {
		return
	}
	p.states[id] = cachedState{st: st, rev: rev}
}

// spec is what the scheduler needs of a source, registered or stored.
type spec struct {
	id               string
	src              Source
	interval, window time.Duration
	registered       bool
}

// specFor finds source id; registered sources win over stored ones.
func (p *Poller) specFor(id string) (spec, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.specLocked(id)
}

func (p *Poller) specLocked(id string) (spec, bool) {
	if r, ok := p.registered[id]; ok {
		return spec{id: id, src: r.src, interval: r.interval, window: r.window, registered: true}, true
	}
	c, ok := p.configs[id]
	if !ok || !c.polled() {
		// A source that only receives pushes has no feed to poll.
		return spec{}, false
	}
	src := NewHTTPSource(c.ChangesURL, c.Headers, p.cfg.HTTPClient)
	src.now = p.cfg.Now
	return spec{id: id, src: src, interval: orDefault(c.Interval, p.cfg.IntervalDefault), window: orDefault(c.ExpectedWindow, p.cfg.ExpectedWindowDefault)}, true
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
