package dispatcher

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// wtHarness is one dispatcher on its own JetStream, for the watch tests.
type wtHarness struct {
	t   *testing.T
	env *streamstest.Env
	d   *Dispatcher
}

func wtConfig() Config {
	return Config{
		DeliveryTimeout:  500 * time.Millisecond,
		AckWait:          2 * time.Second,
		RetryInitial:     20 * time.Millisecond,
		RetryMaxInterval: 200 * time.Millisecond,
		RetryMaxAge:      10 * time.Second,
		Jitter:           -1,
		PullWait:         500 * time.Millisecond,
		MemberTTL:        2 * time.Second,
		AllowPrivate:     true,
	}
}

// wtStart starts a dispatcher; before, when set, runs between New and Start
// (to replace a watch factory).
func wtStart(t *testing.T, before func(d *Dispatcher)) *wtHarness {
	t.Helper()
	cfg := wtConfig()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: cfg.RetryMaxAge, DeliveriesMargin: time.Minute}))
	cfg.JS = env.JS
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &wtHarness{t: t, env: env, d: d}
}

func (h *wtHarness) kv(name string) jetstream.KeyValue {
	h.t.Helper()
	kv, err := h.env.JS.KeyValue(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return kv
}

func (h *wtHarness) addEndpoint(id, url string, types ...string) {
	h.t.Helper()
	secret, err := webhook.GenerateSecret()
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now().UTC()
	ctx := context.Background()
	if _, err := streams.Put(ctx, h.kv(streams.BucketHealth), id, streams.NewHealth(id, now)); err != nil {
		h.t.Fatal(err)
	}
	ep := &streams.Endpoint{ID: id, URL: url, EventTypes: types, Secrets: []streams.Secret{{Key: secret, CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	if _, err := streams.Put(ctx, h.kv(streams.BucketEndpoints), id, ep); err != nil {
		h.t.Fatal(err)
	}
}

func (h *wtHarness) publish(id, typ string) uint64 {
	h.t.Helper()
	ev := &streams.Event{ID: id, Type: typ, Source: "test", Time: time.Now().UTC(), Data: []byte(`{"n":1}`)}
	res, err := streams.PublishEvent(context.Background(), h.env.JS, ev)
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Seq
}

// fannedOut reports whether fan-out stored event id's deliveries, and to
// which endpoints.
func (h *wtHarness) fannedOut(id string) ([]string, bool) {
	h.t.Helper()
	idx, err := streams.FindIndex(context.Background(), h.env.JS, id)
	if err != nil {
		h.t.Fatal(err)
	}
	if idx == nil {
		return nil, false
	}
	var eps []string
	for _, d := range idx.Deliveries {
		eps = append(eps, d.Endpoint)
	}
	return eps, true
}

// fanoutTook reports whether fan-out has been handed the event stored at
// seq (it then publishes or puts it back at once).
func (h *wtHarness) fanoutTook(seq uint64) bool {
	h.t.Helper()
	c, err := h.env.JS.Consumer(context.Background(), streams.StreamEvents, streams.ConsumerFanout)
	if err != nil {
		h.t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return ci.Delivered.Stream >= seq
}

// wtReceiver counts the webhooks it got, by webhook-id.
type wtReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func wtNewReceiver(t *testing.T) *wtReceiver {
	r := &wtReceiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got[req.Header.Get(webhook.HeaderID)]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *wtReceiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

func wtWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	streamstest.WaitFor(t, 30*time.Second, what, cond)
}

// A watch ends for real when its bucket's stream is deleted: the server
// drops the watch's consumer and nats.go, failing to create it again, closes
// Updates. While the stream is gone the catalog says it is down and fan-out
// publishes nothing; once the bucket is back, the catalog watches again,
// forgets the endpoint that is no longer there, and an endpoint created in
// the gap gets a worker and receives the event published in the gap.
func TestCatalogWatchComesBackAfterBucketRecreated(t *testing.T) {
	t.Parallel()
	h := wtStart(t, nil)
	a, b, c := wtNewReceiver(t), wtNewReceiver(t), wtNewReceiver(t)
	h.addEndpoint("wa", a.srv.URL, "t.*")
	h.publish("e0", "t.x")
	wtWait(t, "the first event delivered", func() bool { return a.count("e0") == 1 })
	if err := h.d.catalog.err(); err != nil {
		t.Fatalf("catalog err while watching: %v", err)
	}

	ctx := context.Background()
	if err := h.env.JS.DeleteStream(ctx, "KV_"+streams.BucketEndpoints); err != nil {
		t.Fatal(err)
	}
	wtWait(t, "the catalog to report its watch down", func() bool { return h.d.catalog.err() != nil })

	seq := h.publish("e1", "t.x")
	wtWait(t, "fan-out to take the event", func() bool { return h.fanoutTook(seq) })
	if eps, ok := h.fannedOut("e1"); ok {
		t.Fatalf("e1 fanned out to %v from a catalog known to be stale", eps)
	}
	if err := h.d.catalog.err(); err == nil {
		t.Fatal("catalog err is nil while its bucket is gone")
	}

	// The bucket comes back without wa; wb is created in the gap.
	if err := streams.Ensure(ctx, h.env.JS, h.env.Config); err != nil {
		t.Fatal(err)
	}
	h.addEndpoint("wb", b.srv.URL, "t.*")
	wtWait(t, "the catalog to watch again", func() bool { return h.d.catalog.err() == nil })
	wtWait(t, "the gap's event delivered to the endpoint created in the gap", func() bool { return b.count("e1") == 1 })
	// The index entry is written once the deliveries are stored, which
	// may be after the delivery itself arrived.
	wtWait(t, "e1's index entry", func() bool { _, ok := h.fannedOut("e1"); return ok })
	if eps, _ := h.fannedOut("e1"); !slices.Equal(eps, []string{"wb"}) {
		t.Fatalf("e1 fanned out to %v, want [wb]", eps)
	}
	if v := h.d.catalog.get("wa"); v != nil && v.ep != nil {
		t.Fatal("the catalog still holds an endpoint deleted while it was not watching")
	}

	h.addEndpoint("wc", c.srv.URL, "t.*")
	h.publish("e2", "t.x")
	wtWait(t, "an endpoint created after the watch came back to receive", func() bool { return c.count("e2") == 1 && b.count("e2") == 1 })
	if n := a.count("e1") + a.count("e2"); n != 0 {
		t.Fatalf("the deleted endpoint received %d events after its deletion", n)
	}
}

// wtWatches wraps a watch factory: the test can end the watches it opened
// and refuse new ones.
type wtWatches struct {
	mu      sync.Mutex
	open    []jetstream.KeyWatcher
	refuse  atomic.Bool
	opened  atomic.Int32
	refused atomic.Int32
}

func (w *wtWatches) watch(ctx context.Context, kv jetstream.KeyValue, keys string) (jetstream.KeyWatcher, error) {
	if w.refuse.Load() {
		w.refused.Add(1)
		return nil, errors.New("refused by the test")
	}
	kw, err := kv.Watch(ctx, keys)
	if err == nil {
		w.opened.Add(1)
		w.mu.Lock()
		w.open = append(w.open, kw)
		w.mu.Unlock()
	}
	return kw, err
}

// end stops every watch opened so far (their Updates channels close, as
// when nats.go gives up on one) and refuses new ones until allow.
func (w *wtWatches) end() {
	w.refuse.Store(true)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, kw := range w.open {
		_ = kw.Stop()
	}
	w.open = nil
}

func (w *wtWatches) allow() { w.refuse.Store(false) }

// While a catalog watch is down and cannot be opened again, fan-out holds
// no event and publishes none; the watch is retried with back-off, and
// when it is up again the event goes to the endpoint created meanwhile.
func TestFanoutPublishesNothingWhileCatalogWatchDown(t *testing.T) {
	t.Parallel()
	cfg := wtConfig().WithDefaults()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: cfg.RetryMaxAge, DeliveriesMargin: time.Minute}))
	h := &wtHarness{t: t, env: env}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	ws := &wtWatches{}
	c := newCatalog(h.kv(streams.BucketEndpoints), h.kv(streams.BucketHealth), time.Now, func(string) {})
	c.watchKV = ws.watch
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.watch(ctx, ready)
	}()
	<-ready
	fc, err := ensureConsumer(ctx, env.JS, streams.StreamEvents, fanoutConsumerConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	f := &fanout{cfg: cfg, js: env.JS, consumer: fc, catalog: c, log: cfg.Logger}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.run(ctx)
	}()
	h.addEndpoint("fa", "http://127.0.0.1:1", "t.*")
	h.publish("g0", "t.x")
	wtWait(t, "the first event fanned out", func() bool { _, ok := h.fannedOut("g0"); return ok })

	ws.end()
	wtWait(t, "the catalog to report its watch down", func() bool { return c.err() != nil })
	seq := h.publish("g1", "t.x")
	h.addEndpoint("fb", "http://127.0.0.1:1", "t.*")
	wtWait(t, "fan-out to take the event", func() bool { return h.fanoutTook(seq) })
	wtWait(t, "the watch to be tried again", func() bool { return ws.refused.Load() >= 2 })
	if eps, ok := h.fannedOut("g1"); ok {
		t.Fatalf("g1 fanned out to %v while the catalog watch was down", eps)
	}
	if err := c.err(); err == nil {
		t.Fatal("catalog err is nil while its watch is down")
	}

	ws.allow()
	wtWait(t, "the catalog to watch again", func() bool { return c.err() == nil })
	wtWait(t, "the gap's event fanned out", func() bool { _, ok := h.fannedOut("g1"); return ok })
	if eps, _ := h.fannedOut("g1"); !slices.Equal(eps, []string{"fa", "fb"}) && !slices.Equal(eps, []string{"fb", "fa"}) {
		t.Fatalf("g1 fanned out to %v, want fa and fb", eps)
	}
}

// The membership watch is opened again when it ends; a member that left
// while it was down is dropped and one that joined is counted.
func TestMembersWatchComesBack(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	kv, err := env.JS.KeyValue(context.Background(), streams.BucketMembers)
	if err != nil {
		t.Fatal(err)
	}
	ws := &wtWatches{}
	ttl := 2 * time.Second
	newMember := func(id string, wf watchFunc) (*members, func()) {
		m := &members{js: env.JS, kv: kv, id: id, ttl: ttl, live: map[string]bool{}, watchKV: wf}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.run(ctx)
		}()
		stop := func() {
			cancel()
			<-done
		}
		t.Cleanup(stop)
		return m, stop
	}
	m1, _ := newMember("m1", ws.watch)
	_, stop2 := newMember("m2", nil)
	wtWait(t, "m1 to see m2", func() bool { return slices.Equal(m1.list(), []string{"m1", "m2"}) })
	if err := m1.err(); err != nil {
		t.Fatalf("members err while watching: %v", err)
	}

	ws.end()
	wtWait(t, "m1's watch to be down", func() bool { return m1.err() != nil })
	stop2()
	newMember("m3", nil)
	wtWait(t, "m1's watch to be tried again", func() bool { return ws.refused.Load() >= 2 })
	if err := m1.err(); err == nil {
		t.Fatal("members err is nil while the watch is down")
	}

	ws.allow()
	wtWait(t, "m1 to watch again and see m3, not m2", func() bool {
		return m1.err() == nil && slices.Equal(m1.list(), []string{"m1", "m3"})
	})
}
