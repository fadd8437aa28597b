package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/internal/bench"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

// The big benchmarks run serve's whole pipeline in this process for
// minutes; they are skipped unless bigBenchEnv is 1 (`make bench` sets it),
// and each is best run alone (-bench '^BenchmarkX$'), so that the process's
// RSS is its own. They print their figures and assert none.
const (
	bigBenchEnv = "HOOKSTREAM_BENCH_BIG"
	// bigEventsEnv scales BenchmarkRSSAfterMillionEvents and
	// BenchmarkBackoffMillion (default 1,000,000), bigLookupEnv
	// BenchmarkLookupTenMillion (default 10,000,000).
	bigEventsEnv = "HOOKSTREAM_BENCH_BIG_EVENTS"
	bigLookupEnv = "HOOKSTREAM_BENCH_LOOKUP_EVENTS"
	// bigSettleEnv is how long BenchmarkRSSAfterMillionEvents waits after
	// the last delivery before its last RSS reading (default: the dedup
	// window and 15 s), so that the window's ids have expired.
	bigSettleEnv = "HOOKSTREAM_BENCH_SETTLE"
	// bigHeapEnv names a file for the heap profile taken after the last
	// delivery of BenchmarkRSSAfterMillionEvents: what the window holds.
	bigHeapEnv = "HOOKSTREAM_BENCH_HEAP_PROFILE"

	bigConcurrency = 64
	bigSize        = 256
)

func bigBench(b *testing.B) {
	b.Helper()
	if os.Getenv(bigBenchEnv) != "1" {
		b.Skip(bigBenchEnv + "=1 runs the big benchmarks (minutes each; `make bench`)")
	}
}

func bigEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s: want a positive integer, got %q", name, s)
	}
	return n
}

// bigPipeline is serve in this process, a client of its API, a Go producer
// on its NATS and receivers.
type bigPipeline struct {
	serve *localServe
	api   *client.Client
	js    jetstream.JetStream
	prod  *producer.Producer
	recv  *bench.Receivers
}

func startBigPipeline(b *testing.B, dedup time.Duration, receivers int, extra ...func(*serverFlags)) *bigPipeline {
	b.Helper()
	ctx := context.Background()
	s, err := startLocalServe(ctx, dedup, false, io.Discard, extra...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.stop)
	p := &bigPipeline{serve: s}
	if p.api, err = client.New(s.api); err != nil {
		b.Fatal(err)
	}
	if p.js, err = jetstream.New(s.nc); err != nil {
		b.Fatal(err)
	}
	if p.prod, err = producer.New(producer.Config{JS: p.js}); err != nil {
		b.Fatal(err)
	}
	if p.recv, err = bench.NewReceivers("127.0.0.1:0", receivers); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.recv.Close() })
	return p
}

func (p *bigPipeline) publish(ctx context.Context, evs []bench.Event) error {
	for _, ev := range evs {
		if _, err := p.prod.Publish(ctx, producer.Event{ID: ev.ID, Type: ev.Type, Data: ev.Data}); err != nil {
			return err
		}
	}
	return nil
}

func (p *bigPipeline) endpoint(b *testing.B, url, typ string) string {
	b.Helper()
	ep, err := p.api.CreateEndpoint(context.Background(), client.EndpointCreate{URL: url, EventTypes: []string{typ}, Concurrency: bigConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	return ep.ID
}

// memory is one reading of this process's memory.
type memory struct{ rss, heapInuse, heapSys uint64 }

func readMemory() memory {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{rss: bench.RSS(0), heapInuse: m.HeapInuse, heapSys: m.HeapSys}
}

func (m memory) String() string {
	return fmt.Sprintf("RSS %.0f MiB (Go heap in use %.0f MiB of %.0f MiB)", bench.MiB(m.rss), bench.MiB(m.heapInuse), bench.MiB(m.heapSys))
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

func streamState(b *testing.B, js jetstream.JetStream, name string) jetstream.StreamState {
	b.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State
}

// BenchmarkRSSAfterMillionEvents publishes 1,000,000 events with the Go
// producer through serve's pipeline (--dedup-window 1m) to one endpoint
// and reads this process's RSS (the embedded NATS server's included) after
// 100,000 and after 1,000,000 deliveries, and once more after the
// duplicate window has passed; it prints the stored bytes per event.
func BenchmarkRSSAfterMillionEvents(b *testing.B) {
	bigBench(b)
	const dedup = time.Minute
	total := bigEnvInt(b, bigEventsEnv, 1_000_000)
	first := max(total/10, 1)
	settle := dedup + 15*time.Second
	if s := os.Getenv(bigSettleEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("%s: %v", bigSettleEnv, err)
		}
		settle = d
	}
	p := startBigPipeline(b, dedup, 1)
	m := bench.EventMaker{Prefix: "rss", Type: "bench.rss", Size: bigSize}
	p.endpoint(b, p.recv.List[0].URL, m.Type)
	ctx := context.Background()
	run := func(from, n int) bench.ThroughputResult {
		res, err := bench.Throughput(ctx, bench.ThroughputConfig{
			Publish: p.publish, Make: func(i int) bench.Event { return m.Make(from + i) }, Events: n,
			Concurrency: bigConcurrency, Fanout: 1, Counter: p.recv.Counter,
		})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	b.ResetTimer()
	r1 := run(0, first)
	at100k := readMemory()
	r2 := run(first, total-first)
	at1M := readMemory()
	peak := bench.PeakRSS(0)
	if path := os.Getenv(bigHeapEnv); path != "" {
		writeHeapProfile(b, path)
	}
	b.StopTimer()
	time.Sleep(settle) // the duplicate window passing: nothing to wait for but the clock
	runtime.GC()
	settled := readMemory()
	// What the process holds once the Go runtime returned its free pages:
	// the RSS above, less the heap Go keeps mapped after the window's
	// memory was freed.
	debug.FreeOSMemory()
	freed := readMemory()

	ev, idx := streamState(b, p.js, streams.StreamEvents), streamState(b, p.js, streams.StreamIndex)
	dl := streamState(b, p.js, streams.StreamDeliveries)
	store := dirBytes(p.serve.dir)
	perEvent := func(bytes uint64) float64 { return float64(bytes) / float64(total) }
	growth := float64(at1M.rss) / float64(at100k.rss)
	fmt.Printf("rss: %d events, dedup window %s, 1 endpoint, Go producer with %d publishers, %d-byte data\n", total, dedup, bigConcurrency, bigSize)
	fmt.Printf("rss: after %d delivered (%.0f/s): %s\n", first, r1.PerSecond(), at100k)
	fmt.Printf("rss: after %d delivered (%.0f/s): %s; peak RSS %.0f MiB; ×%.2f the RSS after %d\n", total, r2.PerSecond(), at1M, bench.MiB(peak), growth, first)
	fmt.Printf("rss: %s after the last delivery (window passed, GC run): %s; ×%.2f the RSS after %d\n", settle, settled, float64(settled.rss)/float64(at100k.rss), first)
	fmt.Printf("rss: then with the free heap returned to the OS (debug.FreeOSMemory): %s; ×%.2f the RSS after %d\n", freed, float64(freed.rss)/float64(at100k.rss), first)
	fmt.Printf("rss: memory per event in the window (RSS after %d − after %d, over %d): %.0f bytes\n", total, first, total-first, (float64(at1M.rss)-float64(at100k.rss))/float64(total-first))
	fmt.Printf("rss: stored: EVENTS %d msgs %.0f bytes/event, INDEX %d msgs %.0f bytes/event, DELIVERIES %d msgs (the backlog) %d bytes; store directory %.0f MiB = %.0f bytes/event\n",
		ev.Msgs, perEvent(ev.Bytes), idx.Msgs, perEvent(idx.Bytes), dl.Msgs, dl.Bytes, bench.MiB(store), perEvent(store))
	b.ReportMetric(bench.MiB(at100k.rss), "rss-100k-MiB")
	b.ReportMetric(bench.MiB(at1M.rss), "rss-1M-MiB")
	b.ReportMetric(growth, "rss-ratio")
	b.ReportMetric(bench.MiB(settled.rss), "rss-settled-MiB")
	b.ReportMetric(bench.MiB(freed.rss), "rss-freed-MiB")
	b.ReportMetric(perEvent(store), "store-bytes/event")
}

// BenchmarkBackoffMillion measures what 1,000,000 deliveries waiting for a
// dead endpoint (answering 503) cost: this process's RSS, and the p99
// latency of 10 healthy endpoints (events at a fixed rate through fan-out)
// with that backlog against the same without it. The backlog is written
// straight to DELIVERIES, as the fan-out writes it; the dead endpoint goes
// failing on its first attempts and, as DESIGN says, its backlog then waits
// unread in JetStream, probed one delivery at a time: the figures say how
// many deliveries were taken (NAK-delayed or in flight) and how many wait
// unread.
func BenchmarkBackoffMillion(b *testing.B) {
	bigBench(b)
	backlog := bigEnvInt(b, bigEventsEnv, 1_000_000)
	const (
		healthy = 10
		rate    = 200
		events  = 2000
	)
	p := startBigPipeline(b, streams.DedupWindowDefault, healthy)
	live := bench.EventMaker{Prefix: "live", Type: "bench.live", Size: bigSize}
	for _, r := range p.recv.List {
		p.endpoint(b, r.URL, live.Type)
	}
	deadCounter := &bench.Counter{}
	dead, err := bench.NewReceiver("127.0.0.1:0", deadCounter)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dead.Close() })
	dead.SetStatus(http.StatusServiceUnavailable)
	deadID := p.endpoint(b, dead.URL, "bench.dead")
	ctx := context.Background()

	measure := func(phase string) bench.LatencyResult {
		m := live
		m.Prefix += "-" + phase
		warm := m
		warm.Prefix += "-warm"
		if _, err := bench.Throughput(ctx, bench.ThroughputConfig{Publish: p.publish, Make: warm.Make, Events: 100, Concurrency: 8, Fanout: healthy, Counter: p.recv.Counter}); err != nil {
			b.Fatal(err)
		}
		res, err := bench.Latency(ctx, bench.LatencyConfig{Publish: p.publish, Make: m.MakeAt, Rate: rate, Events: events, Workers: bigConcurrency, Fanout: healthy, Counter: p.recv.Counter})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	b.ResetTimer()
	idleCPU := bench.StartCPU(0)
	idle := measure("idle")
	idleCores, idleOthers := idleCPU.Cores()
	before := readMemory()
	bench.ResetPeakRSS(0)

	start := time.Now()
	publishDeadBacklog(b, p.serve.nc, deadID, backlog)
	loaded := time.Since(start)
	// Wait until the dispatcher has seen the backlog and the endpoint is
	// failing (its health is shared in KV; the API shows it).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ep, err := p.api.Endpoint(ctx, deadID)
		if err == nil && ep.Status == client.StatusFailing {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("dead endpoint not failing after 5 minutes: %v %v", ep, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the API, no event to wait on
	}
	deadCPU := bench.StartCPU(0)
	withDead := measure("dead")
	deadCores, deadOthers := deadCPU.Cores()
	after := readMemory()
	peak := bench.PeakRSS(0)
	b.StopTimer()

	c, err := p.js.Consumer(ctx, streams.StreamDeliveries, streams.DeliveryConsumer(deadID))
	if err != nil {
		b.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ratio := float64(withDead.P99) / float64(idle.P99)
	fmt.Printf("backoff: %d deliveries for a dead endpoint (503) written to DELIVERIES in %s; %d healthy endpoints, %d events at %d/s each phase\n",
		backlog, loaded.Round(time.Millisecond), healthy, events, rate)
	fmt.Printf("backoff: idle:      p50 %.1f ms, p99 %.1f ms, max %.1f ms; %s; cpu %.2f cores, rest of the machine %.2f\n",
		ms(idle.P50), ms(idle.P99), ms(idle.Max), before, idleCores, idleOthers)
	fmt.Printf("backoff: with dead: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %s; peak RSS %.0f MiB; cpu %.2f cores, rest of the machine %.2f\n",
		ms(withDead.P50), ms(withDead.P99), ms(withDead.Max), after, bench.MiB(peak), deadCores, deadOthers)
	fmt.Printf("backoff: p99 ratio %.2f; the dead endpoint: %d unread, %d taken (NAK-delayed or in flight), %d redelivered, %d requests received\n",
		ratio, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, deadCounter.Count())
	b.ReportMetric(ms(idle.P99), "idle-p99-ms")
	b.ReportMetric(ms(withDead.P99), "dead-p99-ms")
	b.ReportMetric(ratio, "p99-ratio")
	b.ReportMetric(bench.MiB(peak), "peak-rss-MiB")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// publishDeadBacklog stores n deliveries for endpoint straight in
// DELIVERIES, as the fan-out would have, with asynchronous publishes.
func publishDeadBacklog(b *testing.B, nc *nats.Conn, endpoint string, n int) {
	b.Helper()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	data := bench.EventData(now, bigSize)
	for i := range n {
		d := streams.Delivery{
			Event:      streams.Event{ID: "dead-" + strconv.Itoa(i), Type: "bench.dead", Source: streams.DefaultSource, Time: now, Data: data},
			EndpointID: endpoint,
		}
		msg, err := streams.Marshal(&d)
		if err != nil {
			b.Fatal(err)
		}
		// As the fan-out publishes them: without a Nats-Msg-Id, so that
		// the backlog keeps no duplicate-window entry per delivery.
		if _, err := js.PublishAsync(streams.DeliverySubject(endpoint), msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("backlog publishes not acknowledged within 5 minutes")
	}
}

// BenchmarkLookupTenMillion stores 10,000,000 events (EVENTS and their
// INDEX entries, written straight with asynchronous publishes in the
// format the fan-out writes) and measures GET /v1/events/{id} for random
// ids, one at a time and 8 at a time: p50, p99, max.
func BenchmarkLookupTenMillion(b *testing.B) {
	bigBench(b)
	n := bigEnvInt(b, bigLookupEnv, 10_000_000)
	const lookups = 2000
	p := startLookupAPI(b)
	start := time.Now()
	writeIndexedEvents(b, p.serve.nc, n)
	wrote := time.Since(start)
	ev, idx := streamState(b, p.js, streams.StreamEvents), streamState(b, p.js, streams.StreamIndex)
	fmt.Printf("lookup: %d events and index entries written in %s (%.0f/s); EVENTS %d msgs %.0f bytes/event, INDEX %d msgs %.0f bytes/entry; %s\n",
		n, wrote.Round(time.Second), float64(n)/wrote.Seconds(), ev.Msgs, float64(ev.Bytes)/float64(ev.Msgs), idx.Msgs, float64(idx.Bytes)/float64(idx.Msgs), readMemory())

	hc := &http.Client{Transport: bench.NewTransport(8), Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	get := func(i int) (time.Duration, error) {
		t := time.Now()
		resp, err := hc.Get(p.serve.api + "/v1/events/" + lookupID(i))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET event %d: %d", i, resp.StatusCode)
		}
		return time.Since(t), nil
	}
	b.ResetTimer()
	for _, workers := range []int{1, 8} {
		lat := make([]time.Duration, lookups)
		errs := make(chan error, workers)
		next := make(chan int, lookups)
		for i := range lookups {
			next <- i
		}
		close(next)
		phase := time.Now()
		for range workers {
			go func() {
				for i := range next {
					d, err := get(rand.IntN(n))
					if err != nil {
						errs <- err
						return
					}
					lat[i] = d
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(phase)
		slices.Sort(lat)
		fmt.Printf("lookup: %d random GET /v1/events/{id}, %d at a time, at %d stored: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%.0f lookups/s)\n",
			lookups, workers, n, ms(bench.Percentile(lat, 50)), ms(bench.Percentile(lat, 99)), ms(lat[len(lat)-1]), float64(lookups)/el.Seconds())
		b.ReportMetric(ms(bench.Percentile(lat, 99)), fmt.Sprintf("p99-ms-%dx", workers))
	}
}

// startLookupAPI runs the api role (`hookstream api --nats-url`) against an
// embedded NATS server of its own: the lookups are the api's work, and
// without a dispatcher no fan-out reads the events written straight to
// EVENTS and INDEX.
func startLookupAPI(b *testing.B) *bigPipeline {
	b.Helper()
	dir := b.TempDir()
	addr, err := freeLoopbackPort()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := streams.StartServer(streams.ServerConfig{StoreDir: dir, Listen: addr})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f := addServerFlags(flag.NewFlagSet("api", flag.ContinueOnError), roleAPI)
	f.natsURL, f.httpAddr, f.logLevel, f.shutdownTimeout = "nats://"+addr, "127.0.0.1:0", "error", 5*time.Second
	api, stop, err := runServeRole(context.Background(), f, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	nc, err := streams.Dial("nats://"+addr, "hookstream-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return &bigPipeline{serve: &localServe{api: api, nc: nc, dir: dir}, js: js}
}

func lookupID(i int) string { return "lk-" + strconv.Itoa(i) }

// writeIndexedEvents writes n events to EVENTS and, once each window of
// them is acknowledged (the index needs their sequences), their INDEX
// entries, each naming one delivery no longer in DELIVERIES (delivered).
func writeIndexedEvents(b *testing.B, nc *nats.Conn, n int) {
	b.Helper()
	const window = 4096
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*window))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	data := bench.EventData(now, bigSize)
	subject := streams.EventSubject(streams.DefaultSource, "bench.lookup")
	futures := make([]jetstream.PubAckFuture, 0, window)
	for from := 0; from < n; from += window {
		futures = futures[:0]
		to := min(from+window, n)
		for i := from; i < to; i++ {
			msg, err := streams.Marshal(&streams.Event{ID: lookupID(i), Type: "bench.lookup", Source: streams.DefaultSource, Time: now, Data: data})
			if err != nil {
				b.Fatal(err)
			}
			f, err := js.PublishAsync(subject, msg)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		for k, f := range futures {
			var ack *jetstream.PubAck
			select {
			case ack = <-f.Ok():
			case err := <-f.Err():
				b.Fatalf("event %d: %v", from+k, err)
			case <-time.After(time.Minute):
				b.Fatalf("event %d not acknowledged within a minute", from+k)
			}
			id := lookupID(from + k)
			entry := streams.EventIndex{EventID: id, Seq: ack.Sequence, FannedOutAt: now,
				Deliveries: []streams.IndexDelivery{{Endpoint: "ep_bench_lookup", Seq: 1}}}
			msg, err := streams.Marshal(&entry)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := js.PublishAsync(streams.IndexSubject(id), msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("index publishes not acknowledged within 5 minutes")
	}
}

// writeHeapProfile writes the live heap's profile to path.
func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
