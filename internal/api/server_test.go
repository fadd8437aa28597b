package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/hookstream/hookstream/streams/streamstest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

const token = "s3cret"

var quiet = slog.New(slog.DiscardHandler)

func TestCheckListen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		// ok: allowed without a token. Every address is allowed with one.
		ok bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1:0", true},
		{"127.1.2.3:8080", true}, // all of 127/8 is loopback
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"LocalHost:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{":8080", false}, // no host: every interface
		{"192.168.1.10:8080", false},
		{"10.0.0.5:8080", false},
		{"[fd00::1]:8080", false},
		{"169.254.1.1:8080", false},
		{"hookstream.internal:8080", false},
		{"localhost.example.com:8080", false},
	}
	for _, tc := range tests {
		err := api.CheckListen(tc.addr, "")
		switch {
		case tc.ok && err != nil:
			t.Errorf("CheckListen(%q, no token) = %v, want nil", tc.addr, err)
		case !tc.ok && err == nil:
			t.Errorf("CheckListen(%q, no token) = nil, want a refusal", tc.addr)
		case !tc.ok && !strings.Contains(err.Error(), "--api-token"):
			t.Errorf("CheckListen(%q, no token) = %q, want it to name --api-token", tc.addr, err)
		}
		if err := api.CheckListen(tc.addr, token); err != nil {
			t.Errorf("CheckListen(%q, token) = %v, want nil", tc.addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1", "", "localhost"} {
		if err := api.CheckListen(addr, token); err == nil || !strings.HasPrefix(err.Error(), "http: ") {
			t.Errorf("CheckListen(%q) = %v, want an error naming http", addr, err)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) {}
	tests := []struct {
		name string
		cfg  api.Config
		want string
	}{
		{"beyond loopback without token", api.Config{Addr: "0.0.0.0:0"}, "--api-token"},
		{"route outside /v1", api.Config{Addr: "127.0.0.1:0", Routes: []httpjson.Route{{Method: "GET", Pattern: "/admin", Handler: ok}}}, "must be under /v1/"},
		{"route twice", api.Config{Addr: "127.0.0.1:0", Routes: []httpjson.Route{
			{Method: "GET", Pattern: "/v1/things", Handler: ok}, {Method: "GET", Pattern: "/v1/things", Handler: ok},
		}}, "registered twice"},
	}
	for _, tc := range tests {
		if _, err := api.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := api.New(api.Config{Addr: "0.0.0.0:0", Token: token}); err != nil {
		t.Errorf("beyond loopback with a token: New = %v", err)
	}
}

// testServer mounts one route, GET /v1/things/{id}, that echoes its id.
func testServer(t *testing.T, tok string, ready func() error) *httptest.Server {
	t.Helper()
	s, err := api.New(api.Config{
		Addr:  "127.0.0.1:0",
		Token: tok,
		Ready: ready,
		Routes: []httpjson.Route{{Method: http.MethodGet, Pattern: "/v1/things/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
		}}},
		Gatherer: prometheus.NewRegistry(), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// get sends method path with the Authorization header auth (none if "")
// and returns the status, the headers and the body.
func get(t *testing.T, srv *httptest.Server, method, path, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// errorMessage checks body is {"error": "<non-empty>"} and returns it.
func errorMessage(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil || len(m) != 1 || m["error"] == "" {
		t.Fatalf("body %q is not {\"error\": \"…\"} (%v)", body, err)
	}
	return m["error"]
}

func TestAuth(t *testing.T) {
	t.Parallel()
	srv := testServer(t, token, nil)
	refused := map[string]string{
		"none":            "",
		"wrong token":     "Bearer nope",
		"empty token":     "Bearer ",
		"token prefix":    "Bearer s3cre",
		"token suffix":    "Bearer s3cretX",
		"double space":    "Bearer  s3cret",
		"no scheme":       token,
		"basic scheme":    "Basic czNjcmV0Og==",
		"token as scheme": "s3cret s3cret",
		// (A trailing space is not a case: HTTP trims it from the value.)
	}
	for name, auth := range refused {
		code, h, body := get(t, srv, http.MethodGet, "/v1/things/a", auth)
		if code != http.StatusUnauthorized {
			t.Errorf("%s (%q): status %d, want 401", name, auth, code)
			continue
		}
		if msg := errorMessage(t, body); strings.Contains(msg, token) {
			t.Errorf("%s: the 401 repeats the token: %q", name, msg)
		}
		if h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content-type %q", name, ct)
		}
	}
	code, _, body := get(t, srv, http.MethodGet, "/v1/things/a", "Bearer "+token)
	if code != http.StatusOK || !strings.Contains(string(body), `"id":"a"`) {
		t.Errorf("right token: %d %s, want 200 with the thing", code, body)
	}
}

func TestAuthOffWithoutToken(t *testing.T) {
	t.Parallel()
	srv := testServer(t, "", nil)
	for _, auth := range []string{"", "Bearer anything"} {
		if code, _, body := get(t, srv, http.MethodGet, "/v1/things/b", auth); code != http.StatusOK {
			t.Errorf("no token configured, Authorization %q: %d %s, want 200", auth, code, body)
		}
	}
	code, _, body := get(t, srv, http.MethodGet, "/v1/nothing", "")
	if code != http.StatusNotFound {
		t.Errorf("unknown /v1 path: %d, want 404", code)
	}
	errorMessage(t, body)
}

// An unknown /v1 path, or a known one with another method, answers 401
// without the token, so that probing does not reveal which routes exist;
// with it, 404 for an unknown path and 405 (with Allow) for a known path
// under another method.
func TestUnknownV1Path(t *testing.T) {
	t.Parallel()
	srv := testServer(t, token, nil)
	for _, rq := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound},
		{http.MethodGet, "/v1/", http.StatusNotFound},
		{http.MethodPost, "/v1/things/a", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/things/a", http.StatusMethodNotAllowed},
	} {
		code, _, body := get(t, srv, rq.method, rq.path, "")
		if code != http.StatusUnauthorized {
			t.Errorf("%s %s without token: %d, want 401", rq.method, rq.path, code)
		}
		errorMessage(t, body)
		code, hdr, body := get(t, srv, rq.method, rq.path, "Bearer "+token)
		if code != rq.want {
			t.Errorf("%s %s with token: %d, want %d", rq.method, rq.path, code, rq.want)
		}
		if code == http.StatusMethodNotAllowed && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", rq.method, rq.path)
		}
		errorMessage(t, body)
	}
	// Outside /v1, unknown paths are plain 404s.
	code, _, body := get(t, srv, http.MethodGet, "/admin", "")
	if code != http.StatusNotFound {
		t.Errorf("GET /admin: %d, want 404", code)
	}
	errorMessage(t, body)
}

// /healthz, /readyz and /metrics are for probes and scrapers: no token.
func TestProbesNeedNoToken(t *testing.T) {
	t.Parallel()
	srv := testServer(t, token, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, body := get(t, srv, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200", path, code, body)
		}
	}
	code, _, body := get(t, srv, http.MethodGet, "/healthz", "")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var notReady error = errors.New("nats: not connected")
	readyErr := notReady
	srv := testServer(t, token, func() error { return readyErr })
	code, h, body := get(t, srv, http.MethodGet, "/readyz", "")
	if code != http.StatusServiceUnavailable {
		t.Errorf("not ready: %d, want 503", code)
	}
	if msg := errorMessage(t, body); msg != "nats: not connected" {
		t.Errorf("not ready: error %q", msg)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	// /healthz says the process is up, whatever readiness says.
	if code, _, _ := get(t, srv, http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz while not ready: %d, want 200", code)
	}

	ready := testServer(t, token, func() error { return nil })
	code, _, body = get(t, ready, http.MethodGet, "/readyz", "")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ready"}` {
		t.Errorf("ready: %d %s", code, body)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	s, err := api.New(api.Config{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Stop without Start is a no-op, as often as it is called.
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("stop before start: %v", err)
		}
	}
	if s.Addr() != "" {
		t.Errorf("Addr before Start = %q, want empty", s.Addr())
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start = nil, want an error")
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	tr.CloseIdleConnections()
	if _, err := client.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("the server still answers after Stop")
	}
}

// Stop is bounded by its context: a request that does not finish is cut off
// rather than waited for.
func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	s, err := api.New(api.Config{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), Logger: quiet, Routes: []httpjson.Route{
		{Method: http.MethodGet, Pattern: "/v1/slow", Handler: func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	reqDone := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + s.Addr() + "/v1/slow")
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with a request in flight and a cancelled context = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-reqDone; err == nil {
		t.Error("the cut-off request succeeded")
	}
}
