package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/client"
)

// seen is one request the fake API received.
type seen struct {
	method, path, query, body, auth string
}

// fake is an API that records each request and answers with answer.
func fake(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*client.Client, func() []seen) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("Authorization")})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", client.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func answer(code int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// Each call sends its route's method, path, query and body, with the token.
func TestRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		call func(c *client.Client) error
		want seen
	}{
		{"publish", func(c *client.Client) error {
			_, err := c.Publish(ctx, client.Event{ID: "po-1", Type: "order.created", Data: json.RawMessage(`{"a":1}`)})
			return err
		}, seen{"POST", "/v1/events", "", `{"id":"po-1","type":"order.created","data":{"a":1}}`, "Bearer tok"}},
		{"event with a colon and a slash", func(c *client.Client) error { _, err := c.Event(ctx, "erp:a/b"); return err },
			seen{"GET", "/v1/events/erp:a%2Fb", "", "", "Bearer tok"}},
		{"create endpoint", func(c *client.Client) error {
			_, err := c.CreateEndpoint(ctx, client.EndpointCreate{URL: "https://x/h", EventTypes: []string{"order.*"}})
			return err
		}, seen{"POST", "/v1/endpoints", "", `{"url":"https://x/h","event_types":["order.*"]}`, "Bearer tok"}},
		{"list endpoints", func(c *client.Client) error {
			_, err := c.ListEndpoints(ctx, client.ListOptions{Limit: 5, Cursor: "ep_a"})
			return err
		}, seen{"GET", "/v1/endpoints", "cursor=ep_a&limit=5", "", "Bearer tok"}},
		{"update endpoint to zero rate limit", func(c *client.Client) error {
			_, err := c.UpdateEndpoint(ctx, "ep_1", client.EndpointUpdate{RateLimit: client.Ptr(0.0)})
			return err
		}, seen{"PATCH", "/v1/endpoints/ep_1", "", `{"rate_limit":0}`, "Bearer tok"}},
		{"delete endpoint", func(c *client.Client) error { return c.DeleteEndpoint(ctx, "ep_1") },
			seen{"DELETE", "/v1/endpoints/ep_1", "", "", "Bearer tok"}},
		{"disable", func(c *client.Client) error { _, err := c.DisableEndpoint(ctx, "ep_1"); return err },
			seen{"POST", "/v1/endpoints/ep_1/disable", "", "{}", "Bearer tok"}},
		{"rotate", func(c *client.Client) error { _, err := c.RotateSecret(ctx, "ep_1"); return err },
			seen{"POST", "/v1/endpoints/ep_1/rotate-secret", "", "{}", "Bearer tok"}},
		{"attempts", func(c *client.Client) error { _, err := c.Attempts(ctx, "ep_1", client.ListOptions{}); return err },
			seen{"GET", "/v1/endpoints/ep_1/attempts", "", "", "Bearer tok"}},
		{"dlq list", func(c *client.Client) error {
			_, err := c.ListDeadLetters(ctx, client.DLQFilter{Endpoint: "ep_1", Since: since}, client.ListOptions{Limit: 2})
			return err
		}, seen{"GET", "/v1/dlq", "endpoint=ep_1&limit=2&since=2025-01-02T02%3A04%3A05Z", "", "Bearer tok"}},
		{"dlq replay one", func(c *client.Client) error { _, err := c.ReplayDeadLetter(ctx, "dl_1"); return err },
			seen{"POST", "/v1/dlq/dl_1/replay", "", "{}", "Bearer tok"}},
		{"dlq bulk replay", func(c *client.Client) error {
			_, err := c.ReplayDeadLetters(ctx, client.DLQFilter{Reason: "expired", Until: since})
			return err
		}, seen{"POST", "/v1/dlq/replay", "", `{"reason":"expired","until":"2025-01-02T03:04:05+01:00"}`, "Bearer tok"}},
		{"replay job", func(c *client.Client) error { _, err := c.ReplayJob(ctx, "job_1"); return err },
			seen{"GET", "/v1/dlq/replays/job_1", "", "", "Bearer tok"}},
		{"create source with inbound", func(c *client.Client) error {
			_, err := c.CreateSource(ctx, client.SourceCreate{ID: "erp", Interval: client.Duration(time.Minute),
				Inbound: &client.Inbound{Format: client.InboundHMACSHA256, Secret: "s", Header: "X-Sig", IDFrom: []string{"/id"}}})
			return err
		}, seen{"POST", "/v1/sources", "", `{"id":"erp","interval":"1m0s","inbound":{"format":"hmac-sha256","secret":"s","header":"X-Sig","id_from":["/id"]}}`, "Bearer tok"}},
		{"update source headers", func(c *client.Client) error {
			_, err := c.UpdateSource(ctx, "erp", client.SourceUpdate{Headers: &map[string]string{}})
			return err
		}, seen{"PATCH", "/v1/sources/erp", "", `{"headers":{}}`, "Bearer tok"}},
		{"ingest sends no token", func(c *client.Client) error {
			_, err := c.Ingest(ctx, "erp", http.Header{"X-Sig": {"abc"}}, []byte(`{"x":1}`))
			return err
		}, seen{"POST", "/ingest/erp", "", `{"x":1}`, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, got := fake(t, answer(http.StatusOK, `{}`))
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			if g := got(); len(g) != 1 || g[0] != tt.want {
				t.Errorf("sent %+v, want %+v", g, tt.want)
			}
		})
	}
}

// A non-2xx answer is an *Error with the status, the server's message and
// its Retry-After.
func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := fake(t, answer(http.StatusServiceUnavailable, `{"error":"stream EVENTS is full"}`))
	_, err := c.Publish(ctx, client.Event{Type: "a", Data: json.RawMessage(`{}`)})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 503 || e.Message != "stream EVENTS is full" || e.RetryAfter != 3*time.Second {
		t.Errorf("err = %#v", err)
	}
	if err.Error() != "503: stream EVENTS is full" {
		t.Errorf("Error() = %q", err.Error())
	}
	c, _ = fake(t, answer(http.StatusNotFound, `no such thing`))
	_, err = c.Endpoint(ctx, "ep_x")
	if !client.IsNotFound(err) || !strings.HasSuffix(err.Error(), "no such thing") {
		t.Errorf("404 with a text body: %v", err)
	}
	c, _ = fake(t, answer(http.StatusMethodNotAllowed, ``))
	if err := c.DeleteSource(ctx, "x"); client.StatusOf(err) != 405 || err.Error() != "405: method not allowed" {
		t.Errorf("405 without a body: %v", err)
	}
	if client.StatusOf(errors.New("x")) != 0 {
		t.Error("StatusOf of a plain error is not 0")
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://x/?q=1", "http://x/#f"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err = client.New("127.0.0.1:9/prefix/")
	if err != nil || c.BaseURL() != "http://127.0.0.1:9/prefix" || c.IngestURL("erp") != "http://127.0.0.1:9/prefix/ingest/erp" {
		t.Errorf("New without a scheme: %v %v", c, err)
	}
}

// All follows next_cursor, pages with no items included, and stops at an
// error or a repeating cursor.
func TestAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pages := map[string]string{
		"":  `{"items":[{"id":"dl_1","seq":1,"attempts":[{"attempt":1,"duration":"1.5s"}]}],"next_cursor":"5"}`,
		"5": `{"items":[],"next_cursor":"9"}`,
		"9": `{"items":[{"id":"dl_2","seq":9}],"next_cursor":""}`,
	}
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		answer(200, pages[r.URL.Query().Get("cursor")])(w, r)
	})
	recs, err := client.Collect(client.All(ctx, client.ListOptions{Limit: 1}, c.DeadLetters(client.DLQFilter{State: "dead"})))
	if err != nil || len(recs) != 2 || recs[0].ID != "dl_1" || recs[1].ID != "dl_2" {
		t.Fatalf("All = %+v, %v", recs, err)
	}
	if d := time.Duration(recs[0].Attempts[0].Duration); d != 1500*time.Millisecond {
		t.Errorf("duration = %s", d)
	}
	if n := len(got()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	c, _ = fake(t, answer(200, `{"items":[{"id":"ep_1"}],"next_cursor":"ep_1"}`))
	_, err = client.Collect(client.All(ctx, client.ListOptions{Cursor: "ep_1"}, c.ListEndpoints))
	if err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("a repeating cursor: %v", err)
	}
}

// A batch's 503 comes with the results of the events that were stored.
func TestPublishBatchPartly(t *testing.T) {
	t.Parallel()
	c, got := fake(t, answer(http.StatusServiceUnavailable, `{"results":[{"id":"a","duplicate":false},{"id":"b","error":"nats: timeout"}]}`))
	res, err := c.PublishBatch(context.Background(), []client.Event{
		{ID: "a", Type: "x.y", Data: json.RawMessage(`{}`)}, {ID: "b", Type: "x.y", Data: json.RawMessage(`{}`)},
	}, false)
	if client.StatusOf(err) != 503 || len(res) != 2 || !res[0].Stored() || res[1].Stored() || res[1].Error != "nats: timeout" {
		t.Errorf("results %+v, err %v", res, err)
	}
	if g := got(); len(g) != 1 || g[0].path != "/v1/events/batch" ||
		g[0].body != `{"events":[{"id":"a","type":"x.y","data":{}},{"id":"b","type":"x.y","data":{}}]}` {
		t.Errorf("sent %+v", g)
	}
}
