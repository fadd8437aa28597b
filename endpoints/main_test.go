package endpoints_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

type testBundle struct {
	env   *streamstest.Env
	reg   *endpoints.Registry
	srv   *httptest.Server
	clock *clock
	ctx   context.Context
}

// setup starts JetStream, a registry on it with a test clock (and cfg's
// other fields) and an HTTP server mounting its routes the way the API does.
func setup(t testing.TB, cfg endpoints.Config) *testBundle {
	t.Helper()
	env := streamstest.Start(t)
	clk := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg.JS = env.JS
	cfg.Now = clk.Now
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	reg, err := endpoints.New(ctx, cfg)
	if err != nil {
		t.Fatalf("new registry: %v", err)
	}
	a, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: reg.Routes()})
	if err != nil {
		t.Fatalf("api: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &testBundle{env: env, reg: reg, srv: srv, clock: clk, ctx: ctx}
}

// do sends a request (body marshalled as JSON unless it is a string) and
// returns the status and the raw answer.
func (b *testBundle) do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(v)
	default:
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// doJSON is do that expects status want and decodes the answer into a map.
func (b *testBundle) doJSON(t testing.TB, method, path string, body any, want int) map[string]any {
	t.Helper()
	code, raw := b.do(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, code, raw, want)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: answer %q is not a JSON object: %v", method, path, raw, err)
	}
	return m
}

// create makes an endpoint over HTTP and returns the 201 answer.
func (b *testBundle) create(t testing.TB, body map[string]any) map[string]any {
	t.Helper()
	if _, ok := body["url"]; !ok {
		body["url"] = "https://example.com/hook"
	}
	if _, ok := body["event_types"]; !ok {
		body["event_types"] = []string{"order.*"}
	}
	return b.doJSON(t, http.MethodPost, "/v1/endpoints", body, http.StatusCreated)
}
