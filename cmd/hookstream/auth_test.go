package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// designRoutes are the /v1 routes DESIGN.md's Interfaces list names. The
// auth test walks the router's own table; this list only makes sure that
// table is the whole API and not some part of it.
var designRoutes = []string{
	"POST /v1/events",
	"GET /v1/events/{id}",
	"POST /v1/endpoints",
	"GET /v1/endpoints",
	"GET /v1/endpoints/{id}",
	"PATCH /v1/endpoints/{id}",
	"DELETE /v1/endpoints/{id}",
	"POST /v1/endpoints/{id}/enable",
	"POST /v1/endpoints/{id}/disable",
	"POST /v1/endpoints/{id}/rotate-secret",
	"GET /v1/endpoints/{id}/attempts",
	"GET /v1/dlq",
	"GET /v1/dlq/{id}",
	"DELETE /v1/dlq/{id}",
	"POST /v1/dlq/{id}/replay",
	"POST /v1/dlq/replay",
	"GET /v1/dlq/replays/{job}",
	"POST /v1/sources",
	"GET /v1/sources",
	"GET /v1/sources/{id}",
	"PATCH /v1/sources/{id}",
	"DELETE /v1/sources/{id}",
}

// wildcardRE matches a ServeMux path wildcard: {id}, {job}, {rest...}.
var wildcardRE = regexp.MustCompile(`\{[^}]*\}`)

// noEnv is an environment with nothing set, so that the operator's
// HOOKSTREAM_* variables cannot change what the test builds.
func noEnv(string) (string, bool) { return "", false }

// Every /v1 route the serve role mounts, walked from the router's own
// table (so a route added later is covered without touching this test),
// answers 401 {"error"} to a request without the right bearer token, and
// lets the right one through.
func TestAuthOnEveryRoute(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	fs := newFlagSet(roleServe, io.Discard)
	f := addServerFlags(fs, roleServe)
	if err := parseFlags(fs, nil, noEnv); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	c, err := buildComponents(ctx, f, env.JS, quiet, prometheus.NewRegistry())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range c.stops {
			if err := s.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	const token = "s3cret"
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Token: token, Routes: c.routes, Logger: quiet, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	mounted := map[string]bool{}
	for _, r := range c.routes {
		mounted[r.Method+" "+r.Pattern] = true
	}
	if len(mounted) < 20 {
		t.Errorf("the serve role mounts %d routes, fewer than the 20 or more the API has: %v", len(mounted), mounted)
	}
	for _, want := range designRoutes {
		if !mounted[want] {
			t.Errorf("DESIGN.md's route %s is not in the serve role's table", want)
		}
	}

	do := func(method, path, auth string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	refused := []struct{ name, auth string }{
		{"no authorization", ""},
		{"wrong token", "Bearer wrong"},
		{"empty bearer token", "Bearer "},
		{"token with a suffix", "Bearer " + token + "x"},
		{"token without the scheme", token},
		{"basic scheme", "Basic czNjcmV0OnMzY3JldA=="},
	}
	for _, r := range c.routes {
		path := wildcardRE.ReplaceAllString(r.Pattern, "auth-test-dummy")
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			for _, a := range refused {
				code, body := do(r.Method, path, a.auth)
				if code != http.StatusUnauthorized {
					t.Errorf("%s: status %d, want 401 (%s)", a.name, code, body)
					continue
				}
				var m map[string]string
				if err := json.Unmarshal(body, &m); err != nil || m["error"] == "" {
					t.Errorf("%s: body %q is not {\"error\": \"…\"}", a.name, body)
				}
			}
			code, body := do(r.Method, path, "Bearer "+token)
			if code == http.StatusUnauthorized {
				t.Errorf("right token: 401 %s", body)
			}
			if code >= 500 {
				t.Errorf("right token: %d %s; the handler should answer a dummy request with a 4xx or 2xx", code, body)
			}
		})
	}
}

// skipIfEnvSet skips when the operator's environment sets a flag the test
// relies on being unset: the server roles read os.LookupEnv themselves.
func skipIfEnvSet(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			t.Skipf("%s is set in the environment", n)
		}
	}
}

// No role listens beyond loopback without a token: the refusal is one
// stderr line naming --api-token, before anything starts or connects.
func TestServeRefusesPublicListenWithoutToken(t *testing.T) {
	t.Parallel()
	skipIfEnvSet(t, "HOOKSTREAM_API_TOKEN")
	for _, args := range [][]string{
		{"serve", "--data", t.TempDir(), "--http", "0.0.0.0:0"},
		{"serve", "--data", t.TempDir(), "--http", ":0"},
		{"serve", "--data", t.TempDir(), "--http", "[::]:0"},
		// The other roles are refused before they dial NATS (nothing listens
		// on port 1).
		{"api", "--nats-url", "nats://127.0.0.1:1", "--http", "0.0.0.0:0"},
		{"dispatcher", "--nats-url", "nats://127.0.0.1:1", "--http", "0.0.0.0:0"},
		{"poller", "--nats-url", "nats://127.0.0.1:1", "--http", "0.0.0.0:0"},
	} {
		var stdout, stderr syncBuffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 {
			t.Errorf("%v: exit 0, want a refusal", args)
		}
		errText := stderr.String()
		lines := strings.Split(strings.TrimSuffix(errText, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "--api-token") || !strings.HasPrefix(lines[0], "hookstream: ") {
			t.Errorf("%v: stderr %q, want one line naming --api-token", args, errText)
		}
		if stdout.String() != "" {
			t.Errorf("%v: stdout %q, want nothing", args, stdout.String())
		}
	}
}

// With --api-token, serve listens on every interface, and its API takes the
// token and nothing else.
func TestServePublicListenWithToken(t *testing.T) {
	t.Parallel()
	skipIfEnvSet(t, "HOOKSTREAM_HTTP")
	const token = "listen-test-token"
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "0.0.0.0:0", "--api-token", token, "--log-level", "warn")
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		t.Errorf("listening on %s, want every interface", u.Host)
	}
	base := "http://" + net.JoinHostPort("127.0.0.1", port)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path, auth string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/v1/endpoints", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/endpoints without token: %d, want 401", code)
	}
	if code := get("/v1/endpoints", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/endpoints with a wrong token: %d, want 401", code)
	}
	if code := get("/v1/endpoints", "Bearer "+token); code != http.StatusOK {
		t.Errorf("GET /v1/endpoints with the token: %d, want 200", code)
	}
	if code := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", code)
	}
	if strings.Contains(srv.stderr.String(), token) {
		t.Error("the token appears in the server's log")
	}
}
