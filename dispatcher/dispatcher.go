// Package dispatcher owns delivery: the fan-out from EVENTS to one
// DELIVERIES message per subscribed endpoint, the signed webhook requests,
// the retry schedule (NAK with delay, up to the give-up age), dead-lettering,
// and endpoint health shared by every dispatcher process (failing endpoints
// are probed one request at a time while their backlog stays unread in
// JetStream, so one dead endpoint never slows the others).
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// Dispatcher runs fan-out and delivery. Any number may run at once against
// the same streams: they share the durable consumers, the endpoints' health
// and their limits.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	js            jetstream.JetStream
	deliveries    jetstream.Stream
	endpointsKV   jetstream.KeyValue
	healthKV      jetstream.KeyValue
	deliveryState jetstream.KeyValue
	dlqState      jetstream.KeyValue

	catalog  *catalog
	health   *healthStore
	notifier *notifier
	members  *members
	slots    *slots
	sender   *sender
	attempts *attemptLog

	mu        sync.Mutex
	started   bool
	stopped   bool
	runCtx    context.Context
	runCancel context.CancelFunc
	sendCtx   context.Context
	sendStop  context.CancelFunc
	workers   map[string]*worker
	// lanes are the lane workers of ordered endpoints, by lane; limiters
	// their shared rate limiters.
	lanes    map[string][]*worker
	limiters map[string]*rate.Limiter
	bg       sync.WaitGroup
	ready    chan struct{}

	// consumerSlots bounds the consumers being created at once: a
	// thousand endpoints' workers starting together must not crowd out
	// every other JetStream request.
	consumerSlots chan struct{}

	notifyMu sync.Mutex
	toNotify map[string]bool
	notifyC  chan struct{}
}

// New validates cfg and builds a Dispatcher; Start connects it.
func New(cfg Config) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if cfg.JS == nil {
		return nil, errors.New("js: required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		cfg: cfg, log: cfg.Logger.With("component", "dispatcher"), metrics: newMetrics(cfg.Metrics, !cfg.NoEndpointLabel),
		workers: map[string]*worker{}, lanes: map[string][]*worker{}, limiters: map[string]*rate.Limiter{}, ready: make(chan struct{}),
		toNotify: map[string]bool{}, notifyC: make(chan struct{}, 1),
		consumerSlots: make(chan struct{}, 16),
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(newStateCollector(d)); err != nil {
			return nil, fmt.Errorf("dispatcher: metrics: %w", err)
		}
	}
	conc := max(cfg.Concurrency, 100)
	d.sender = &sender{
		client:    netguard.NewClient(&netguard.Dialer{AllowPrivate: cfg.AllowPrivate, Resolver: cfg.Resolver}, conc, 0),
		userAgent: cfg.UserAgent,
		timeout:   cfg.DeliveryTimeout,
	}
	return d, nil
}

// Start opens the streams and buckets, creates the fan-out consumer, loads
// the endpoints and starts delivering. It returns once running.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("dispatcher: already started")
	}
	d.started = true
	d.mu.Unlock()

	// A context of our own with a wide async-publish window: one event to a
	// thousand endpoints is a thousand publishes in flight.
	js, err := jetstream.New(d.cfg.JS.Conn(), jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	d.js = js
	if d.deliveries, err = js.Stream(ctx, streams.StreamDeliveries); err != nil {
		return fmt.Errorf("dispatcher: stream %s: %w", streams.StreamDeliveries, err)
	}
	// The stream's max age must outlast a delivery's final attempt, or the
	// server deletes deliveries that wait for it, with no record.
	if ma, need := d.deliveries.CachedInfo().Config.MaxAge, d.cfg.RetryMaxAge+d.cfg.AckWait; ma != 0 && ma < need {
		return fmt.Errorf("retry-max-age: stream %s keeps deliveries %s, less than --retry-max-age %s + --ack-wait %s: "+
			"deliveries would be deleted before their final attempt (start a role with this --retry-max-age to grow it)",
			streams.StreamDeliveries, ma, d.cfg.RetryMaxAge, d.cfg.AckWait)
	}
	kvs := map[string]*jetstream.KeyValue{
		streams.BucketEndpoints: &d.endpointsKV, streams.BucketHealth: &d.healthKV,
		streams.BucketDeliveryState: &d.deliveryState, streams.BucketDLQState: &d.dlqState,
	}
	for name, dst := range kvs {
		if *dst, err = js.KeyValue(ctx, name); err != nil {
			return fmt.Errorf("dispatcher: bucket %s: %w", name, err)
		}
	}
	membersKV, err := js.KeyValue(ctx, streams.BucketMembers)
	if err != nil {
		return fmt.Errorf("dispatcher: bucket %s: %w", streams.BucketMembers, err)
	}
	if d.cfg.Alone {
		if err := clearPreviousRun(ctx, membersKV); err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
	}
	fc, err := ensureConsumer(ctx, js, streams.StreamEvents, fanoutConsumerConfig(d.cfg))
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	ofc, err := ensureConsumer(ctx, js, streams.StreamEvents, fanoutOrderedConsumerConfig(d.cfg))
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	events, err := js.Stream(ctx, streams.StreamEvents)
	if err != nil {
		return fmt.Errorf("dispatcher: stream %s: %w", streams.StreamEvents, err)
	}

	d.catalog = newCatalog(d.endpointsKV, d.healthKV, d.cfg.Now, d.changed)
	d.attempts = newAttemptLog(js, d.log, d.cfg.AttemptLogFlush)
	d.health = &healthStore{kv: d.healthKV, deliveries: d.deliveries, cfg: d.cfg, catalog: d.catalog, log: d.log}
	d.notifier = &notifier{js: js, kv: d.healthKV, log: d.log}
	d.members = &members{js: js, kv: membersKV, id: streams.NewID(""), ttl: d.cfg.MemberTTL, live: map[string]bool{}, log: d.log}
	d.slots = newSlots(membersKV, d.members, d.poke, d.log)
	d.catalog.log = d.log

	d.mu.Lock()
	d.runCtx, d.runCancel = context.WithCancel(context.Background())
	d.sendCtx, d.sendStop = context.WithCancel(context.Background())
	runCtx := d.runCtx
	d.mu.Unlock()

	catalogReady := make(chan struct{})
	d.goBG(func() {
		if err := d.catalog.watch(runCtx, catalogReady); err != nil && runCtx.Err() == nil {
			d.log.Error("endpoint watch ended", "err", err)
		}
	})
	select {
	case <-catalogReady:
	case <-ctx.Done():
		_ = d.Stop(context.Background())
		return fmt.Errorf("dispatcher: loading endpoints: %w", ctx.Err())
	}
	d.goBG(func() { d.members.run(runCtx) })
	d.goBG(func() { d.slots.run(runCtx) })
	d.goBG(func() { d.notifyLoop(runCtx) })
	d.goBG(func() { d.attempts.run(runCtx) })
	f := &fanout{cfg: d.cfg, js: js, consumer: fc, catalog: d.catalog, log: d.log, metrics: d.metrics}
	d.goBG(func() { f.run(runCtx) })
	of := &orderedFanout{cfg: d.cfg, js: js, events: events, consumer: ofc, catalog: d.catalog, log: d.log.With("fanout", "ordered"), metrics: d.metrics}
	d.goBG(func() { of.run(runCtx) })
	d.goBG(func() { d.janitor(runCtx) })
	// Endpoints loaded before the watch reported ready got their workers
	// from changed(); make sure every one has one.
	for _, v := range d.catalog.all() {
		d.changed(v.ep.ID)
	}
	if err := d.members.waitLoaded(ctx); err != nil {
		_ = d.Stop(context.Background())
		return fmt.Errorf("dispatcher: loading members: %w", err)
	}
	close(d.ready)
	d.log.Info("dispatcher started", "member", d.members.id)
	return nil
}

func (d *Dispatcher) goBG(fn func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
}

// changed is called for every change to an endpoint's configuration or
// health: it starts the endpoint's worker if needed, wakes it, and queues
// its status event if one is pending.
func (d *Dispatcher) changed(id string) {
	v := d.catalog.get(id)
	d.mu.Lock()
	if d.stopped || d.runCtx == nil {
		d.mu.Unlock()
		return
	}
	var woken []*worker
	if v != nil && v.ep != nil && v.ep.Ordered {
		d.startLanesLocked(id, v.ep.Lanes())
		woken = append(woken, d.lanes[id]...)
	}
	w := d.workers[id]
	if w == nil && v != nil && v.ep != nil && !v.ep.Ordered {
		w = newWorker(d, id)
		d.workers[id] = w
		d.metrics.endpointSeen(id)
		runCtx, sendCtx := d.runCtx, d.sendCtx
		d.goBG(func() {
			w.run(runCtx, sendCtx)
			d.slots.forget(id)
			if cur := d.catalog.get(id); cur == nil || cur.ep == nil || cur.ep.Deleted {
				d.metrics.endpointGone(id)
			}
			d.mu.Lock()
			if d.workers[id] == w {
				delete(d.workers, id)
			}
			d.mu.Unlock()
		})
	}
	d.mu.Unlock()
	if w != nil {
		w.poke()
	}
	for _, lw := range woken {
		if lw != nil {
			lw.poke()
		}
	}
	if v != nil && v.health != nil && v.health.StatusEvent() != nil {
		d.notifyMu.Lock()
		d.toNotify[id] = true
		d.notifyMu.Unlock()
		select {
		case d.notifyC <- struct{}{}:
		default:
		}
	}
}

func (d *Dispatcher) notifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.notifyC:
		}
		d.notifyMu.Lock()
		ids := make([]string, 0, len(d.toNotify))
		for id := range d.toNotify {
			ids = append(ids, id)
		}
		clear(d.toNotify)
		d.notifyMu.Unlock()
		for _, id := range ids {
			if v := d.catalog.get(id); v != nil && v.health != nil {
				d.notifier.publish(ctx, v.health)
			}
		}
	}
}

// Ready reports whether the dispatcher is running: started, endpoints
// loaded, consumers running, NATS connected.
func (d *Dispatcher) Ready() error {
	select {
	case <-d.ready:
	default:
		return errors.New("dispatcher: not started")
	}
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped {
		return errors.New("dispatcher: stopped")
	}
	if !d.js.Conn().IsConnected() {
		return errors.New("dispatcher: nats not connected")
	}
	for _, err := range []error{d.catalog.err(), d.members.err(), d.slots.err()} {
		if err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
	}
	return nil
}

// poke wakes the workers of endpoint id (its lanes' too), if it has any.
func (d *Dispatcher) poke(id string) {
	d.mu.Lock()
	w := d.workers[id]
	lanes := append([]*worker(nil), d.lanes[id]...)
	d.mu.Unlock()
	if w != nil {
		w.poke()
	}
	for _, lw := range lanes {
		if lw != nil {
			lw.poke()
		}
	}
}

// Stop stops taking deliveries, lets those in flight finish until ctx ends,
// then cancels the rest (they are redelivered, to any dispatcher, after
// AckWait or at once when NAKed). It is idempotent and safe without Start.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	if d.stopped || d.runCancel == nil {
		d.stopped = true
		d.mu.Unlock()
		return nil
	}
	d.stopped = true
	d.runCancel()
	sendStop := d.sendStop
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
		sendStop()
		// The sends that ended after the log's last flush.
		d.attempts.flushAll()
		return nil
	case <-ctx.Done():
		sendStop()
		<-done
		d.attempts.flushAll()
		return fmt.Errorf("dispatcher stop: in-flight deliveries cancelled: %w", ctx.Err())
	}
}

// Members is how many dispatcher processes share the endpoints' limits now.
func (d *Dispatcher) Members() int {
	if d.members == nil {
		return 1
	}
	return d.members.count()
}

// ensureDeliveryConsumer creates (or updates) an endpoint's consumer,
// a bounded number at a time.
func (d *Dispatcher) ensureDeliveryConsumer(ctx context.Context, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	select {
	case d.consumerSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.consumerSlots }()
	return ensureConsumer(ctx, d.js, streams.StreamDeliveries, cc)
}

// clearPreviousRun removes the membership and slot records of a previous
// run of the only dispatcher that can use these streams: that run is dead,
// and its slots would otherwise be held until its member key expired.
func clearPreviousRun(ctx context.Context, kv jetstream.KeyValue) error {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("members of a previous run: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, membersPrefix) || strings.HasPrefix(k, slotsPrefix) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("members of a previous run: %w", err)
		}
	}
	return nil
}
