package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// server is a `hookstream serve` (or another role) running in-process
// through run(), exactly as the binary runs it.
type server struct {
	url    string
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// startServer runs `hookstream <args>` and waits until it listens.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan int), stderr: &syncBuffer{}}
	var stdout syncBuffer
	go func() {
		s.done <- run(ctx, args, strings.NewReader(""), &stdout, s.stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listenRE.FindStringSubmatch(stdout.String()); m != nil {
			s.url = m[1]
			break
		}
		select {
		case code := <-s.done:
			t.Fatalf("%v exited with %d before listening: %s", args, code, s.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not listen: %s", args, s.stderr.String())
		}
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends the equivalent of SIGTERM and waits for a clean exit.
func (s *server) stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("server exited with %d: %s", code, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("server did not stop in 30s")
	}
}

// cliJSON runs a client command against s and decodes its JSON output.
func (s *server) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := runCLI(t, context.Background(), map[string]string{"HOOKSTREAM_SERVER": s.url}, "", append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("hookstream %v: exit %d: %s", args, r.code, r.stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("hookstream %v: output %q: %v", args, r.stdout, err)
		}
	}
}

// A 1,000-event run through the binary's own code path: 3 endpoints with
// different filters each receive each matching event exactly once (re-
// published ids included), signed so that a Standard Webhooks verifier
// accepts it, and nothing else.
func TestEndToEndThousandEventsThreeEndpoints(t *testing.T) {
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "warn", "--retry-initial", "50ms", "--retry-max-interval", "200ms", "--retry-min-delay", "10ms")

	type sinkBundle struct {
		h      *sink
		out    *syncBuffer
		filter string
	}
	sinks := map[string]*sinkBundle{}
	for _, f := range []string{"order.*", "*", "invoice.paid"} {
		secret, err := webhook.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := webhook.ParseSecret(secret)
		out := &syncBuffer{}
		h := newSink(sinkConfig{Keys: [][]byte{key}}, out).(*sink)
		hs := httptest.NewServer(h)
		t.Cleanup(hs.Close)
		var ep struct{ ID string }
		srv.cliJSON(t, &ep, "endpoints", "add", "--url", hs.URL+"/hook", "--types", f, "--secret", secret)
		if ep.ID == "" {
			t.Fatal("no endpoint id")
		}
		sinks[f] = &sinkBundle{h: h, out: out, filter: f}
	}

	types := []string{"order.created", "order.updated", "invoice.paid", "invoice.sent", "customer.created"}
	want := map[string]int{}
	client := &http.Client{Timeout: 10 * time.Second}
	publish := func(id, typ string) {
		body := fmt.Sprintf(`{"id":%q,"type":%q,"data":{"n":%q}}`, id, typ, id)
		resp, err := client.Post(srv.url+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish %s: %d", id, resp.StatusCode)
		}
	}
	const n = 1000
	for i := range n {
		id := fmt.Sprintf("evt-%04d", i)
		typ := types[i%len(types)]
		publish(id, typ)
		if i%7 == 0 {
			publish(id, typ) // a duplicate inside the window: stored and delivered once
		}
		want["*"]++
		if strings.HasPrefix(typ, "order.") {
			want["order.*"]++
		}
		if typ == "invoice.paid" {
			want["invoice.paid"]++
		}
	}
	for f, s := range sinks {
		streamstest.WaitFor(t, 60*time.Second, f+" to receive its events", func() bool { return s.h.Total() >= want[f] })
	}
	// A last event that all three match proves nothing else is still on its way.
	publish("sentinel", "invoice.paid")
	for f, s := range sinks {
		if f == "order.*" {
			continue
		}
		streamstest.WaitFor(t, 30*time.Second, f+" to receive the sentinel", func() bool { return s.h.Received("sentinel") == 1 })
	}
	for f, s := range sinks {
		got := s.h.Total()
		if f != "order.*" {
			got-- // the sentinel
		}
		if got != want[f] {
			t.Errorf("%s received %d requests, want exactly %d", f, got, want[f])
		}
		for i := range n {
			id := fmt.Sprintf("evt-%04d", i)
			typ := types[i%len(types)]
			match := f == "*" || (f == "order.*" && strings.HasPrefix(typ, "order.")) || f == typ
			if c := s.h.Received(id); (match && c != 1) || (!match && c != 0) {
				t.Errorf("%s received %s (%s) %d times", f, id, typ, c)
			}
		}
		if bad := strings.Count(s.out.String(), "signature=invalid"); bad > 0 {
			t.Errorf("%s: %d signatures did not verify", f, bad)
		}
	}
	// The operator sees what happened to an event.
	var ev struct {
		ID         string
		Deliveries []struct{ Endpoint, State string }
	}
	srv.cliJSON(t, &ev, "events", "show", "evt-0002") // invoice.paid: two endpoints
	if ev.ID != "evt-0002" || len(ev.Deliveries) != 2 {
		t.Fatalf("events show = %+v", ev)
	}
	for _, d := range ev.Deliveries {
		if d.State != "delivered" {
			streamstest.WaitFor(t, 10*time.Second, "delivered state", func() bool {
				srv.cliJSON(t, &ev, "events", "show", "evt-0002")
				for _, d := range ev.Deliveries {
					if d.State != "delivered" {
						return false
					}
				}
				return true
			})
		}
	}
}

// An endpoint down past its retry window loses its deliveries to the DLQ;
// when it comes back it receives exactly one webhook.catchup naming them,
// and a replay from the DLQ delivers with the same webhook-id (a second
// replay of the same record makes no second delivery).
func TestEndToEndOutageCatchupAndReplay(t *testing.T) {
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "error", "--retry-initial", "50ms", "--retry-max-interval", "100ms", "--retry-min-delay", "10ms", "--retry-max-age", "1s",
		"--failing-after", "2", "--ack-wait", "3s", "--delivery-timeout", "1s", "--poll-tick", "20ms")
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	got := map[string]int{}
	var catchups []map[string]any
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID, Type string
			Data     map[string]any
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got[r.Header.Get("webhook-id")]++
		if body.Type == "webhook.catchup" {
			catchups = append(catchups, body.Data)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hs.Close)
	var ep struct{ ID string }
	srv.cliJSON(t, &ep, "endpoints", "add", "--url", hs.URL, "--types", "order.*")
	for i := range 3 {
		srv.cliJSON(t, nil, "publish", "--type", "order.created", "--id", fmt.Sprintf("lost-%d", i), "--data", `{"n":1}`)
	}
	var page struct {
		Items []struct {
			ID, Reason string
			Event      struct{ ID string }
		}
	}
	streamstest.WaitFor(t, 30*time.Second, "3 dead letters", func() bool {
		srv.cliJSON(t, &page, "dlq", "list", "--endpoint", ep.ID)
		return len(page.Items) == 3
	})
	for _, it := range page.Items {
		if it.Reason != "expired" {
			t.Fatalf("reason %q", it.Reason)
		}
	}
	// The endpoint comes back. A failing endpoint is probed with real
	// deliveries, so the next event is what finds it healthy again.
	down.Store(false)
	srv.cliJSON(t, nil, "publish", "--type", "order.created", "--id", "after", "--data", `{"n":2}`)
	streamstest.WaitFor(t, 30*time.Second, "the next event and one catch-up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["after"] == 1 && len(catchups) >= 1
	})
	// Anything that would send a second catch-up has had its chance once a
	// later event went through.
	srv.cliJSON(t, nil, "publish", "--type", "order.created", "--id", "after-2", "--data", `{"n":3}`)
	streamstest.WaitFor(t, 30*time.Second, "a later event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["after-2"] == 1
	})
	mu.Lock()
	if len(catchups) != 1 {
		t.Fatalf("%d catch-ups, want exactly 1", len(catchups))
	}
	c := catchups[0]
	ids, _ := c["event_ids"].([]any)
	names := map[string]bool{}
	for _, id := range ids {
		names[fmt.Sprint(id)] = true
	}
	if c["endpoint"] != ep.ID || c["missed"] != float64(3) || !names["lost-0"] || !names["lost-1"] || !names["lost-2"] {
		t.Fatalf("catch-up = %v", c)
	}
	mu.Unlock()

	// Replay one dead letter: delivered with the same webhook-id; a second
	// replay of it is refused and makes no second delivery.
	rec := page.Items[0]
	srv.cliJSON(t, nil, "dlq", "replay", rec.ID)
	streamstest.WaitFor(t, 30*time.Second, "the replayed delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[rec.Event.ID] == 1
	})
	r := runCLI(t, context.Background(), map[string]string{"HOOKSTREAM_SERVER": srv.url}, "", "dlq", "replay", rec.ID)
	if r.code == 0 || !strings.Contains(r.stderr, "409") {
		t.Fatalf("second replay: exit %d, %s", r.code, r.stderr)
	}
	var shown struct{ State string }
	streamstest.WaitFor(t, 10*time.Second, "the record to be delivered", func() bool {
		srv.cliJSON(t, &shown, "dlq", "show", rec.ID)
		return shown.State == "delivered"
	})
	mu.Lock()
	defer mu.Unlock()
	if got[rec.Event.ID] != 1 {
		t.Fatalf("replayed event delivered %d times", got[rec.Event.ID])
	}
}

// Events survive a restart on the same --data, and a re-publish of an id
// inside the dedup window is still answered as a duplicate after it.
func TestEndToEndRestartKeepsEvents(t *testing.T) {
	data := t.TempDir()
	args := []string{"serve", "--data", data, "--http", "127.0.0.1:0", "--log-level", "error"}
	srv := startServer(t, args...)
	var res struct {
		ID        string
		Duplicate bool
	}
	srv.cliJSON(t, &res, "publish", "--type", "purchase_order.updated", "--id", "po-1", "--data", `{"total":42}`)
	if res.Duplicate {
		t.Fatal("first publish answered duplicate")
	}
	srv.stop(t)
	srv = startServer(t, args...)
	var ev struct {
		ID, Type string
		Data     map[string]any
	}
	srv.cliJSON(t, &ev, "events", "show", "po-1")
	if ev.ID != "po-1" || ev.Type != "purchase_order.updated" || ev.Data["total"] != float64(42) {
		t.Fatalf("after restart: %+v", ev)
	}
	srv.cliJSON(t, &res, "publish", "--type", "purchase_order.updated", "--id", "po-1", "--data", `{"total":43}`)
	if !res.Duplicate {
		t.Fatal("a re-publish after the restart was stored again")
	}
}
