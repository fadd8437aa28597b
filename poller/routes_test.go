package poller

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// apiBundle is a poller's routes (its public ones included) behind the API
// server.
type apiBundle struct {
	env *streamstest.Env
	p   *Poller
	srv *httptest.Server
	reg *prometheus.Registry
}

func newAPI(t *testing.T, mutate func(*Config)) *apiBundle {
	t.Helper()
	return newAPIOn(t, streamstest.Start(t), mutate)
}

// newAPIOn is newAPI on env, so that two bundles can share one NATS as two
// API processes do.
func newAPIOn(t *testing.T, env *streamstest.Env, mutate func(*Config)) *apiBundle {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := testConfig(env)
	cfg.Metrics = reg
	if mutate != nil {
		mutate(&cfg)
	}
	p := newPoller(t, cfg)
	s, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: p.Routes(), Public: p.PublicRoutes(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &apiBundle{env: env, p: p, srv: srv, reg: reg}
}

// do sends a request and returns the status and the raw body.
func (b *apiBundle) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (b *apiBundle) source(t *testing.T, id string) map[string]any {
	t.Helper()
	code, body := b.do(t, http.MethodGet, "/v1/sources/"+id, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", id, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateSourceDefaultsAndShape(t *testing.T) {
	t.Parallel()
	b := newAPI(t, func(c *Config) { c.IntervalDefault, c.ExpectedWindowDefault = 0, 0 })
	code, body := b.do(t, http.MethodPost, "/v1/sources",
		`{"id":"shop","changes_url":"http://user:pw@127.0.0.1:9/changes","headers":{"Authorization":"Bearer s3cret","X-Tenant":"acme"}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST = %d %s", code, body)
	}
	if bytes.Contains(body, []byte("s3cret")) || bytes.Contains(body, []byte(":pw@")) {
		t.Fatalf("the answer shows a credential: %s", body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "shop", "interval": "1m0s", "expected_window": "15m0s", "status": "healthy", "cursor": "",
		"last_success": nil, "last_error": "", "headers": []any{"Authorization", "X-Tenant"},
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || !jsonEqualValues(gv, v) {
			t.Errorf("%s = %#v (present %v), want %#v", k, gv, ok, v)
		}
	}
	next, err := time.Parse(time.RFC3339Nano, got["next_poll"].(string))
	if err != nil || next.Location() != time.UTC {
		t.Errorf("next_poll = %v, want an RFC 3339 UTC time", got["next_poll"])
	}
	if got2 := b.source(t, "shop"); !jsonEqualValues(got2, got) {
		t.Errorf("GET = %v, want what POST answered %v", got2, got)
	}
}

func jsonEqualValues(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestCreateSourceRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := newAPI(t, func(c *Config) { c.AllowPrivate = false; c.MinInterval = time.Second })
	b.p.Register("erp", memSource{newFeed(1)}, time.Hour, time.Hour)
	const url = `"changes_url":"https://feed.example.com/changes"`
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"NoID", `{` + url + `}`, 400, "id: required"},
		{"BadID", `{"id":"a.b",` + url + `}`, 400, "id: "},
		{"ReservedID", `{"id":"hookstream",` + url + `}`, 400, "id: \"hookstream\" is reserved"},
		{"NoURL", `{"id":"shop"}`, 400, "changes_url: required unless the source has inbound settings"},
		{"EmptyURLNoInbound", `{"id":"shop","changes_url":""}`, 400, "changes_url: required unless"},
		{"BadScheme", `{"id":"shop","changes_url":"ftp://feed.example.com/"}`, 400, "changes_url: scheme must be http or https"},
		{"PrivateURL", `{"id":"shop","changes_url":"http://10.0.0.7/changes"}`, 400, "changes_url: address not allowed"},
		{"MetadataURL", `{"id":"shop","changes_url":"http://169.254.169.254/"}`, 400, "changes_url: address not allowed"},
		{"BadInterval", `{"id":"shop",` + url + `,"interval":"soon"}`, 400, "interval: \"soon\" is not a duration"},
		{"ShortInterval", `{"id":"shop",` + url + `,"interval":"10ms"}`, 400, "interval: must be at least 1s"},
		{"NegativeWindow", `{"id":"shop",` + url + `,"expected_window":"-5m"}`, 400, "expected_window: must be at least 1s"},
		{"IntervalNumber", `{"id":"shop",` + url + `,"interval":60}`, 400, "interval: must be a string"},
		{"BadHeaderName", `{"id":"shop",` + url + `,"headers":{"Bad Name":"x"}}`, 400, "headers: \"Bad Name\" is not a valid header name"},
		{"HeaderNewline", `{"id":"shop",` + url + `,"headers":{"X-Token":"a\r\nHost: evil"}}`, 400, "headers: the value of X-Token"},
		{"HostHeader", `{"id":"shop",` + url + `,"headers":{"Host":"evil"}}`, 400, "headers: Host may not be set"},
		{"UnknownField", `{"id":"shop",` + url + `,"colour":"red"}`, 400, "colour: unknown field"},
		{"NotJSON", `id=shop`, 400, "body: malformed JSON"},
		{"RegisteredInCode", `{"id":"erp",` + url + `}`, 409, "registered in code"},
	} {
		code, body := b.do(t, http.MethodPost, "/v1/sources", c.body)
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if code != c.code || !strings.HasPrefix(e.Error, c.want) && !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.want)
		}
		if strings.Contains(string(body), "a\r\nHost") || strings.Contains(string(body), "evil") {
			t.Errorf("%s: the error repeats a header value: %s", c.name, body)
		}
	}
	if code, body := b.do(t, http.MethodGet, "/v1/sources", ""); code != 200 || !strings.Contains(string(body), `"items":[]`) {
		t.Errorf("after refusals GET /v1/sources = %d %s, want no sources", code, body)
	}
	if code, _ := b.do(t, http.MethodPost, "/v1/sources", `{"id":"shop",`+url+`}`); code != http.StatusCreated {
		t.Fatalf("valid POST = %d", code)
	}
	if code, body := b.do(t, http.MethodPost, "/v1/sources", `{"id":"shop",`+url+`}`); code != http.StatusConflict {
		t.Errorf("duplicate POST = %d %s, want 409", code, body)
	}
}

func TestSourceCRUD(t *testing.T) {
	t.Parallel()
	b := newAPI(t, nil)
	for _, id := range []string{"c", "a", "b"} {
		if code, body := b.do(t, http.MethodPost, "/v1/sources", `{"id":"`+id+`","changes_url":"http://127.0.0.1:9/","interval":"5m"}`); code != 201 {
			t.Fatalf("POST %s = %d %s", id, code, body)
		}
	}
	type page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	list := func(q string) page {
		code, body := b.do(t, http.MethodGet, "/v1/sources"+q, "")
		if code != 200 {
			t.Fatalf("GET /v1/sources%s = %d %s", q, code, body)
		}
		var pg page
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatal(err)
		}
		return pg
	}
	p1 := list("?limit=2")
	if len(p1.Items) != 2 || p1.Items[0].ID != "a" || p1.Items[1].ID != "b" || p1.NextCursor != "b" {
		t.Fatalf("first page = %+v, want a, b and a cursor", p1)
	}
	if p2 := list("?limit=2&cursor=" + p1.NextCursor); len(p2.Items) != 1 || p2.Items[0].ID != "c" || p2.NextCursor != "" {
		t.Fatalf("second page = %+v, want c and no cursor", p2)
	}
	if code, _ := b.do(t, http.MethodGet, "/v1/sources?limit=0", ""); code != 400 {
		t.Errorf("limit=0 = %d, want 400", code)
	}

	code, body := b.do(t, http.MethodPatch, "/v1/sources/a", `{"interval":"30s","headers":{"Authorization":"Bearer x"}}`)
	if code != 200 || !strings.Contains(string(body), `"interval":"30s"`) || !strings.Contains(string(body), `"headers":["Authorization"]`) {
		t.Fatalf("PATCH = %d %s", code, body)
	}
	if got := b.source(t, "a"); got["interval"] != "30s" || got["changes_url"] != "http://127.0.0.1:9/" {
		t.Fatalf("after PATCH GET = %v", got)
	}
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/v1/sources/a", `{"id":"z"}`, 400},
		{"/v1/sources/a", `{"interval":"1ns"}`, 400}, // below MinInterval
		{"/v1/sources/zz", `{"interval":"30s"}`, 404},
		{"/v1/sources/a", `{"changes_url":""}`, 400},
	} {
		if code, body := b.do(t, http.MethodPatch, c.path, c.body); code != c.code {
			t.Errorf("PATCH %s %s = %d %s, want %d", c.path, c.body, code, body, c.code)
		}
	}
	if code, _ := b.do(t, http.MethodDelete, "/v1/sources/a", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", code)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if code, _ := b.do(t, m, "/v1/sources/a", ""); code != http.StatusNotFound {
			t.Errorf("%s after DELETE = %d, want 404", m, code)
		}
	}
	if code, _ := b.do(t, http.MethodGet, "/v1/sources/no.such", ""); code != http.StatusNotFound {
		t.Errorf("GET of an impossible id = %d, want 404", code)
	}
	if st := readState(t, b.p, "a"); st != nil {
		t.Errorf("state left after DELETE: %+v", st)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A source created through the API is polled with its headers; GET shows
// its cursor and status, and neither the answers nor the logs ever show the
// headers' values.
func TestAPISourceIsPolled(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	b := newAPI(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	feed := newFeed(2, changes(1, 3)...)
	fs := newFeedServer(t, feed)
	start(t, b.p)
	code, body := b.do(t, http.MethodPost, "/v1/sources",
		`{"id":"shop","changes_url":"`+fs.URL+`/changes?key=qu3ry","interval":"10ms","headers":{"Authorization":"Bearer s3cret"}}`)
	if code != 201 {
		t.Fatalf("POST = %d %s", code, body)
	}
	streamstest.WaitFor(t, waitLong, "cursor 3 in GET", func() bool {
		got := b.source(t, "shop")
		return got["cursor"] == "3" && got["last_success"] != nil
	})
	if n := len(sourceEvents(t, b.env, "shop")); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
	headers, _ := fs.requests()
	if headers[0].Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("feed got Authorization %q", headers[0].Get("Authorization"))
	}

	feed.setMode(feedAuth)
	streamstest.WaitFor(t, waitLong, "auth_required in GET", func() bool {
		got := b.source(t, "shop")
		return got["status"] == StatusAuthRequired && strings.Contains(got["last_error"].(string), "status 401")
	})
	// Once the feed takes the credentials again, a changed source is polled
	// and healthy again.
	feed.setMode(feedOK)
	if code, body := b.do(t, http.MethodPatch, "/v1/sources/shop", `{"changes_url":"`+fs.URL+`/changes"}`); code != 200 {
		t.Fatalf("PATCH = %d %s", code, body)
	}
	streamstest.WaitFor(t, waitLong, "healthy again", func() bool { return b.source(t, "shop")["status"] == StatusHealthy })
	for _, secret := range []string{"s3cret", "qu3ry"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the logs show %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "source=shop") {
		t.Fatalf("the logs never name the source:\n%s", logs.String())
	}
}
