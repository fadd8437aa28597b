package crash

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// The endpoint behaviours run a Dispatcher in the test process, so that
// they can read its goroutines and heap. Those are the process's, so these
// tests do not call t.Parallel(): they run one at a time, before the
// parallel process tests start, and nothing else disturbs the figures.

// scaledConfig scales the 10 s … 24 h delivery schedule down to
// milliseconds and seconds.
func scaledConfig() dispatcher.Config {
	return dispatcher.Config{
		DeliveryTimeout:  300 * time.Millisecond,
		AckWait:          2 * time.Second,
		RetryInitial:     20 * time.Millisecond,
		RetryMaxInterval: 200 * time.Millisecond,
		RetryMaxAge:      2 * time.Second,
		RetryMinDelay:    5 * time.Millisecond,
		Jitter:           -1,
		FailingAfter:     5,
		Concurrency:      10,
		PullWait:         200 * time.Millisecond,
		MemberTTL:        2 * time.Second,
		AllowPrivate:     true,
	}
}

// goroutinesPerSend bounds the goroutines one delivery in flight costs:
// its send, the client connection's read and write loops, and the
// receiver's connection and handler.
const goroutinesPerSend = 6

// goroutineSlack is what the dispatcher runs besides its sends (a worker
// and its pull per endpoint, the fan-out, watches, heartbeats) and the
// sampler itself.
const goroutineSlack = 40

// world is one scenario's JetStream, endpoint registry and dispatcher.
type world struct {
	t    *testing.T
	cfg  dispatcher.Config
	env  *streamstest.Env
	reg  *endpoints.Registry
	d    *dispatcher.Dispatcher
	logs *syncBuffer

	mu       sync.Mutex
	outcomes []dispatcher.Outcome
}

// newWorld checks that every goroutine the scenario starts is gone when it
// ends, then starts JetStream, the registry and a dispatcher with cfg.
func newWorld(t *testing.T, cfg dispatcher.Config) *world {
	t.Helper()
	before := runtime.NumGoroutine()
	// Registered first, so it runs last: after the dispatcher, the
	// receivers and the server were stopped.
	t.Cleanup(func() {
		streamstest.WaitFor(t, 10*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
			return runtime.NumGoroutine() <= before
		})
	})
	w := &world{t: t, cfg: cfg, logs: &syncBuffer{}}
	w.env = streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: cfg.RetryMaxAge, DeliveriesMargin: time.Minute}))
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	w.reg, err = endpoints.New(ctx, endpoints.Config{JS: w.env.JS, AllowPrivate: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.JS, cfg.Logger = w.env.JS, log
	cfg.Observer = func(o dispatcher.Outcome) {
		w.mu.Lock()
		w.outcomes = append(w.outcomes, o)
		w.mu.Unlock()
	}
	w.d, err = dispatcher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.d.Stop(sctx); err != nil {
			t.Errorf("dispatcher stop: %v", err)
		}
		if t.Failed() {
			t.Logf("dispatcher log: %s", w.logs.tail(6000))
		}
	})
	return w
}

// addEndpoint registers an endpoint through the registry, as the API does.
func (w *world) addEndpoint(url string, types ...string) string {
	w.t.Helper()
	ep, err := w.reg.Create(context.Background(), endpoints.CreateInput{URL: url, EventTypes: types})
	if err != nil {
		w.t.Fatalf("create endpoint %s: %v", url, err)
	}
	return ep.ID
}

// publish stores n events of type typ, ids prefix-0000 … , from 8
// publishers at once, and returns their ids.
func (w *world) publish(prefix, typ string, n int) []string {
	w.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				ev := &streams.Event{ID: ids[i], Type: typ, Source: "crash", Time: time.Now().UTC(), Data: []byte(`{"n":1}`)}
				if _, err := streams.PublishEvent(context.Background(), w.env.JS, ev); err != nil {
					errs <- fmt.Errorf("publish %s: %w", ids[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		w.t.Fatal(err)
	}
	return ids
}

// delivered is the set of events the Observer saw answered 2xx for epID.
func (w *world) delivered(epID string) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, o := range w.outcomes {
		if o.EndpointID == epID && o.Delivered {
			out[o.EventID]++
		}
	}
	return out
}

// attempted is how many attempts the Observer saw for epID, and the
// highest attempt number.
func (w *world) attempted(epID string) (n, highest int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.outcomes {
		// Attempt 0: dead-lettered without a send (its deadline came).
		if o.EndpointID == epID && o.Attempt > 0 {
			n++
			highest = max(highest, o.Attempt)
		}
	}
	return n, highest
}

// deadLetterCount is how many records DLQ holds for epID.
func (w *world) deadLetterCount(epID string) int {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.env.JS.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(streams.DLQSubject(epID)))
	if err != nil {
		w.t.Fatal(err)
	}
	return int(info.State.Subjects[streams.DLQSubject(epID)])
}

// deadLetters reads every DLQ record of epID, by event id.
func (w *world) deadLetters(epID string) map[string][]streams.DeadLetter {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.env.JS.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string][]streams.DeadLetter{}
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(streams.DLQSubject(epID)))
		if err != nil {
			return out
		}
		var rec streams.DeadLetter
		if err := streams.Unmarshal(raw.Data, &rec); err != nil {
			w.t.Fatal(err)
		}
		out[rec.Event.ID] = append(out[rec.Event.ID], rec)
		seq = raw.Sequence + 1
	}
}

// deliveryState is the state GET /v1/events/{id} shows for the delivery,
// read through the producer's own route.
func (w *world) deliveryState(eventID, epID string) string {
	w.t.Helper()
	p, err := producer.New(producer.Config{JS: w.env.JS})
	if err != nil {
		w.t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range p.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/events/"+url.PathEscape(eventID), nil))
	if rec.Code != http.StatusOK {
		w.t.Fatalf("GET /v1/events/%s: %d %s", eventID, rec.Code, rec.Body)
	}
	var view struct {
		Deliveries []struct{ Endpoint, State string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil {
		w.t.Fatal(err)
	}
	for _, d := range view.Deliveries {
		if d.Endpoint == epID {
			return d.State
		}
	}
	return ""
}

// status is the endpoint's health status.
func (w *world) status(epID string) string {
	w.t.Helper()
	ctx := context.Background()
	kv, err := w.env.JS.KeyValue(ctx, streams.BucketHealth)
	if err != nil {
		w.t.Fatal(err)
	}
	h, _, _, err := streams.Get[streams.Health](ctx, kv, epID)
	if err != nil || h == nil {
		w.t.Fatalf("health of %s: %v", epID, err)
	}
	return h.Status
}

// expectDeadLettered waits until every one of ids is dead-lettered for
// epID, and checks each has exactly one record, expired, whose attempts
// pass check. It returns the records.
func (w *world) expectDeadLettered(epID string, ids []string, check func(streams.Attempt) error) map[string][]streams.DeadLetter {
	w.t.Helper()
	streamstest.WaitFor(w.t, w.cfg.RetryMaxAge+20*time.Second, fmt.Sprintf("%d dead letters", len(ids)), func() bool {
		return w.deadLetterCount(epID) >= len(ids)
	})
	recs := w.deadLetters(epID)
	if len(recs) != len(ids) {
		w.t.Errorf("dead letters for %d events, want %d", len(recs), len(ids))
	}
	for _, id := range ids {
		rs := recs[id]
		if len(rs) != 1 {
			w.t.Errorf("%s: %d dead letters, want 1", id, len(rs))
			continue
		}
		r := rs[0]
		if r.Reason != streams.ReasonExpired || r.EndpointID != epID || r.AttemptCount < len(r.Attempts) {
			w.t.Errorf("%s: dead letter reason %q endpoint %q attempts %d/%d", id, r.Reason, r.EndpointID, len(r.Attempts), r.AttemptCount)
		}
		for _, a := range r.Attempts {
			if err := check(a); err != nil {
				w.t.Errorf("%s attempt %d: %v", id, a.Attempt, err)
			}
		}
		if st := w.deliveryState(id, epID); st != streams.DeliveryDead {
			w.t.Errorf("%s: delivery state %q, want %q", id, st, streams.DeliveryDead)
		}
	}
	return recs
}

// usage samples the process's goroutines and heap while a scenario runs.
type usage struct {
	baseG     int
	baseHeap  uint64
	baseAlloc uint64
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	maxG      int
	maxHeap   uint64
	allocated uint64 // bytes allocated while watched
}

// watchUsage starts sampling; the sampler stops at finish, or when the
// test ends early.
func watchUsage(t *testing.T) *usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := &usage{baseG: runtime.NumGoroutine(), baseHeap: ms.HeapInuse, baseAlloc: ms.TotalAlloc,
		stop: make(chan struct{}), done: make(chan struct{})}
	u.maxG, u.maxHeap = u.baseG, u.baseHeap
	go func() {
		defer close(u.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			u.maxG = max(u.maxG, runtime.NumGoroutine())
			runtime.ReadMemStats(&ms)
			u.maxHeap = max(u.maxHeap, ms.HeapInuse)
			u.allocated = ms.TotalAlloc - u.baseAlloc
			select {
			case <-u.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(u.halt)
	return u
}

func (u *usage) halt() {
	u.stopOnce.Do(func() { close(u.stop) })
	<-u.done
}

// finish stops sampling and checks the goroutines stayed within bound of
// the baseline.
func (u *usage) finish(t *testing.T, bound int) {
	t.Helper()
	u.halt()
	grew := u.maxG - u.baseG
	t.Logf("goroutines: baseline %d, peak +%d (bound %d); heap in use: baseline %.1f MiB, peak +%.1f MiB; allocated %.1f MiB",
		u.baseG, grew, bound, mib(u.baseHeap), mib(u.maxHeap-min(u.maxHeap, u.baseHeap)), mib(u.allocated))
	if grew > bound {
		t.Errorf("goroutines grew by %d during the scenario, more than %d", grew, bound)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// flapper is an endpoint that is down (dropping connections, or answering
// 503) or up (answering 204), as the test sets it.
type flapper struct {
	srv  *httptest.Server
	mode atomic.Int32

	mu       sync.Mutex
	ok       map[string]int
	failures int
}

const (
	modeDrop = iota // close the connection without an answer
	modeUp          // 204
	mode503         // 503 without Retry-After
)

func newFlapper(t *testing.T) *flapper {
	f := &flapper{ok: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get(webhook.HeaderID)
		mode := f.mode.Load()
		f.mu.Lock()
		if mode == modeUp {
			f.ok[id]++
		} else {
			f.failures++
		}
		f.mu.Unlock()
		switch mode {
		case modeDrop:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case modeUp:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flapper) okCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok[id]
}

// An endpoint that flaps — down (connections dropped), up, down again
// (503) — gets every event published while it was down the first time once
// it is up, and every event of the second outage, which lasts past the
// give-up age, ends dead-lettered `expired`: each event is delivered or
// dead-lettered, never both, never neither. Goroutines stay bounded by the
// endpoint's concurrency, not by its backlog.
func TestFlappingEndpointEndsDeliveredOrExpired(t *testing.T) {
	cfg := scaledConfig()
	cfg.RetryMaxAge = 3 * time.Second
	w := newWorld(t, cfg)
	f := newFlapper(t)
	ep := w.addEndpoint(f.srv.URL+"/hook", "flap.*")
	u := watchUsage(t)
	const n = 150

	// Down: the first outage, while a backlog is published.
	f.mode.Store(modeDrop)
	first := w.publish("first", "flap.created", n)
	streamstest.WaitFor(t, 10*time.Second, "the endpoint to be failing", func() bool { return w.status(ep) == streams.StatusFailing })

	// Up: the next probe succeeds and the backlog drains.
	f.mode.Store(modeUp)
	streamstest.WaitFor(t, 20*time.Second, "the first backlog to be delivered", func() bool {
		for _, id := range first {
			if f.okCount(id) == 0 {
				return false
			}
		}
		return true
	})
	streamstest.WaitFor(t, 10*time.Second, "the endpoint to be healthy", func() bool { return w.status(ep) == streams.StatusHealthy })

	// Down again, for good: the second backlog expires.
	f.mode.Store(mode503)
	second := w.publish("second", "flap.updated", n)
	w.expectDeadLettered(ep, second, func(a streams.Attempt) error {
		if a.StatusCode != http.StatusServiceUnavailable || a.Error != "http status 503" {
			return fmt.Errorf("status %d error %q, want the outage's 503", a.StatusCode, a.Error)
		}
		return nil
	})
	u.finish(t, goroutinesPerSend*cfg.Concurrency+goroutineSlack)

	recs := w.deadLetters(ep)
	delivered := w.delivered(ep)
	dups := 0
	for _, id := range first {
		if delivered[id] == 0 {
			t.Errorf("%s: never delivered", id)
		}
		dups += max(0, f.okCount(id)-1)
		if len(recs[id]) != 0 {
			t.Errorf("%s: delivered and dead-lettered", id)
		}
		if st := w.deliveryState(id, ep); st != streams.DeliveryDelivered {
			t.Errorf("%s: delivery state %q, want %q", id, st, streams.DeliveryDelivered)
		}
	}
	for _, id := range second {
		if f.okCount(id) != 0 || delivered[id] != 0 {
			t.Errorf("%s: answered 2xx during an outage", id)
		}
	}
	f.mu.Lock()
	failures := f.failures
	f.mu.Unlock()
	attempts, highest := w.attempted(ep)
	t.Logf("flapping: %d delivered (%d duplicates), %d dead-lettered; %d attempts (%d failed at the endpoint), highest attempt %d",
		len(first), dups, len(second), attempts, failures, highest)
}

// An endpoint that answers only after the delivery timeout: every attempt
// times out and is retried, nothing is acked as delivered, and at the
// give-up age every delivery is dead-lettered `expired` with attempts that
// say timeout.
func TestSlowEndpointTimesOutAndExpires(t *testing.T) {
	cfg := scaledConfig()
	w := newWorld(t, cfg)
	var requests, answered atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client hang up
		requests.Add(1)
		// The endpoint's own slowness: three delivery timeouts, or until
		// the dispatcher hangs up.
		timer := time.NewTimer(3 * cfg.DeliveryTimeout)
		defer timer.Stop()
		select {
		case <-timer.C:
			if r.Context().Err() == nil {
				answered.Add(1)
			}
			rw.WriteHeader(http.StatusOK)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	ep := w.addEndpoint(slow.URL+"/hook", "slow.*")
	u := watchUsage(t)

	ids := w.publish("slow", "slow.created", 60)
	recs := w.expectDeadLettered(ep, ids, func(a streams.Attempt) error {
		if a.StatusCode != 0 || !strings.Contains(a.Error, "timeout") {
			return fmt.Errorf("status %d error %q, want a timeout", a.StatusCode, a.Error)
		}
		return nil
	})
	u.finish(t, goroutinesPerSend*cfg.Concurrency+goroutineSlack)

	if n := len(w.delivered(ep)); n != 0 {
		t.Errorf("%d deliveries counted as delivered", n)
	}
	if answered.Load() != 0 {
		t.Errorf("the endpoint answered %d requests before the dispatcher gave up", answered.Load())
	}
	retried := 0
	for _, rs := range recs {
		if len(rs) == 1 && rs[0].AttemptCount >= 2 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no delivery was retried after a timeout")
	}
	// The last attempt's outcome is reported just after its dead letter.
	streamstest.WaitFor(t, 5*time.Second, "an outcome for every request", func() bool {
		n, _ := w.attempted(ep)
		return int64(n) == requests.Load()
	})
	_, highest := w.attempted(ep)
	t.Logf("slow: %d dead-lettered, %d retried; %d requests, highest attempt %d", len(recs), retried, requests.Load(), highest)
}

// hugeBody is what the huge-body endpoints would send in full.
const hugeBody = 50 << 20

// An endpoint that answers 200 with a 50 MiB body, fast or dripping: the
// dispatcher reads at most 64 KiB of it (the endpoint cannot write much
// more than that and the sockets' buffers), the delivery counts as
// delivered (the endpoint said 2xx), and the heap stays far below one body
// while dozens are sent.
func TestHugeBodyEndpointIsDeliveredWithBoundedMemory(t *testing.T) {
	cfg := scaledConfig()
	cfg.DeliveryTimeout = 500 * time.Millisecond
	w := newWorld(t, cfg)

	chunk := make([]byte, 32<<10)
	var mu sync.Mutex
	written := map[string]int{} // body bytes the endpoint managed to send, by path
	var fastMax int
	stream := func(rw http.ResponseWriter, r *http.Request, step int, every time.Duration) {
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.WriteHeader(http.StatusOK)
		rw.(http.Flusher).Flush()
		var tick *time.Ticker
		if every > 0 {
			tick = time.NewTicker(every)
			defer tick.Stop()
		}
		n := 0
		for n < hugeBody {
			if tick != nil {
				select {
				case <-tick.C:
				case <-r.Context().Done():
				}
			}
			k, err := rw.Write(chunk[:step])
			n += k
			if err != nil || r.Context().Err() != nil {
				break
			}
		}
		mu.Lock()
		written[r.URL.Path] += n
		if r.URL.Path == "/fast" {
			fastMax = max(fastMax, n)
		}
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			stream(rw, r, len(chunk), 0) // as fast as the connection takes it
		} else {
			stream(rw, r, 1<<10, 20*time.Millisecond) // 64 KiB takes longer than the timeout
		}
	}))
	t.Cleanup(srv.Close)
	fast := w.addEndpoint(srv.URL+"/fast", "huge.*")
	drip := w.addEndpoint(srv.URL+"/drip", "huge.*")
	u := watchUsage(t)

	ids := w.publish("huge", "huge.created", 40)
	for _, ep := range []string{fast, drip} {
		streamstest.WaitFor(t, 30*time.Second, "every huge-body delivery to "+ep, func() bool {
			return len(w.delivered(ep)) == len(ids)
		})
	}
	u.finish(t, goroutinesPerSend*2*cfg.Concurrency+goroutineSlack)

	for _, ep := range []string{fast, drip} {
		for _, id := range ids {
			if st := w.deliveryState(id, ep); st != streams.DeliveryDelivered {
				t.Errorf("%s to %s: delivery state %q, want %q", id, ep, st, streams.DeliveryDelivered)
			}
		}
		if n := w.deadLetterCount(ep); n != 0 {
			t.Errorf("%s: %d dead letters", ep, n)
		}
	}
	// Garbage not yet collected counts too: half a body is the bound, where
	// reading even one body whole would pass it.
	if grew := u.maxHeap - min(u.maxHeap, u.baseHeap); grew > hugeBody/2 {
		t.Errorf("heap in use grew by %.1f MiB while huge bodies were sent, more than %.1f MiB", mib(grew), mib(hugeBody/2))
	}
	mu.Lock()
	defer mu.Unlock()
	// What the endpoint wrote before the dispatcher hung up is the read
	// limit plus the sockets' buffers, never the whole body.
	if fastMax >= hugeBody/2 {
		t.Errorf("the endpoint could write %.1f MiB of one body: the dispatcher read on past its limit", mib(uint64(fastMax)))
	}
	t.Logf("huge bodies: %d deliveries each way; the fast endpoint wrote at most %.1f MiB of a body, %.1f MiB in all; the dripping one %.1f MiB in all",
		len(ids), mib(uint64(fastMax)), mib(uint64(written["/fast"])), mib(uint64(written["/drip"])))
}

// An endpoint that redirects: the redirect is not followed (the target
// never sees a request), a 3xx is a failure that is retried, and at the
// give-up age every delivery is dead-lettered `expired`.
func TestRedirectingEndpointIsNotFollowed(t *testing.T) {
	cfg := scaledConfig()
	w := newWorld(t, cfg)
	var targetHits, redirects atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(rw, r, target.URL+"/hook", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	ep := w.addEndpoint(redirect.URL+"/hook", "moved.*")
	u := watchUsage(t)

	ids := w.publish("moved", "moved.created", 60)
	recs := w.expectDeadLettered(ep, ids, func(a streams.Attempt) error {
		if a.StatusCode != http.StatusFound || a.Error != "http status 302" {
			return fmt.Errorf("status %d error %q, want the redirect's 302", a.StatusCode, a.Error)
		}
		return nil
	})
	u.finish(t, goroutinesPerSend*cfg.Concurrency+goroutineSlack)

	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
	if n := len(w.delivered(ep)); n != 0 {
		t.Errorf("%d deliveries counted as delivered", n)
	}
	retried := 0
	for _, rs := range recs {
		if len(rs) == 1 && rs[0].AttemptCount >= 2 {
			retried++
		}
		if len(rs) == 1 && rs[0].URL != redirect.URL+"/hook" {
			t.Errorf("dead letter URL %q, want the endpoint's", rs[0].URL)
		}
	}
	if retried == 0 {
		t.Error("no delivery was retried after a redirect")
	}
	t.Logf("redirect: %d dead-lettered, %d retried; %d redirects answered", len(recs), retried, redirects.Load())
}
