package dispatcher_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// The isolation benchmark's world: BenchmarkIsolation runs each case in a
// process of its own (TestBenchCase, selected by benchCaseEnv), so that each
// case's peak RSS is its own.
const (
	// benchCaseEnv selects the case TestBenchCase runs: benchCaseHealthy or
	// benchCaseDead. Unset, TestBenchCase is skipped.
	benchCaseEnv     = "HOOKSTREAM_BENCH_CASE"
	benchCaseHealthy = "healthy"
	benchCaseDead    = "dead"
	// benchEventsEnv and benchRateEnv override how many events are
	// measured and at what rate (events per second).
	benchEventsEnv = "HOOKSTREAM_BENCH_EVENTS"
	benchRateEnv   = "HOOKSTREAM_BENCH_RATE"
	// benchPullWaitEnv overrides the dispatcher's PullWait (a Go duration;
	// the default is the binary's, dispatcher.PullWaitDefault).
	benchPullWaitEnv = "HOOKSTREAM_BENCH_PULL_WAIT"
	// benchProfileEnv, when set to a directory, makes each case write a CPU
	// profile of its measured phase there (<case>.cpu.pprof), and a heap
	// profile at its end (<case>.heap.pprof).
	benchProfileEnv = "HOOKSTREAM_BENCH_PROFILE"
	// benchResultPrefix starts the line a case prints its result on.
	benchResultPrefix = "hookstream-bench-result: "

	benchEndpoints = 1000    // endpoints registered in all
	benchHealthy   = 10      // of which healthy receivers
	benchBacklog   = 100_000 // deliveries held by the dead endpoint
	benchEvents    = 2000    // events measured, each to every healthy receiver
	// benchRate is events per second. At 500/s the process needs 1.5 of
	// the machine's 2 cores, so any neighbour's load saturates it and the
	// latency measures queueing, not isolation; at 200/s it needs 0.8.
	benchRate   = 200
	benchWarmup = 200 // events sent (and not measured) first
	benchType   = "bench.tick"
	benchDeadID = "ep_bench_dead"
	// benchIdleWindow is how long the idle CPU is measured for.
	benchIdleWindow = time.Second
)

// benchResult is what one case measured; the child prints it as JSON.
type benchResult struct {
	Case       string  `json:"case"`
	Events     int     `json:"events"`
	Deliveries int     `json:"deliveries"`
	Rate       float64 `json:"rate"` // events per second actually published
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	Duplicates int     `json:"duplicates"`
	// PublishP99MS and PublishMaxMS are how long the event publishes took
	// (acknowledged by JetStream): the first leg of the latency.
	PublishP99MS float64 `json:"publish_p99_ms"`
	PublishMaxMS float64 `json:"publish_max_ms"`
	// Redelivered counts attempts past the first at healthy endpoints that
	// never failed: deliveries JetStream sent again after AckWait because
	// the dispatcher took them from the server but never handled them.
	Redelivered int64 `json:"redelivered"`
	// PeakRSS is the process's VmHWM; HeapInuse the Go heap in use at the
	// end of the case (the embedded NATS server included: it runs in
	// process, as in `hookstream serve`).
	PeakRSS   uint64 `json:"peak_rss"`
	HeapInuse uint64 `json:"heap_inuse"`
	// The dead endpoint's state at the end: its status, its deliveries
	// left unread in JetStream, those taken (waiting for a retry or in
	// flight) and the requests it received.
	DeadStatus     string  `json:"dead_status,omitempty"`
	DeadUnread     uint64  `json:"dead_unread,omitempty"`
	DeadAckPending int     `json:"dead_ack_pending,omitempty"`
	DeadRequests   int64   `json:"dead_requests,omitempty"`
	SetupSeconds   float64 `json:"setup_seconds"`
	// IdleCPU is the cores the process used with nothing to deliver (the
	// registered endpoints' pulls); CPU the cores it used while the
	// measured events were published and delivered.
	IdleCPU float64 `json:"idle_cpu"`
	CPU     float64 `json:"cpu"`
	// OtherCPU is the cores the rest of the machine used meanwhile: on a
	// shared machine, what the latencies compete with.
	OtherCPU float64 `json:"other_cpu"`
}

// TestBenchCase is one case of BenchmarkIsolation, run in a process of its
// own; it is skipped unless benchCaseEnv is set.
func TestBenchCase(t *testing.T) {
	t.Parallel()
	c := os.Getenv(benchCaseEnv)
	if c == "" {
		t.Skip(benchCaseEnv + " not set: run by BenchmarkIsolation in a process of its own")
	}
	if c != benchCaseHealthy && c != benchCaseDead {
		t.Fatalf("%s: want %q or %q, got %q", benchCaseEnv, benchCaseHealthy, benchCaseDead, c)
	}
	res := runIsolationCase(t, c == benchCaseDead)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(benchResultPrefix + string(b))
}

// benchReceiver is a webhook endpoint that answers code at once and, when
// it records, notes when each event id first arrived.
type benchReceiver struct {
	srv    *httptest.Server
	code   int
	record bool
	hits   atomic.Int64

	mu   sync.Mutex
	got  map[string]time.Time
	dups int
}

func newBenchReceiver(tb testing.TB, code int, record bool) *benchReceiver {
	r := &benchReceiver{code: code, record: record, got: map[string]time.Time{}}
	r.srv = httptest.NewServer(r)
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, req.Body)
	r.hits.Add(1)
	if r.record {
		id := req.Header.Get(webhook.HeaderID)
		r.mu.Lock()
		if _, ok := r.got[id]; ok {
			r.dups++
		} else {
			r.got[id] = now
		}
		r.mu.Unlock()
	}
	w.WriteHeader(r.code)
}

func (r *benchReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// runIsolationCase registers benchEndpoints endpoints (benchHealthy healthy
// receivers; when dead, one failing endpoint holding benchBacklog
// deliveries; the rest subscribed to types nobody publishes), runs a
// dispatcher, and measures the latency from just before an event's publish
// to its arrival at each healthy receiver.
func runIsolationCase(tb testing.TB, dead bool) benchResult {
	setupStart := time.Now()
	events, rate := benchEnvInt(tb, benchEventsEnv, benchEvents), benchEnvInt(tb, benchRateEnv, benchRate)
	pullWait := dispatcher.PullWaitDefault
	if s := os.Getenv(benchPullWaitEnv); s != "" {
		var err error
		if pullWait, err = time.ParseDuration(s); err != nil || pullWait <= 0 {
			tb.Fatalf("%s: want a positive Go duration, got %q", benchPullWaitEnv, s)
		}
	}
	const retryMaxAge = time.Hour
	env := streamstest.Start(tb, streamstest.WithConfig(streams.Config{RetryMaxAge: retryMaxAge, DeliveriesMargin: time.Hour}))
	ctx := context.Background()
	endpointsKV, err := env.JS.KeyValue(ctx, streams.BucketEndpoints)
	if err != nil {
		tb.Fatal(err)
	}
	healthKV, err := env.JS.KeyValue(ctx, streams.BucketHealth)
	if err != nil {
		tb.Fatal(err)
	}

	receivers := make([]*benchReceiver, benchHealthy)
	for i := range receivers {
		receivers[i] = newBenchReceiver(tb, http.StatusNoContent, true)
		putBenchEndpoint(tb, endpointsKV, healthKV, fmt.Sprintf("ep_bench_h%02d", i), receivers[i].srv.URL, benchType)
	}
	idleEndpoints := benchEndpoints - benchHealthy
	var deadRecv *benchReceiver
	if dead {
		idleEndpoints--
		deadRecv = newBenchReceiver(tb, http.StatusServiceUnavailable, false)
		putBenchEndpoint(tb, endpointsKV, healthKV, benchDeadID, deadRecv.srv.URL, benchType)
		publishBacklog(tb, env)
	}
	for i := range idleEndpoints {
		// Never sent anything: their types are never published.
		putBenchEndpoint(tb, endpointsKV, healthKV, fmt.Sprintf("ep_bench_i%04d", i), "http://127.0.0.1:9/idle", fmt.Sprintf("bench.idle_%04d", i))
	}

	var redelivered atomic.Int64
	// Looked up before the dispatcher starts: its thousand consumer
	// creations keep the JetStream API busy for a while.
	deliveries, err := env.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		tb.Fatal(err)
	}
	// As `hookstream serve` configures it (metrics, info logs, default
	// concurrency and pull wait), with a retry schedule short enough that
	// the dead endpoint goes failing and is probed during the run.
	d, err := dispatcher.New(dispatcher.Config{
		JS:           env.JS,
		RetryInitial: time.Second,
		RetryMaxAge:  retryMaxAge,
		FailingAfter: 2,
		PullWait:     pullWait,
		AllowPrivate: true,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Metrics:      prometheus.NewRegistry(),
		Observer: func(o dispatcher.Outcome) {
			if o.Attempt > 1 && o.EndpointID != benchDeadID {
				redelivered.Add(1)
			}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Runs after the dispatcher stopped. Deleting DELIVERIES first
		// spares the teardown ~10 s: the server, shutting down, stops a
		// thousand file-backed consumers one by one, each waiting about
		// 10 ms for its state flusher, while a deleted stream's consumers
		// are dropped without it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.JS.DeleteStream(ctx, streams.StreamDeliveries); err != nil {
			tb.Errorf("delete deliveries: %v", err)
		}
	})
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.Start(startCtx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			tb.Errorf("stop: %v", err)
		}
	})

	streamstest.WaitFor(tb, 2*time.Minute, "every endpoint's delivery consumer", func() bool {
		info, err := deliveries.Info(ctx)
		return err == nil && info.State.Consumers >= benchEndpoints
	})
	if dead {
		streamstest.WaitFor(tb, time.Minute, "the dead endpoint to be failing", func() bool {
			return benchHealthStatus(tb, healthKV, benchDeadID) == streams.StatusFailing
		})
	}

	idleStart, idleCPU := time.Now(), procCPU()
	// Pacing, not waiting for anything: a window with nothing to deliver.
	time.Sleep(benchIdleWindow)
	idle := (procCPU() - idleCPU).Seconds() / time.Since(idleStart).Seconds()

	publishPaced(tb, env.JS, "warmup", benchWarmup, rate)
	streamstest.WaitFor(tb, time.Minute, "the warm-up events at every healthy receiver", func() bool {
		return allReceived(receivers, benchWarmup)
	})
	setup := time.Since(setupStart)
	tb.Logf("set up in %s", setup.Round(time.Millisecond))

	stopProfile := startBenchProfile(tb, dead)
	start, startCPU, startMachine := time.Now(), procCPU(), machineCPU()
	pubAt, pubTook := publishPaced(tb, env.JS, "measured", events, rate)
	published := time.Since(start)
	streamstest.WaitFor(tb, 2*time.Minute, "every measured event at every healthy receiver", func() bool {
		return allReceived(receivers, benchWarmup+events)
	})
	elapsed := time.Since(start).Seconds()
	cpu := (procCPU() - startCPU).Seconds() / elapsed
	other := (machineCPU()-startMachine).Seconds()/elapsed - cpu
	stopProfile()
	tb.Logf("published %d events in %s, all delivered %s after the first publish", events, published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	res := benchResult{
		Case: benchCaseHealthy, Events: events, Deliveries: events * benchHealthy,
		Rate: float64(events) / published.Seconds(), SetupSeconds: setup.Seconds(),
		IdleCPU: idle, CPU: cpu, OtherCPU: max(other, 0), Redelivered: redelivered.Load(),
	}
	var lat []time.Duration
	for _, r := range receivers {
		r.mu.Lock()
		for i, at := range pubAt {
			got, ok := r.got[benchEventID("measured", i)]
			if !ok {
				r.mu.Unlock()
				tb.Fatalf("%s: event %d not received", r.srv.URL, i)
			}
			lat = append(lat, got.Sub(at))
		}
		res.Duplicates += r.dups
		r.mu.Unlock()
	}
	slices.Sort(lat)
	res.P50MS, res.P99MS, res.MaxMS = ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(lat[len(lat)-1])
	slices.Sort(pubTook)
	res.PublishP99MS, res.PublishMaxMS = ms(percentile(pubTook, 99)), ms(pubTook[len(pubTook)-1])

	if dead {
		res.Case = benchCaseDead
		res.DeadStatus = benchHealthStatus(tb, healthKV, benchDeadID)
		c, err := env.JS.Consumer(ctx, streams.StreamDeliveries, streams.DeliveryConsumer(benchDeadID))
		if err != nil {
			tb.Fatal(err)
		}
		ci, err := c.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		res.DeadUnread, res.DeadAckPending, res.DeadRequests = ci.NumPending, ci.NumAckPending, deadRecv.hits.Load()
		// The figures mean nothing unless the dead endpoint stayed failing
		// with its backlog unread.
		if res.DeadStatus != streams.StatusFailing {
			tb.Fatalf("dead endpoint is %s, want %s", res.DeadStatus, streams.StatusFailing)
		}
		if res.DeadUnread < benchBacklog {
			tb.Fatalf("dead endpoint's unread backlog is %d, want at least %d", res.DeadUnread, benchBacklog)
		}
	}
	writeBenchHeapProfile(tb, dead)
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	res.HeapInuse = mem.HeapInuse
	res.PeakRSS = procStatusBytes("VmHWM")
	return res
}

// putBenchEndpoint registers an endpoint the way the endpoints API does:
// its health first, then its configuration.
func putBenchEndpoint(tb testing.TB, endpointsKV, healthKV jetstream.KeyValue, id, url string, types ...string) {
	tb.Helper()
	secret, err := webhook.GenerateSecret()
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := streams.Put(ctx, healthKV, id, streams.NewHealth(id, now)); err != nil {
		tb.Fatal(err)
	}
	ep := &streams.Endpoint{ID: id, URL: url, EventTypes: types, Secrets: []streams.Secret{{Key: secret, CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	if _, err := streams.Put(ctx, endpointsKV, id, ep); err != nil {
		tb.Fatal(err)
	}
}

// publishBacklog stores benchBacklog deliveries for the dead endpoint
// straight in DELIVERIES, as fan-out would have, a window of async
// publishes at a time.
func publishBacklog(tb testing.TB, env *streamstest.Env) {
	tb.Helper()
	const window = 4096
	var failed atomic.Int64
	js, err := jetstream.New(env.NC, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range benchBacklog {
		dl := streams.Delivery{
			Event:      streams.Event{ID: fmt.Sprintf("backlog-%06d", i), Type: benchType, Source: "bench", Time: now, Data: []byte(`{"n":1}`)},
			EndpointID: benchDeadID,
		}
		b, err := streams.Marshal(&dl)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := js.PublishAsync(streams.DeliverySubject(benchDeadID), b); err != nil {
			tb.Fatal(err)
		}
		if (i+1)%window == 0 || i == benchBacklog-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				tb.Fatal("backlog publishes not acknowledged within a minute")
			}
		}
	}
	if n := failed.Load(); n > 0 {
		tb.Fatalf("%d backlog publishes failed", n)
	}
}

func benchEventID(phase string, i int) string { return fmt.Sprintf("%s-%05d", phase, i) }

// publishPaced publishes n events of benchType through EVENTS, event i at
// start + i/rate whatever the publishes before it cost (each in its own
// goroutine, as concurrent producers would), and returns the time taken
// just before each publish and how long each publish took.
func publishPaced(tb testing.TB, js jetstream.JetStream, phase string, n, rate int) (at []time.Time, took []time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at, took = make([]time.Time, n), make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait) // pacing, not waiting for anything
		}
		wg.Go(func() {
			ev := &streams.Event{ID: benchEventID(phase, i), Type: benchType, Source: "bench", Time: time.Now().UTC(), Data: []byte(`{"n":1}`)}
			at[i] = time.Now()
			_, errs[i] = streams.PublishEvent(ctx, js, ev)
			took[i] = time.Since(at[i])
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("publish %s: %v", benchEventID(phase, i), err)
		}
	}
	return at, took
}

func allReceived(rs []*benchReceiver, n int) bool {
	for _, r := range rs {
		if r.count() < n {
			return false
		}
	}
	return true
}

func benchHealthStatus(tb testing.TB, kv jetstream.KeyValue, id string) string {
	tb.Helper()
	h, _, _, err := streams.Get[streams.Health](context.Background(), kv, id)
	if err != nil {
		tb.Fatal(err)
	}
	if h == nil {
		return ""
	}
	return h.Status
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchEnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s: want a positive integer, got %q", name, s)
	}
	return n
}

// startBenchProfile starts a CPU profile of the measured phase when
// benchProfileEnv names a directory, and returns what stops it.
func startBenchProfile(tb testing.TB, dead bool) func() {
	tb.Helper()
	dir := os.Getenv(benchProfileEnv)
	if dir == "" {
		return func() {}
	}
	name := benchCaseHealthy
	if dead {
		name = benchCaseDead
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// writeBenchHeapProfile writes a heap profile when benchProfileEnv names a
// directory.
func writeBenchHeapProfile(tb testing.TB, dead bool) {
	tb.Helper()
	dir := os.Getenv(benchProfileEnv)
	if dir == "" {
		return
	}
	name := benchCaseHealthy
	if dead {
		name = benchCaseDead
	}
	f, err := os.Create(filepath.Join(dir, name+".heap.pprof"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// procStatusBytes reads a "kB" field of /proc/self/status (VmHWM is the
// peak resident set size); 0 where there is no /proc.
func procStatusBytes(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// procCPU returns the user and system CPU time the process used so far, from
// /proc/self/stat (in USER_HZ ticks, 100 a second on Linux); 0 where there
// is no /proc.
func procCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis; utime and stime are the 14th and 15th.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}

// machineCPU returns the CPU time every core of the machine spent busy so
// far, from /proc/stat; 0 where there is no /proc.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		// idle and iowait (the 4th and 5th) are not busy; guest time is
		// already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * (time.Second / 100)
}
