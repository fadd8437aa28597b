package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// The providers' signatures, as they document them: Discourse and GitHub
// send "sha256=" + the hex HMAC-SHA256 of the raw body under the webhook's
// secret; Standard Webhooks signs "<id>.<timestamp>.<body>".
func e2eHexHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// e2eAPI calls the server's JSON API and decodes the answer into out.
func e2eAPI(t *testing.T, srv *server, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s = %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// e2ePush POSTs a provider's push to the ingest URL.
func e2ePush(t *testing.T, url string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// e2eSink starts a receiver that verifies hookstream's signatures, and an
// endpoint subscribed to types that delivers to it.
func e2eSink(t *testing.T, srv *server, types ...string) *sink {
	t.Helper()
	secret, err := webhook.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := newSink(sinkConfig{Keys: [][]byte{key}}, io.Discard).(*sink)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	var ep struct{ ID string }
	if code := e2eAPI(t, srv, http.MethodPost, "/v1/endpoints", map[string]any{"url": hs.URL + "/hook", "event_types": types, "secret": secret}, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint = %d", code)
	}
	return h
}

// Each provider's push, signed as the provider signs it, goes through the
// whole binary: stored, delivered once to the subscribed endpoint with
// webhook-id "<source>:<provider id>" (the provider's retry included), while
// a push under a wrong secret is refused and never delivered.
func TestInboundEndToEndProviders(t *testing.T) {
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "error", "--retry-initial", "50ms", "--retry-max-interval", "200ms")
	h := e2eSink(t, srv, "discourse.*", "github.*", "invoice.*", "gitea.*")

	const shared = "e2e-shared-secret-of-32-bytes!!"
	type created struct {
		IngestURL string `json:"ingest_url"`
		Inbound   struct{ Secret string }
	}
	sources := map[string]created{}
	for id, inbound := range map[string]map[string]any{
		"forum":   {"format": "discourse", "secret": shared},
		"gh":      {"format": "github", "secret": shared},
		"billing": {"format": "standard"},
		"git":     {"format": "hmac-sha256", "secret": shared, "header": "X-Gitea-Signature", "id_header": "X-Gitea-Delivery", "type": "gitea.event"},
	} {
		var c created
		if code := e2eAPI(t, srv, http.MethodPost, "/v1/sources", map[string]any{"id": id, "inbound": inbound}, &c); code != http.StatusCreated || c.Inbound.Secret == "" {
			t.Fatalf("create source %s = %d %+v", id, code, c)
		}
		if c.IngestURL != "/ingest/"+id {
			t.Fatalf("%s: ingest_url %q", id, c.IngestURL)
		}
		sources[id] = c
	}
	body := []byte(`{"post":{"id":12,"raw":"hello"},"type":"invoice.paid","data":{"n":1}}`)
	pushes := []struct {
		source, wantID string
		sign           func(secret string) http.Header
	}{
		{"forum", "forum:5501", func(s string) http.Header {
			return http.Header{"X-Discourse-Event-Id": {"5501"}, "X-Discourse-Event": {"post_created"},
				"X-Discourse-Instance": {"https://forum.example.com"}, "X-Discourse-Event-Signature": {"sha256=" + e2eHexHMAC(s, body)}}
		}},
		{"gh", "gh:0b989ba4-242f-11e5-81e1-c7b6b1e1e1e1", func(s string) http.Header {
			return http.Header{"X-Github-Delivery": {"0b989ba4-242f-11e5-81e1-c7b6b1e1e1e1"}, "X-Github-Event": {"issues"},
				"X-Hub-Signature-256": {"sha256=" + e2eHexHMAC(s, body)}}
		}},
		{"billing", "billing:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", func(s string) http.Header {
			key, err := webhook.ParseSecret(s)
			if err != nil {
				return http.Header{}
			}
			now := time.Now()
			return http.Header{"Webhook-Id": {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}, "Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
				"Webhook-Signature": {webhook.NewSigner(key).Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body)}}
		}},
		{"git", "git:c1", func(s string) http.Header {
			return http.Header{"X-Gitea-Delivery": {"c1"}, "X-Gitea-Signature": {e2eHexHMAC(s, body)}}
		}},
	}
	for _, p := range pushes {
		url := srv.url + sources[p.source].IngestURL
		wrong := "not-the-secret-of-this-source"
		if p.source == "billing" {
			wrong, _ = webhook.GenerateSecret()
		}
		if code, out := e2ePush(t, url, p.sign(wrong), body); code != http.StatusUnauthorized {
			t.Errorf("%s: push under a wrong secret = %d %s, want 401", p.source, code, out)
		}
		for range 2 { // the provider retries the same delivery
			if code, out := e2ePush(t, url, p.sign(sources[p.source].Inbound.Secret), body); code != http.StatusAccepted || !strings.Contains(out, `"id":"`+p.wantID+`"`) {
				t.Fatalf("%s: push = %d %s, want 202 %s", p.source, code, out, p.wantID)
			}
		}
	}
	for _, p := range pushes {
		streamstest.WaitFor(t, 30*time.Second, p.wantID+" delivered", func() bool { return h.Received(p.wantID) >= 1 })
	}
	// A last push through the same path proves nothing else is on its way.
	sentinel := []byte(`{"sentinel":true}`)
	if code, out := e2ePush(t, srv.url+"/ingest/gh", http.Header{"X-Github-Delivery": {"sentinel"}, "X-Github-Event": {"ping"},
		"X-Hub-Signature-256": {"sha256=" + e2eHexHMAC(shared, sentinel)}}, sentinel); code != http.StatusAccepted {
		t.Fatalf("sentinel = %d %s", code, out)
	}
	streamstest.WaitFor(t, 30*time.Second, "the sentinel", func() bool { return h.Received("gh:sentinel") == 1 })
	for _, p := range pushes {
		if n := h.Received(p.wantID); n != 1 {
			t.Errorf("%s delivered %d times, want once", p.wantID, n)
		}
	}
	if n := h.Total(); n != len(pushes)+1 {
		t.Errorf("the endpoint received %d requests, want %d", n, len(pushes)+1)
	}
}

// e2eFeed is a provider's change feed: changes "<post id>:<version>", the
// cursor being the index of the next one. It records when it was polled.
type e2eFeed struct {
	mu      sync.Mutex
	changes []map[string]any
	polls   []time.Time
}

func (f *e2eFeed) add(c map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, c)
}

func (f *e2eFeed) pollTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.polls...)
}

func (f *e2eFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls = append(f.polls, time.Now())
	from, _ := strconv.Atoi(r.URL.Query().Get("since"))
	from = min(from, len(f.changes))
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(map[string]any{
		"changes": append([]map[string]any{}, f.changes[from:]...), "next_cursor": strconv.Itoa(len(f.changes)), "has_more": false,
	}); err != nil {
		panic(err)
	}
}

// Pushes arrive, then stop. While they come within the expected window the
// feed is not polled; a window after the last one the poller polls the feed
// and publishes what the pushes missed. Push and feed name each change by
// the same id ("<post>:<version>", the push through id_from), so every
// change reaches the endpoint exactly once.
func TestInboundEndToEndPushesThenPoll(t *testing.T) {
	const window = 2 * time.Second
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "error", "--poll-tick", "10ms", "--retry-initial", "50ms", "--retry-max-interval", "200ms")
	h := e2eSink(t, srv, "discourse.*")
	feed := &e2eFeed{}
	fs := httptest.NewServer(feed)
	t.Cleanup(fs.Close)

	const secret = "forum-webhook-secret-0123456789"
	var src struct {
		IngestURL string `json:"ingest_url"`
	}
	if code := e2eAPI(t, srv, http.MethodPost, "/v1/sources", map[string]any{
		"id": "forum", "changes_url": fs.URL + "/posts.json", "interval": "1h", "expected_window": window.String(),
		"inbound": map[string]any{"format": "discourse", "secret": secret, "id_from": []string{"/post/id", "/post/version"}},
	}, &src); code != http.StatusCreated {
		t.Fatalf("create source = %d", code)
	}
	// A new source is polled at once: the feed is empty yet.
	streamstest.WaitFor(t, 30*time.Second, "the first poll", func() bool { return len(feed.pollTimes()) == 1 })

	post := func(n int, from string) map[string]any {
		return map[string]any{"id": n, "version": 1, "raw": "post " + strconv.Itoa(n), "from": from}
	}
	const pushed, missed = 8, 3
	var pushTimes []time.Time
	pace := time.NewTicker(window / 8)
	for n := 1; n <= pushed; n++ {
		<-pace.C
		feed.add(map[string]any{"id": fmt.Sprintf("%d:1", n), "type": "discourse.post_created", "data": map[string]any{"post": post(n, "feed")}})
		body, err := json.Marshal(map[string]any{"post": post(n, "push")})
		if err != nil {
			t.Fatal(err)
		}
		hd := http.Header{"X-Discourse-Event-Id": {strconv.Itoa(700 + n)}, "X-Discourse-Event": {"post_created"},
			"X-Discourse-Event-Type": {"post"}, "X-Discourse-Instance": {"https://forum.example.com"},
			"X-Discourse-Event-Signature": {"sha256=" + e2eHexHMAC(secret, body)}}
		if code, out := e2ePush(t, srv.url+src.IngestURL, hd, body); code != http.StatusAccepted || !strings.Contains(out, fmt.Sprintf(`"id":"forum:%d:1"`, n)) {
			t.Fatalf("push %d = %d %s", n, code, out)
		}
		pushTimes = append(pushTimes, time.Now())
	}
	pace.Stop()
	// The forum goes on; its webhooks do not reach us.
	for n := pushed + 1; n <= pushed+missed; n++ {
		feed.add(map[string]any{"id": fmt.Sprintf("%d:1", n), "type": "discourse.post_created", "data": map[string]any{"post": post(n, "feed")}})
	}
	ids := make([]string, 0, pushed+missed)
	for n := 1; n <= pushed+missed; n++ {
		ids = append(ids, fmt.Sprintf("forum:%d:1", n))
	}
	streamstest.WaitFor(t, 30*time.Second, "every change delivered", func() bool {
		for _, id := range ids {
			if h.Received(id) == 0 {
				return false
			}
		}
		return true
	})
	polls := feed.pollTimes()
	// A last push proves nothing else is on its way.
	sentinel := []byte(`{"post":{"id":999,"version":1}}`)
	if code, out := e2ePush(t, srv.url+src.IngestURL, http.Header{"X-Discourse-Event-Id": {"999"}, "X-Discourse-Event": {"ping"},
		"X-Discourse-Event-Signature": {"sha256=" + e2eHexHMAC(secret, sentinel)}}, sentinel); code != http.StatusAccepted {
		t.Fatalf("sentinel = %d %s", code, out)
	}
	streamstest.WaitFor(t, 30*time.Second, "the sentinel", func() bool { return h.Received("forum:999:1") == 1 })
	if len(polls) < 2 {
		t.Fatalf("the missed changes arrived without a poll: %v", polls)
	}
	// No poll came while pushes came within the window (with room for a
	// tick and the push's round trip).
	last := pushTimes[len(pushTimes)-1]
	for _, at := range polls[1:] {
		var before time.Time
		for _, p := range pushTimes {
			if p.Before(at) {
				before = p
			}
		}
		if at.Sub(before) < window-window/4 {
			t.Errorf("the feed was polled %s after a push, inside the %s window", at.Sub(before), window)
		}
	}
	if gap := polls[1].Sub(last); gap < window-window/4 {
		t.Errorf("the gap poll came %s after the last push, want about the window (%s)", gap, window)
	}
	for _, id := range ids {
		if n := h.Received(id); n != 1 {
			t.Errorf("%s delivered %d times, want exactly once", id, n)
		}
	}
	if n := h.Total(); n != len(ids)+1 {
		t.Errorf("the endpoint received %d requests, want %d", n, len(ids)+1)
	}
	var got struct {
		LastPush  *time.Time `json:"last_push"`
		LastPoll  *time.Time `json:"last_poll"`
		IngestURL string     `json:"ingest_url"`
		Cursor    string     `json:"cursor"`
	}
	e2eAPI(t, srv, http.MethodGet, "/v1/sources/forum", nil, &got)
	// The last poll came after the pushes stopped.
	if got.LastPush == nil || got.LastPoll == nil || !got.LastPoll.After(last) || got.IngestURL != "/ingest/forum" ||
		got.Cursor != strconv.Itoa(pushed+missed) {
		t.Errorf("the source shows %+v", got)
	}
}
