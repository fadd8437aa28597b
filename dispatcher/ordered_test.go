package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// orderReceiver is an ordered endpoint that checks, per ordering key, that
// events come one at a time (no request of a key while another of the same
// key is in flight) and in order (data.seq 0, 1, 2, …: a header then its
// lines; a delivery again of the last one delivered is at-least-once, not a
// violation), and fails a share of requests at random.
type orderReceiver struct {
	srv  *httptest.Server
	fail float64

	mu         sync.Mutex
	rnd        *rand.Rand
	inFlight   map[string]bool
	delivered  map[string]int // key -> last seq answered 2xx
	ok         int
	requests   int
	violations []string
}

func newOrderReceiver(t *testing.T, fail float64) *orderReceiver {
	r := &orderReceiver{fail: fail, rnd: rand.New(rand.NewPCG(1, 2)), inFlight: map[string]bool{}, delivered: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *orderReceiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	var body struct {
		ID          string `json:"id"`
		OrderingKey string `json:"ordering_key"`
		Data        struct {
			Seq int `json:"seq"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.OrderingKey == "" {
		r.mu.Lock()
		r.violations = append(r.violations, fmt.Sprintf("request without an ordering key: %s", raw))
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	}
	key, seq := body.OrderingKey, body.Data.Seq
	r.mu.Lock()
	r.requests++
	if r.inFlight[key] {
		r.violations = append(r.violations, fmt.Sprintf("%s: %s sent while an earlier event of the key was in flight", key, body.ID))
	}
	r.inFlight[key] = true
	last, seen := r.delivered[key]
	if !seen {
		last = -1
	}
	if seq > last+1 {
		r.violations = append(r.violations, fmt.Sprintf("%s: seq %d sent before seq %d was delivered", key, seq, last+1))
	}
	if seq < last {
		r.violations = append(r.violations, fmt.Sprintf("%s: seq %d sent after seq %d was delivered", key, seq, last))
	}
	fail := r.rnd.Float64() < r.fail
	r.mu.Unlock()
	// Something for an overlapping request to run into.
	time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
	r.mu.Lock()
	if !fail {
		r.ok++
		if seq > last {
			r.delivered[key] = seq
		}
	}
	// Cleared before the answer: the next delivery of the key may only
	// come after it.
	r.inFlight[key] = false
	r.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *orderReceiver) state() (ok, done int, violations []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.delivered {
		if s == purchaseOrderLines {
			done++
		}
	}
	return r.ok, done, append([]string(nil), r.violations...)
}

const purchaseOrderLines = 5

// publishOrders publishes n purchase orders, each an atomic batch of a
// header and purchaseOrderLines lines under ordering_key = the order id,
// from publishers goroutines at once.
func publishOrders(t *testing.T, env *streamstest.Env, n, publishers int) {
	t.Helper()
	p, err := producer.New(producer.Config{JS: env.JS, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	orders := make(chan int)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range orders {
				key := fmt.Sprintf("po-%03d", o)
				evs := []producer.Event{{ID: key + "-h", Type: "purchase_order.created", OrderingKey: key, Data: json.RawMessage(`{"seq": 0}`)}}
				for l := 1; l <= purchaseOrderLines; l++ {
					evs = append(evs, producer.Event{ID: fmt.Sprintf("%s-l%d", key, l), Type: "purchase_order.line_added", OrderingKey: key,
						Data: json.RawMessage(fmt.Sprintf(`{"seq": %d}`, l))})
				}
				if _, err := p.PublishBatch(context.Background(), evs, producer.Atomic()); err != nil {
					errs <- fmt.Errorf("order %s: %w", key, err)
					return
				}
			}
		}()
	}
	for o := range n {
		orders <- o
	}
	close(orders)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func orderedConfig() dispatcher.Config {
	cfg := fastConfig()
	cfg.RetryMaxAge = time.Minute
	// Order rests on AckWait outlasting every send: fastConfig's 2 s was
	// outlasted by a send on a loaded machine (the whole suite under -race
	// on 2 cores), which hands the lane's delivery out again. A killed
	// dispatcher's lanes come back to the others after this long.
	cfg.AckWait = 10 * time.Second
	return cfg
}

// addOrderedEndpoint registers an ordered endpoint with 16 lanes and 16
// sends in flight.
func addOrderedEndpoint(t *testing.T, env *streamstest.Env, id, url string) {
	t.Helper()
	ctx := context.Background()
	secret, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	hkv, err := env.JS.KeyValue(ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	ekv, err := env.JS.KeyValue(ctx, streams.BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Put(ctx, hkv, id, streams.NewHealth(id, now)); err != nil {
		t.Fatal(err)
	}
	ep := &streams.Endpoint{ID: id, URL: url, EventTypes: []string{"purchase_order.*"}, Secrets: []streams.Secret{{Key: secret, CreatedAt: now}},
		Ordered: true, Partitions: 16, Concurrency: 16, CreatedAt: now, UpdatedAt: now}
	if _, err := streams.Put(ctx, ekv, id, ep); err != nil {
		t.Fatal(err)
	}
}

func startDispatcher(t *testing.T, env *streamstest.Env, name string, cfg dispatcher.Config) (*dispatcher.Dispatcher, func()) {
	t.Helper()
	nc, js := env.Connect(t, name)
	cfg.JS = js
	cfg.Logger = slog.New(slog.DiscardHandler)
	d, err := dispatcher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	}
	t.Cleanup(stop)
	// kill is the closest to kill -9 in-process: the connection goes at
	// once (nothing more acked or NAKed), then the sends in flight are
	// cancelled.
	kill := func() {
		nc.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = d.Stop(ctx)
	}
	return d, kill
}

func assertOrdersDelivered(t *testing.T, r *orderReceiver, orders int) {
	t.Helper()
	streamstest.WaitFor(t, 2*time.Minute, "every purchase order delivered", func() bool {
		_, done, v := r.state()
		return done == orders || len(v) > 0
	})
	ok, done, v := r.state()
	for i, s := range v {
		if i == 20 {
			t.Errorf("… and %d more", len(v)-20)
			break
		}
		t.Error(s)
	}
	if done != orders {
		t.Fatalf("%d of %d orders delivered whole", done, orders)
	}
	t.Logf("%d deliveries, %d requests", ok, r.requests)
}

// 200 purchase orders, each an atomic batch of a header and 5 lines under
// its order id as ordering key, published by 8 publishers at once to an
// ordered endpoint that fails 30 % of requests: every event delivered, each
// order's header first and its lines in order, and never two requests of
// one key at once.
func TestOrderedPurchaseOrders(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: time.Minute, DeliveriesMargin: time.Minute}))
	r := newOrderReceiver(t, 0.3)
	addOrderedEndpoint(t, env, "ep_orders", r.srv.URL)
	// No dispatcher dies here, so nothing needs AckWait to come back: a
	// long one keeps a send slowed past 2 s by a loaded machine (the whole
	// suite under -race on 2 cores) from being handed out again while it
	// is still in flight, which the receiver would rightly count as two
	// requests of one key at once.
	cfg := orderedConfig()
	cfg.AckWait = 30 * time.Second
	startDispatcher(t, env, "d1", cfg)
	publishOrders(t, env, 200, 8)
	assertOrdersDelivered(t, r, 200)
}

// The same with two dispatchers sharing the endpoint, one of them killed
// half-way: its lanes' deliveries in flight come back after AckWait to
// the other, and the ordered fan-out moves to the other once its pin
// expires; the order holds throughout.
func TestOrderedPurchaseOrdersDispatcherKilled(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: time.Minute, DeliveriesMargin: time.Minute}))
	r := newOrderReceiver(t, 0.3)
	addOrderedEndpoint(t, env, "ep_orders", r.srv.URL)
	_, killA := startDispatcher(t, env, "a", orderedConfig())
	// A fans out first, so it holds the ordered fan-out's pin when it is
	// killed: B has to take the fan-out over, not only A's lanes.
	publishOrders(t, env, 1, 1)
	streamstest.WaitFor(t, 20*time.Second, "the first order delivered through A", func() bool {
		_, done, _ := r.state()
		return done == 1
	})
	startDispatcher(t, env, "b", orderedConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// po-000 again: an atomic batch already stored, answered as
		// duplicates and stored once.
		publishOrders(t, env, 200, 8)
	}()
	streamstest.WaitFor(t, time.Minute, "half the events delivered", func() bool {
		ok, _, _ := r.state()
		return ok >= 600
	})
	killA()
	<-done
	assertOrdersDelivered(t, r, 200)
}
