package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// fixedNow is the test clock: an event published without a time gets it.
var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type testBundle struct {
	env *streamstest.Env
	p   *producer.Producer
	ts  *httptest.Server
	reg *prometheus.Registry
}

// setup starts a JetStream server, a Producer on it (test clock, ids
// evt_test_1, evt_test_2, …, metrics on a private registry) and an HTTP
// server with its routes. mods change the Config first.
func setup(t testing.TB, mods ...func(*producer.Config)) *testBundle {
	t.Helper()
	return setupOn(t, streamstest.Start(t), mods...)
}

func setupOn(t testing.TB, env *streamstest.Env, mods ...func(*producer.Config)) *testBundle {
	t.Helper()
	var n atomic.Int64
	reg := prometheus.NewRegistry()
	cfg := producer.Config{
		JS:      env.JS,
		Now:     func() time.Time { return fixedNow },
		NewID:   func() string { return "evt_test_" + strconv.FormatInt(n.Add(1), 10) },
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: reg,
	}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := producer.New(cfg)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop producer: %v", err)
		}
	})
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: p.Routes(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("api: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testBundle{env: env, p: p, ts: ts, reg: reg}
}

// response is an HTTP answer with its JSON body decoded.
type response struct {
	code int
	hdr  http.Header
	raw  []byte
	body map[string]any
}

func (b *testBundle) do(t testing.TB, method, path string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{code: resp.StatusCode, hdr: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: answer %d is not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	return r
}

func (b *testBundle) post(t testing.TB, body string) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/events", []byte(body))
}

func (b *testBundle) get(t testing.TB, id string) response {
	t.Helper()
	return b.do(t, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil)
}

// storedCount is how many messages EVENTS holds.
func (b *testBundle) storedCount(t testing.TB) uint64 {
	t.Helper()
	s, err := b.env.JS.Stream(context.Background(), streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// stored reads the event at seq from EVENTS with its subject and msg id.
func (b *testBundle) stored(t testing.TB, seq uint64) (ev streams.Event, subject, msgID string) {
	t.Helper()
	ctx := context.Background()
	s, err := b.env.JS.Stream(ctx, streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("get EVENTS seq %d: %v", seq, err)
	}
	if err := streams.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev, m.Subject, m.Header.Get("Nats-Msg-Id")
}

// published reads hookstream_events_published_total{result}.
func (b *testBundle) published(t testing.TB, result string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookstream_events_published_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no hookstream_events_published_total{result=%q}", result)
	return 0
}
