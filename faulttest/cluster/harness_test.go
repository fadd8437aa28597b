package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/poller"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// Waits are loose: the machine is shared and the tests run with -race.
const (
	waitCluster   = 60 * time.Second
	waitDelivered = 90 * time.Second
	// publishPatience is how long the test keeps re-publishing one event
	// (same id) before it counts it as not accepted.
	publishPatience = 30 * time.Second
)

// clusterName is the NATS cluster of the test nodes.
const clusterName = "hookstream-test"

// streamsConfig is what compose.yaml runs (3 replicas) with the retry
// window scaled down.
var streamsConfig = streams.Config{Replicas: 3, RetryMaxAge: time.Minute, DeliveriesMargin: time.Minute}

// node is one member of the test cluster. Its ports and store dir stay the
// same across a kill and a restart.
type node struct {
	name                    string
	dir                     string
	clientPort, clusterPort int
	routes                  []string
	srv                     *streams.Server // nil while down
}

func (n *node) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.clientPort) }

// testCluster is three clustered embedded NATS nodes on loopback, as
// compose.yaml's nats1, nats2 and nats3.
type testCluster struct {
	t     *testing.T // the test that owns it; subtests pass their own
	nodes []*node
}

// startCluster starts the three nodes, waits for a JetStream meta leader
// and ensures hookstream's streams and buckets with 3 replicas. Everything
// is shut down when the test ends.
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	var err error
	// A port picked free may be taken again before the node binds it: start
	// over with new ports.
	for range 3 {
		if err = c.boot(); err == nil {
			break
		}
		c.shutdown()
	}
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(c.shutdown)
	c.waitMeta()

	_, js := c.connect("ensure")
	var lastErr error
	defer func() {
		if t.Failed() && lastErr != nil {
			t.Logf("last ensure error: %v", lastErr)
		}
	}()
	streamstest.WaitFor(t, waitCluster, "streams and buckets ensured with 3 replicas", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lastErr = streams.Ensure(ctx, js, streamsConfig)
		return lastErr == nil
	})
	return c
}

func (c *testCluster) boot() error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	c.nodes = nil
	for i := range 3 {
		c.nodes = append(c.nodes, &node{
			name: fmt.Sprintf("n%d", i+1), dir: c.t.TempDir(),
			clientPort: ports[2*i], clusterPort: ports[2*i+1],
		})
	}
	for _, n := range c.nodes {
		for _, o := range c.nodes {
			if o != n {
				n.routes = append(n.routes, "nats://127.0.0.1:"+strconv.Itoa(o.clusterPort))
			}
		}
	}
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *testCluster) start(n *node) error {
	srv, err := streams.StartServer(streams.ServerConfig{
		StoreDir:      n.dir,
		Listen:        "127.0.0.1:" + strconv.Itoa(n.clientPort),
		ServerName:    n.name,
		ClusterName:   clusterName,
		ClusterListen: "127.0.0.1:" + strconv.Itoa(n.clusterPort),
		Routes:        n.routes,
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.name, err)
	}
	if a := srv.NATS().ClusterAddr(); a == nil || a.Port != n.clusterPort {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("node %s: cluster port %d not bound", n.name, n.clusterPort)
	}
	n.srv = srv
	return nil
}

// waitMeta waits until JetStream has a meta leader and every running node
// is current with it.
func (c *testCluster) waitMeta() {
	c.t.Helper()
	streamstest.WaitFor(c.t, waitCluster, "a JetStream meta leader with every node current", func() bool {
		leader := false
		for _, n := range c.nodes {
			if n.srv == nil {
				continue
			}
			if !n.srv.NATS().JetStreamIsCurrent() {
				return false
			}
			leader = leader || n.srv.NATS().JetStreamIsLeader()
		}
		return leader
	})
}

// urls is the client URL list every component dials, so that it fails over
// to another node.
func (c *testCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, n.url())
	}
	return strings.Join(u, ",")
}

func (c *testCluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// kill shuts a node down at once, as a crash would for its clients: no
// leadership is handed over first and its connections just drop.
func (c *testCluster) kill(n *node) {
	n.srv.NATS().Shutdown()
	n.srv.NATS().WaitForShutdown()
	n.srv = nil
}

// restart starts a killed node again on its store dir and ports.
func (c *testCluster) restart(t *testing.T, n *node) {
	t.Helper()
	if err := c.start(n); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

func (c *testCluster) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if n.srv == nil {
			continue
		}
		if err := n.srv.Shutdown(ctx); err != nil {
			c.t.Errorf("shutdown %s: %v", n.name, err)
		}
		n.srv = nil
	}
}

// connect dials the whole cluster, as the hookstream roles do with
// --nats-url; the connection is drained when the test ends.
func (c *testCluster) connect(name string) (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, err := streams.Dial(c.urls(), name)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = streams.Drain(ctx, nc)
	})
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, js
}

// leaderOf waits until stream has a leader other than not and returns its
// server name.
func (c *testCluster) leaderOf(t *testing.T, js jetstream.JetStream, stream, not string) string {
	t.Helper()
	var leader string
	streamstest.WaitFor(t, waitCluster, "a leader of "+stream, func() bool {
		info, err := streamInfo(js, stream)
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = info.Cluster.Leader
		return leader != "" && leader != not
	})
	return leader
}

func streamInfo(js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// pipeline is the scale-out topology on the test cluster: a producer (the
// api role's publish path), endpoints registered through the registry,
// dispatchers and optionally a poller, each on its own connection.
type pipeline struct {
	js          jetstream.JetStream
	producer    *producer.Producer
	receivers   []*receiver
	dispatchers []*dispatcherProc
	feed        *changeFeed
	log         *slog.Logger
}

// dispatcherProc is what one dispatcher "process" was seen to do, by its
// Observer.
type dispatcherProc struct {
	attempts atomic.Int64

	mu         sync.Mutex
	byEndpoint map[string]int // attempts per endpoint
}

func (dp *dispatcherProc) endpoints() map[string]int {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return maps.Clone(dp.byEndpoint)
}

// attempts is how many attempts each dispatcher made so far.
func (p *pipeline) attempts() []int64 {
	var n []int64
	for _, d := range p.dispatchers {
		n = append(n, d.attempts.Load())
	}
	return n
}

type pipelineOptions struct {
	endpoints, dispatchers int
	poller                 bool
}

func startPipeline(t *testing.T, c *testCluster, o pipelineOptions) *pipeline {
	t.Helper()
	logs := &logTail{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last component warnings:\n%s", logs.String())
		}
	})
	p := &pipeline{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	_, p.js = c.connect("api")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var err error
	if p.producer, err = producer.New(producer.Config{JS: p.js, Logger: p.log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.producer.Stop(sctx)
	})
	reg, err := endpoints.New(ctx, endpoints.Config{JS: p.js, AllowPrivate: true, Logger: p.log})
	if err != nil {
		t.Fatal(err)
	}
	for range o.endpoints {
		r := newReceiver(t)
		if _, err := reg.Create(ctx, endpoints.CreateInput{URL: r.srv.URL + "/hook", EventTypes: []string{"order.*"}}); err != nil {
			t.Fatalf("create endpoint: %v", err)
		}
		p.receivers = append(p.receivers, r)
	}

	for i := range o.dispatchers {
		_, js := c.connect(fmt.Sprintf("dispatcher-%d", i+1))
		dp := &dispatcherProc{byEndpoint: map[string]int{}}
		d, err := dispatcher.New(dispatcher.Config{
			JS:               js,
			DeliveryTimeout:  2 * time.Second,
			AckWait:          5 * time.Second,
			RetryInitial:     50 * time.Millisecond,
			RetryMaxInterval: time.Second,
			RetryMaxAge:      streamsConfig.RetryMaxAge,
			RetryMinDelay:    10 * time.Millisecond,
			Jitter:           -1,
			PullWait:         500 * time.Millisecond,
			MemberTTL:        5 * time.Second,
			AllowPrivate:     true,
			Logger:           p.log.With("dispatcher", i+1),
			Observer: func(o dispatcher.Outcome) {
				dp.attempts.Add(1)
				dp.mu.Lock()
				dp.byEndpoint[o.EndpointID]++
				dp.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx); err != nil {
			t.Fatalf("start dispatcher %d: %v", i+1, err)
		}
		t.Cleanup(func() { stop(t, "dispatcher", d) })
		p.dispatchers = append(p.dispatchers, dp)
	}

	if o.poller {
		_, js := c.connect("poller")
		pl, err := poller.New(ctx, poller.Config{
			JS:                    js,
			AllowPrivate:          true,
			IntervalDefault:       50 * time.Millisecond,
			ExpectedWindowDefault: time.Hour,
			MaxBackoff:            500 * time.Millisecond,
			RequestTimeout:        5 * time.Second,
			Tick:                  10 * time.Millisecond,
			MinInterval:           time.Millisecond,
			LeaseTTL:              2 * time.Second,
			Logger:                p.log.With("poller", 1),
		})
		if err != nil {
			t.Fatal(err)
		}
		p.feed = &changeFeed{}
		pl.Register(feedSource, p.feed, 20*time.Millisecond, time.Hour)
		if err := pl.Start(ctx); err != nil {
			t.Fatalf("start poller: %v", err)
		}
		t.Cleanup(func() { stop(t, "poller", pl) })
	}
	return p
}

func stop(t *testing.T, what string, s interface{ Stop(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("stop %s: %v", what, err)
	}
}

// record notes, every second until the test ends, how far publishing and
// delivery got and who leads DELIVERIES; the timeline is shown if the test
// fails, to tell a stall from a loss.
func (p *pipeline) record(t *testing.T, pb *publisher) {
	var (
		mu       sync.Mutex
		timeline []string
	)
	began := time.Now()
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopc:
				return
			case <-tick.C:
			}
			var got []int
			for _, r := range p.receivers {
				r.mu.Lock()
				got = append(got, r.distinct)
				r.mu.Unlock()
			}
			var attempts []int64
			for _, d := range p.dispatchers {
				attempts = append(attempts, d.attempts.Load())
			}
			line := fmt.Sprintf("%6.1fs accepted %d, received %v, attempts %v", time.Since(began).Seconds(), pb.acceptedN.Load(), got, attempts)
			if p.feed != nil {
				n, acked := p.feed.state()
				line += fmt.Sprintf(", changes acknowledged %d/%d", acked, n)
			}
			if info, err := streamInfo(p.js, streams.StreamDeliveries); err == nil && info.Cluster != nil {
				line += ", DELIVERIES leader " + info.Cluster.Leader
			} else {
				line += fmt.Sprintf(", DELIVERIES info: %v", err)
			}
			mu.Lock()
			timeline = append(timeline, line)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stopc)
		<-done
		if t.Failed() {
			t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
		}
	})
}

// publisher publishes events at a steady pace, re-publishing one (same id)
// until JetStream accepts it or publishPatience passes; only accepted
// events must be delivered.
type publisher struct {
	p      *producer.Producer
	prefix string      // event ids are <prefix>-<n>
	feed   *changeFeed // when set, gets one new change every feedEvery events
	killed atomic.Bool // set by the test when a node was killed

	mu         sync.Mutex
	accepted   []string
	afterKill  int // accepted events first published after the kill
	refused    int // given up on
	retried    int // accepted after at least one failed publish
	acceptedN  atomic.Int64
	publishErr error // the last publish error seen
}

const feedEvery = 5

// run publishes n events, one every pace, from workers goroutines (so that
// one event re-published through a leader election does not hold up the
// rest), and returns once each was accepted or given up on.
func (pb *publisher) run(ctx context.Context, n int, pace time.Duration, workers int) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				pb.one(ctx, i)
			}
		})
	}
	defer wg.Wait()
	defer close(next)
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := range n {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case next <- i:
		}
		if pb.feed != nil && i%feedEvery == feedEvery-1 {
			pb.feed.add(1)
		}
	}
}

// one publishes event i and records the outcome.
func (pb *publisher) one(ctx context.Context, i int) {
	after := pb.killed.Load()
	id := fmt.Sprintf("%s-%05d", pb.prefix, i)
	ok, retried := pb.publish(ctx, id)
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if !ok {
		pb.refused++
		return
	}
	pb.accepted = append(pb.accepted, id)
	if after {
		pb.afterKill++
	}
	if retried {
		pb.retried++
	}
	pb.acceptedN.Add(1)
}

func (pb *publisher) publish(ctx context.Context, id string) (ok, retried bool) {
	deadline := time.Now().Add(publishPatience)
	ev := producer.Event{ID: id, Type: "order.updated", Source: "orders", Data: json.RawMessage(`{"order":"` + id + `"}`)}
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := pb.p.Publish(pctx, ev)
		cancel()
		if err == nil {
			return true, try > 0
		}
		pb.mu.Lock()
		pb.publishErr = err
		pb.mu.Unlock()
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false, true
		}
		// Back off a little before publishing the same id again, as a
		// client answered 503 would.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, true
		case <-t.C:
		}
	}
}

// result is what the publisher saw.
type result struct {
	accepted                    []string
	afterKill, refused, retried int
	lastErr                     error
}

func (pb *publisher) result() result {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return result{
		accepted: append([]string(nil), pb.accepted...), afterKill: pb.afterKill,
		refused: pb.refused, retried: pb.retried, lastErr: pb.publishErr,
	}
}

// feedSource is the poller's source id; its changes are events
// "shop:<change id>".
const feedSource = "shop"

// changeFeed is a poller.Source whose changes are added by the test. A poll
// from cursor k means the poller stored k as its cursor, which it does only
// after JetStream acknowledged every change before k: those are accepted.
type changeFeed struct {
	mu    sync.Mutex
	n     int // changes c00000 … c(n-1)
	acked int // every change below it was acknowledged
}

const feedPageSize = 25

func (f *changeFeed) Poll(ctx context.Context, cursor string) (poller.Page, error) {
	if err := ctx.Err(); err != nil {
		return poller.Page{}, err
	}
	start := 0
	if cursor != "" {
		var err error
		if start, err = strconv.Atoi(cursor); err != nil {
			return poller.Page{}, fmt.Errorf("%w: cursor %q", poller.ErrBadFeed, cursor)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked = max(f.acked, start)
	end := min(start+feedPageSize, f.n)
	pg := poller.Page{NextCursor: strconv.Itoa(end), HasMore: end < f.n}
	for i := start; i < end; i++ {
		pg.Changes = append(pg.Changes, poller.Change{
			ID: changeID(i), Type: "order.polled", Data: json.RawMessage(`{"change":` + strconv.Itoa(i) + `}`),
		})
	}
	return pg, nil
}

func changeID(i int) string { return fmt.Sprintf("c%05d", i) }

func (f *changeFeed) add(k int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += k
}

// state returns how many changes there are and how many were acknowledged.
func (f *changeFeed) state() (n, acked int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.acked
}

// eventIDs are the event ids of the first k changes.
func (f *changeFeed) eventIDs(k int) []string {
	ids := make([]string, k)
	for i := range k {
		ids[i] = feedSource + ":" + changeID(i)
	}
	return ids
}

// receiver is a webhook endpoint that answers 204 and counts the receipts
// of each webhook-id.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      map[string]int
	distinct int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		id := req.Header.Get(webhook.HeaderID)
		r.mu.Lock()
		r.got[id]++
		if r.got[id] == 1 {
			r.distinct++
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// has reports whether every id was received at least once.
func (r *receiver) has(ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.distinct < len(ids) {
		return false
	}
	for _, id := range ids {
		if r.got[id] == 0 {
			return false
		}
	}
	return true
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// waitDelivered waits until every id reached every endpoint.
func (p *pipeline) waitDelivered(t *testing.T, what string, ids []string) {
	t.Helper()
	streamstest.WaitFor(t, waitDelivered, fmt.Sprintf("%d %s at each of %d endpoints", len(ids), what, len(p.receivers)), func() bool {
		for _, r := range p.receivers {
			if !r.has(ids) {
				return false
			}
		}
		return true
	})
}

// tally is what the endpoints received of a set of accepted events.
type tally struct {
	events     int // accepted events
	delivered  int // events that reached every endpoint
	receipts   int // (event, endpoint) pairs received at least once
	duplicated int // receipts beyond the first
	lost       int // (event, endpoint) pairs never received
}

func (p *pipeline) tally(ids []string) tally {
	tl := tally{events: len(ids)}
	for _, id := range ids {
		all := true
		for _, r := range p.receivers {
			switch c := r.count(id); c {
			case 0:
				tl.lost++
				all = false
			default:
				tl.receipts++
				tl.duplicated += c - 1
			}
		}
		if all {
			tl.delivered++
		}
	}
	return tl
}

func (tl tally) String() string {
	return fmt.Sprintf("accepted %d, delivered %d to every endpoint (%d receipts), duplicated %d, lost %d",
		tl.events, tl.delivered, tl.receipts, tl.duplicated, tl.lost)
}

// logTail keeps the last lines the components logged, shown when a test
// fails.
type logTail struct {
	mu    sync.Mutex
	lines [][]byte
}

const logTailLines = 200

func (l *logTail) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, bytes.Clone(b))
	if len(l.lines) > logTailLines {
		l.lines = l.lines[len(l.lines)-logTailLines:]
	}
	return len(b), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.Join(l.lines, nil))
}
