package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/internal/bench"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// benchOptions are `hookstream bench`'s flags.
type benchOptions struct {
	server, token, natsURL            string
	receiverListen, receiverHost      string
	serverPID                         int
	quick, json, verbose              bool
	events, concurrency, size, fanout int
	rates                             []int
	latencySeconds, caseTimeout       time.Duration
	dedupWindow                       time.Duration
	cases                             *regexp.Regexp
	profileDir                        string
}

// Defaults of `hookstream bench` (full run, then --quick).
const (
	benchEventsDefault      = 100_000
	benchEventsQuick        = 1000
	benchConcurrencyDefault = 64
	benchSizeDefault        = 256
	benchFanoutDefault      = 10
	benchRatesDefault       = "2000,8000"
	benchRatesQuick         = "300,600"
	benchLatencyDefault     = 5 * time.Second
	benchLatencyQuick       = 700 * time.Millisecond
	benchCaseTimeoutDefault = 5 * time.Minute
	// benchJSFloorFactor is how many more messages the JetStream floor
	// sends than a case has deliveries: it is several times faster, and
	// a run of a second or less says little.
	benchJSFloorFactor = 2
	// benchWarmup is how many events each case sends (and waits for)
	// before it measures: the endpoint's consumer is created and the
	// connections are opened.
	benchWarmup      = 200
	benchWarmupQuick = 50
)

// runBench is `hookstream bench`: the floors and hookstream end to end,
// printed as one table.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	env, err := startBenchEnv(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer env.stop()
	rep := runBenchCases(ctx, o, env, stderr)
	if o.json {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchOptions, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printFlagUsage(fs, "hookstream bench [flags]", false) }
	o := &benchOptions{}
	var rates, cases string
	fs.StringVar(&o.server, "server", "", "run the end-to-end cases against this deployment's API (default: serve's components in-process on an embedded NATS in a temporary directory)")
	fs.StringVar(&o.token, "token", "", "the API token of --server")
	fs.StringVar(&o.natsURL, "nats-url", "", "with --server: the deployment's NATS, for the JetStream floor and the Go producer cases (skipped without it)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "with --server on this machine: the pid whose peak RSS to report")
	fs.StringVar(&o.receiverListen, "receiver-listen", "127.0.0.1:0", "where the receivers listen (host:port; with a port P, receiver i listens on P+i); with --server, the deployment must reach it")
	fs.StringVar(&o.receiverHost, "receiver-host", "", "the host name or address the endpoints' URLs give for the receivers (default: --receiver-listen's host), for a deployment that reaches this machine by another name")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run of a few seconds (small counts, low rates)")
	fs.IntVar(&o.events, "events", 0, fmt.Sprintf("deliveries per throughput case (events to one endpoint; a tenth as many to ten) (default %d, --quick %d)", benchEventsDefault, benchEventsQuick))
	fs.IntVar(&o.concurrency, "concurrency", benchConcurrencyDefault, "publishes in flight, HTTP floor requests in flight, and each endpoint's concurrency")
	fs.IntVar(&o.size, "size", benchSizeDefault, "bytes of event data")
	fs.IntVar(&o.fanout, "fanout", benchFanoutDefault, "endpoints of the fan-out cases")
	fs.StringVar(&rates, "rate", "", fmt.Sprintf("events per second of the latency cases, comma-separated (default %s, --quick %s)", benchRatesDefault, benchRatesQuick))
	fs.DurationVar(&o.latencySeconds, "latency-duration", 0, fmt.Sprintf("how long each latency case publishes (default %s, --quick %s)", benchLatencyDefault, benchLatencyQuick))
	fs.DurationVar(&o.caseTimeout, "case-timeout", benchCaseTimeoutDefault, "longest time one case may take")
	fs.DurationVar(&o.dedupWindow, "dedup-window", streams.DedupWindowDefault, "in-process: serve's --dedup-window")
	fs.StringVar(&cases, "cases", "", "run only the cases whose name matches this regular expression (floor-jetstream, floor-http, producer-1, ingest-1, batch-1, producer-10, …, ordered-16, latency-ingest-8000)")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of each case (<case>.cpu.pprof) and the allocations so far after it (<case>.allocs.pprof) to this directory")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.verbose, "verbose", false, "in-process: serve's warnings and errors on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageErrorf("bench: %v", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if o.events == 0 {
		o.events = benchEventsDefault
		if o.quick {
			o.events = benchEventsQuick
		}
	}
	if o.latencySeconds == 0 {
		o.latencySeconds = benchLatencyDefault
		if o.quick {
			o.latencySeconds = benchLatencyQuick
		}
	}
	if rates == "" {
		rates = benchRatesDefault
		if o.quick {
			rates = benchRatesQuick
		}
	}
	for _, s := range strings.Split(rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r < 1 {
			return nil, usageErrorf("bench: rate: want positive integers separated by commas, got %q", rates)
		}
		o.rates = append(o.rates, r)
	}
	switch {
	case o.events < 1:
		return nil, usageErrorf("bench: events: must be at least 1, got %d", o.events)
	case o.concurrency < 1 || o.concurrency > 1000:
		return nil, usageErrorf("bench: concurrency: must be 1 to 1000, got %d", o.concurrency)
	case o.size < 64 || o.size > streams.MaxEventDataDefault:
		return nil, usageErrorf("bench: size: must be 64 bytes to 1 MiB, got %d", o.size)
	case o.fanout < 1 || o.fanout > 100:
		return nil, usageErrorf("bench: fanout: must be 1 to 100, got %d", o.fanout)
	case o.latencySeconds <= 0 || o.caseTimeout <= 0:
		return nil, usageErrorf("bench: latency-duration and case-timeout: must be positive")
	case o.server == "" && (o.natsURL != "" || o.token != "" || o.serverPID != 0):
		return nil, usageErrorf("bench: nats-url, token and server-pid: only with --server")
	}
	if cases != "" {
		re, err := regexp.Compile(cases)
		if err != nil {
			return nil, usageErrorf("bench: cases: %v", err)
		}
		o.cases = re
	}
	return o, nil
}

// benchEnv is the pipeline under test: its API, and its NATS when the
// bench can reach it.
type benchEnv struct {
	api, token string
	// nc is a connection of the bench's own to the pipeline's NATS (nil
	// with --server and no --nats-url): the JetStream floor and the Go
	// producer's cases use it.
	nc *nats.Conn
	// pid is the process whose peak RSS is reported: 0 for this one
	// (in-process), -1 for none.
	pid       int
	inProcess bool
	recv      *bench.Receivers
	stop      func()
}

// startBenchEnv starts the receivers and, without --server, serve's
// components in this process: the embedded NATS (on a loopback port, so
// that the Go producer connects as a service's would), the API, the
// fan-out and the dispatcher, with --allow-private-endpoints so that they
// deliver to the loopback receivers.
func startBenchEnv(ctx context.Context, o *benchOptions, stderr io.Writer) (*benchEnv, error) {
	recv, err := bench.NewReceivers(o.receiverListen, max(o.fanout, 1))
	if err != nil {
		return nil, fmt.Errorf("receiver-listen: %w", err)
	}
	if o.receiverHost != "" {
		for _, r := range recv.List {
			u, err := url.Parse(r.URL)
			if err != nil {
				_ = recv.Close()
				return nil, err
			}
			u.Host = net.JoinHostPort(o.receiverHost, u.Port())
			r.URL = u.String()
		}
	}
	env := &benchEnv{recv: recv, pid: -1}
	var stops []func()
	env.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stops = append(stops, func() { _ = recv.Close() })
	if o.server != "" {
		env.api, env.token = strings.TrimRight(o.server, "/"), o.token
		if !strings.Contains(env.api, "://") {
			env.api = "http://" + env.api
		}
		if o.serverPID != 0 {
			env.pid = o.serverPID
		}
		if o.natsURL != "" {
			nc, err := streams.Dial(o.natsURL, "hookstream-bench")
			if err != nil {
				env.stop()
				return nil, err
			}
			env.nc = nc
			stops = append(stops, nc.Close)
		}
		return env, nil
	}
	// In-process, serve's components run with serve's GC target.
	tuneGC()
	s, err := startLocalServe(ctx, o.dedupWindow, o.verbose, stderr)
	if err != nil {
		env.stop()
		return nil, err
	}
	stops = append(stops, s.stop)
	env.api, env.nc, env.pid, env.inProcess = s.api, s.nc, 0, true
	return env, nil
}

// localServe is `hookstream serve` running in this process.
type localServe struct {
	api  string
	nc   *nats.Conn
	dir  string
	stop func()
}

// startLocalServe runs serveRole, as `hookstream serve` does, on a
// temporary data directory with its embedded NATS exposed on a loopback
// port, and connects to that NATS.
func startLocalServe(ctx context.Context, dedupWindow time.Duration, verbose bool, stderr io.Writer, extra ...func(*serverFlags)) (*localServe, error) {
	dir, err := os.MkdirTemp("", "hookstream-bench-")
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeLoopbackPort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	f := addServerFlags(flag.NewFlagSet("serve", flag.ContinueOnError), roleServe)
	f.data, f.httpAddr, f.natsListen = dir, "127.0.0.1:0", natsAddr
	f.allowPrivate, f.dedupWindow, f.logLevel = true, dedupWindow, "error"
	f.shutdownTimeout = 5 * time.Second
	if verbose {
		f.logLevel = "warn"
	}
	for _, x := range extra {
		x(f)
	}
	logs := io.Discard
	if verbose {
		logs = stderr
	}
	api, stop, err := runServeRole(ctx, f, logs)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &localServe{dir: dir, api: api}
	s.stop = func() {
		stop()
		_ = os.RemoveAll(dir)
	}
	s.nc, err = streams.Dial("nats://"+natsAddr, "hookstream-bench")
	if err != nil {
		s.stop()
		return nil, err
	}
	stopServe := s.stop
	s.stop = func() { s.nc.Close(); stopServe() }
	return s, nil
}

// runServeRole runs serveRole with f until stop is called, and returns the
// API's URL once it listens.
func runServeRole(ctx context.Context, f *serverFlags, logs io.Writer) (api string, stop func(), err error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := serveRole(sctx, f, pw, logs)
		_ = pw.CloseWithError(io.EOF)
		done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	stop = func() {
		cancel()
		<-done
		_ = pr.Close()
	}
	var ok bool
	select {
	case api, ok = <-addr:
	case <-ctx.Done():
	}
	if !ok {
		cancel()
		err := <-done
		_ = pr.Close()
		if err == nil {
			err = errors.New("stopped before it listened")
		}
		return "", nil, fmt.Errorf("in-process %s: %w", f.role, err)
	}
	return api, stop, nil
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// benchRun is the state of one run of the cases.
type benchRun struct {
	o      *benchOptions
	env    *benchEnv
	api    *client.Client
	ingest *bench.Ingest
	prod   *producer.Producer
	run    string
	n      int
	rep    *bench.Report
	floor  float64 // the HTTP floor's requests/s
	probe  *benchProbe
	log    io.Writer
}

// benchCase is one row: its name, what it measures, and the run.
type benchCase struct {
	name, what string
	needNATS   bool
	run        func(ctx context.Context, row *bench.Row) error
}

func runBenchCases(ctx context.Context, o *benchOptions, env *benchEnv, log io.Writer) *bench.Report {
	r := &benchRun{o: o, env: env, run: strings.ToLower(streams.NewID("r")[:7]), log: log, rep: &bench.Report{Machine: bench.ThisMachine()}}
	r.rep.Settings = map[string]string{
		"events": strconv.Itoa(o.events), "concurrency": strconv.Itoa(o.concurrency), "size": strconv.Itoa(o.size),
		"fanout": strconv.Itoa(o.fanout), "mode": "in-process", "latency-duration": o.latencySeconds.String(),
	}
	if o.server != "" {
		r.rep.Settings["mode"] = "server " + env.api
	} else {
		r.rep.Settings["dedup-window"] = o.dedupWindow.String()
	}
	var err error
	r.api, err = client.New(env.api, client.WithToken(env.token))
	if err != nil {
		r.rep.Notes = append(r.rep.Notes, "api: "+err.Error())
		return r.rep
	}
	r.ingest = bench.NewIngest(env.api, env.token, o.concurrency)
	defer r.ingest.Close()
	if env.nc != nil {
		js, err := jetstream.New(env.nc)
		if err == nil {
			r.prod, err = producer.New(producer.Config{JS: js})
		}
		if err != nil {
			r.rep.Notes = append(r.rep.Notes, "go producer: "+err.Error())
		}
	}
	for _, c := range r.cases() {
		if o.cases != nil && !o.cases.MatchString(c.name) {
			continue
		}
		row := bench.Row{Case: c.name, Name: c.what}
		if c.needNATS && (env.nc == nil || r.prod == nil) {
			row.Skipped = "needs the deployment's NATS (--nats-url)"
			r.rep.Rows = append(r.rep.Rows, row)
			continue
		}
		fmt.Fprintf(log, "bench: %s …\n", c.name)
		cctx, cancel := context.WithTimeout(ctx, o.caseTimeout)
		r.probe = newBenchProbe(env.pid)
		err := c.run(cctx, &row)
		r.probe.finish(&row)
		cancel()
		if err != nil {
			row.Error = oneLine(err.Error())
		}
		if row.Case == "floor-http" && err == nil {
			r.floor = row.PerSecond
		}
		if r.floor > 0 && !strings.HasPrefix(row.Case, "floor-") && !strings.HasPrefix(row.Case, "latency-") && err == nil {
			row.Ratio = row.PerSecond / r.floor
		}
		r.rep.Rows = append(r.rep.Rows, row)
		if ctx.Err() != nil {
			break
		}
	}
	r.rep.Notes = append(r.rep.Notes, r.notes()...)
	return r.rep
}

func (r *benchRun) notes() []string {
	notes := []string{
		"count: deliveries received (messages acked for floor-jetstream, requests for floor-http); per s over the whole case, first publish to last receipt.",
		fmt.Sprintf("latency: from each event's scheduled publish time to its receipt, %d publishers, open loop.", r.o.concurrency),
	}
	switch {
	case r.env.inProcess:
		notes = append(notes, "peak RSS and allocs: this one process, the embedded NATS server, the receivers and the publishers included.")
	case r.env.pid > 0:
		notes = append(notes, fmt.Sprintf("peak RSS: process %d.", r.env.pid))
	}
	return notes
}

func (r *benchRun) cases() []benchCase {
	o := r.o
	n, fan := o.events, o.fanout
	cs := []benchCase{
		{name: "floor-jetstream", what: fmt.Sprintf("JetStream publish+consume+ack, file store, the event's envelope (%d msgs)", n*benchJSFloorFactor), needNATS: true, run: r.floorJetStream},
		{name: "floor-http", what: fmt.Sprintf("HTTP POSTs of the signed webhook body, %d in flight", o.concurrency), run: r.floorHTTP},
	}
	for _, to := range []int{1, fan} {
		events := max(n/to, 1)
		cs = append(cs,
			benchCase{name: fmt.Sprintf("producer-%d", to), what: fmt.Sprintf("Go producer → %d endpoint%s", to, plural(to)), needNATS: true,
				run: r.throughput(r.publishProducer, 1, events, to)},
			benchCase{name: fmt.Sprintf("ingest-%d", to), what: fmt.Sprintf("POST /v1/events → %d endpoint%s", to, plural(to)),
				run: r.throughput(r.ingest.Single, 1, events, to)},
			benchCase{name: fmt.Sprintf("batch-%d", to), what: fmt.Sprintf("POST /v1/events/batch (100) → %d endpoint%s", to, plural(to)),
				run: r.throughput(r.ingest.Batch, 100, events, to)},
		)
	}
	// An ordered endpoint with 16 lanes (16 in flight, one per lane) and a
	// fast receiver; the events spread over 256 ordering keys.
	cs = append(cs, benchCase{name: "ordered-16", what: "Go producer → 1 ordered endpoint, 16 lanes, 256 keys", needNATS: true,
		run: r.throughputWith(r.publishOrdered, 1, n, 1, benchOrderedPartitions)})
	for _, rate := range o.rates {
		cs = append(cs,
			benchCase{name: fmt.Sprintf("latency-producer-%d", rate), what: fmt.Sprintf("latency, Go producer at %d events/s → 1 endpoint", rate), needNATS: true,
				run: r.latency(r.publishProducer, rate)},
			benchCase{name: fmt.Sprintf("latency-ingest-%d", rate), what: fmt.Sprintf("latency, POST /v1/events at %d events/s → 1 endpoint", rate),
				run: r.latency(r.ingest.Single, rate)},
		)
	}
	return cs
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sample is the event every floor carries: the same data size, id and
// type lengths as the cases' events.
func (r *benchRun) sample() (bench.Event, *streams.Event) {
	ev := r.maker("floor").Make(0)
	return ev, &streams.Event{ID: ev.ID, Type: ev.Type, Source: streams.DefaultSource, Time: time.Now().UTC(), Data: ev.Data}
}

func (r *benchRun) floorJetStream(ctx context.Context, row *bench.Row) error {
	_, se := r.sample()
	msg, err := streams.Marshal(se)
	if err != nil {
		return err
	}
	m, err := bench.JetStreamFloor(ctx, r.env.nc, msg, r.o.events*benchJSFloorFactor, 1)
	row.Count, row.Seconds, row.PerSecond = m.Count, m.Elapsed.Seconds(), m.PerSecond()
	return err
}

func (r *benchRun) floorHTTP(ctx context.Context, row *bench.Row) error {
	_, se := r.sample()
	body, err := se.WebhookBody()
	if err != nil {
		return err
	}
	secret, err := webhook.GenerateSecret()
	if err != nil {
		return err
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return err
	}
	r.env.recv.Counter.Reset()
	m, err := bench.HTTPFloor(ctx, r.env.recv.List[0].URL, body, se.ID, key, r.o.concurrency, r.o.events)
	row.Count, row.Seconds, row.PerSecond = m.Count, m.Elapsed.Seconds(), m.PerSecond()
	return err
}

// maker makes the events of case c: a type only its endpoints subscribe to.
func (r *benchRun) maker(c string) bench.EventMaker {
	r.n++
	return bench.EventMaker{Prefix: r.run + "-" + c, Type: fmt.Sprintf("bench.%s.c%d", r.run, r.n), Size: r.o.size}
}

// benchOrderedPartitions is the ordered case's lane count, and its keys.
const (
	benchOrderedPartitions = 16
	benchOrderedKeys       = 256
)

// publishOrdered publishes evs with an ordering key each, one of
// benchOrderedKeys taken from the id.
func (r *benchRun) publishOrdered(ctx context.Context, evs []bench.Event) error {
	for _, ev := range evs {
		key := "key-" + strconv.Itoa(streams.LaneOf(ev.ID, benchOrderedKeys))
		if _, err := r.prod.Publish(ctx, producer.Event{ID: ev.ID, Type: ev.Type, Data: ev.Data, OrderingKey: key}); err != nil {
			return err
		}
	}
	return nil
}

func (r *benchRun) publishProducer(ctx context.Context, evs []bench.Event) error {
	for _, ev := range evs {
		if _, err := r.prod.Publish(ctx, producer.Event{ID: ev.ID, Type: ev.Type, Data: ev.Data}); err != nil {
			return err
		}
	}
	return nil
}

// endpoints creates to endpoints (one per receiver) subscribed to typ, and
// returns what deletes them.
func (r *benchRun) endpoints(ctx context.Context, typ string, to int) (func(), error) {
	return r.endpointsWith(ctx, typ, to, 0)
}

// endpointsWith is endpoints, ordered with that many lanes when partitions
// is not 0 (and as many in flight).
func (r *benchRun) endpointsWith(ctx context.Context, typ string, to, partitions int) (func(), error) {
	var ids []string
	remove := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, id := range ids {
			if err := r.api.DeleteEndpoint(dctx, id); err != nil {
				fmt.Fprintf(r.log, "bench: delete endpoint %s: %v\n", id, err)
			}
		}
	}
	for i := range to {
		in := client.EndpointCreate{
			URL: r.env.recv.List[i].URL, EventTypes: []string{typ}, Concurrency: r.o.concurrency,
			Description: "hookstream bench " + r.run,
		}
		if partitions > 0 {
			in.Ordered, in.Partitions, in.Concurrency = true, partitions, partitions
		}
		ep, err := r.api.CreateEndpoint(ctx, in)
		if err != nil {
			remove()
			return nil, fmt.Errorf("create endpoint: %w", err)
		}
		ids = append(ids, ep.ID)
	}
	return remove, nil
}

// warm sends a few events of the case's type and waits for them: the
// endpoints' consumers exist and the connections are open before the
// measured run.
func (r *benchRun) warm(ctx context.Context, m bench.EventMaker, publish bench.PublishFunc, batch, to int) error {
	wm := m
	wm.Prefix += "-warm"
	n := benchWarmup
	if r.o.quick {
		n = benchWarmupQuick
	}
	_, err := bench.Throughput(ctx, bench.ThroughputConfig{
		Publish: publish, Make: wm.Make, Events: n, Batch: min(batch, n), Concurrency: min(r.o.concurrency, 8),
		Fanout: to, Counter: r.env.recv.Counter,
	})
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

func (r *benchRun) throughput(publish bench.PublishFunc, batch, events, to int) func(context.Context, *bench.Row) error {
	return r.throughputWith(publish, batch, events, to, 0)
}

// throughputWith is throughput to ordered endpoints with partitions lanes
// when partitions is not 0.
func (r *benchRun) throughputWith(publish bench.PublishFunc, batch, events, to, partitions int) func(context.Context, *bench.Row) error {
	return func(ctx context.Context, row *bench.Row) error {
		m := r.maker(row.Case)
		remove, err := r.endpointsWith(ctx, m.Type, to, partitions)
		if err != nil {
			return err
		}
		defer remove()
		if err := r.warm(ctx, m, publish, batch, to); err != nil {
			return err
		}
		stop := r.profile(row.Case)
		defer stop()
		r.probe.restart()
		res, err := bench.Throughput(ctx, bench.ThroughputConfig{
			Publish: publish, Make: m.Make, Events: events, Batch: batch, Concurrency: r.o.concurrency,
			Fanout: to, Counter: r.env.recv.Counter,
		})
		row.Count, row.Seconds, row.PerSecond = res.Deliveries, res.Elapsed.Seconds(), res.PerSecond()
		return err
	}
}

func (r *benchRun) latency(publish bench.PublishFunc, rate int) func(context.Context, *bench.Row) error {
	return func(ctx context.Context, row *bench.Row) error {
		m := r.maker(row.Case)
		remove, err := r.endpoints(ctx, m.Type, 1)
		if err != nil {
			return err
		}
		defer remove()
		if err := r.warm(ctx, m, publish, 1, 1); err != nil {
			return err
		}
		stop := r.profile(row.Case)
		defer stop()
		r.probe.restart()
		events := max(int(float64(rate)*r.o.latencySeconds.Seconds()), 1)
		res, err := bench.Latency(ctx, bench.LatencyConfig{
			Publish: publish, Make: m.MakeAt, Rate: rate, Events: events, Workers: r.o.concurrency,
			Fanout: 1, Counter: r.env.recv.Counter,
		})
		row.SetLatency(res)
		return err
	}
}

// profile starts a CPU profile of case c when --profile names a directory,
// and returns what stops it.
func (r *benchRun) profile(c string) func() {
	if r.o.profileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(r.o.profileDir, c+".cpu.pprof"))
	if err != nil {
		fmt.Fprintf(r.log, "bench: profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(r.log, "bench: profile: %v\n", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		if a, err := os.Create(filepath.Join(r.o.profileDir, c+".allocs.pprof")); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			_ = a.Close()
		}
	}
}

// benchProbe measures one row's peak RSS and allocations (the cases run
// one at a time).
type benchProbe struct {
	pid     int
	mallocs uint64
	cpu     bench.CPUProbe
}

func newBenchProbe(pid int) *benchProbe {
	p := &benchProbe{pid: pid}
	p.restart()
	return p
}

// restart starts the measures again: a case calls it after its set-up
// (the endpoints, the warm-up), so that its row measures only its measured
// phase.
func (p *benchProbe) restart() {
	if p.pid < 0 {
		p.cpu = bench.StartCPU(0)
		return
	}
	p.cpu = bench.StartCPU(p.pid)
	bench.ResetPeakRSS(p.pid)
	if p.pid == 0 {
		p.mallocs = heapObjects()
	}
}

func (p *benchProbe) finish(row *bench.Row) {
	row.CPU, row.OtherCPU = p.cpu.Cores()
	if p.pid < 0 {
		// Not the server's: the rest of the machine includes it.
		row.CPU = 0
		return
	}
	row.PeakRSS = bench.PeakRSS(p.pid)
	if p.pid == 0 && row.Count > 0 {
		row.AllocsPerDelivery = float64(heapObjects()-p.mallocs) / float64(row.Count)
	}
}

// heapObjects is how many heap objects this process allocated so far.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
