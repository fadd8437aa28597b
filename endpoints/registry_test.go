package endpoints_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes

// stored reads an endpoint's raw KV records, tombstones included.
func (b *testBundle) stored(t testing.TB, id string) (*streams.Endpoint, *streams.Health) {
	t.Helper()
	eps, err := b.env.JS.KeyValue(b.ctx, streams.BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	hkv, err := b.env.JS.KeyValue(b.ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	ep, _, _, err := streams.Get[streams.Endpoint](b.ctx, eps, id)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, err := streams.Get[streams.Health](b.ctx, hkv, id)
	if err != nil {
		t.Fatal(err)
	}
	return ep, h
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	_, err := endpoints.New(context.Background(), endpoints.Config{})
	if err == nil || !strings.Contains(err.Error(), "js: required") {
		t.Fatalf("New without JS = %v, want an error naming js", err)
	}
	env := setup(t, endpoints.Config{}).env
	_, err = endpoints.New(context.Background(), endpoints.Config{JS: env.JS, SecretOverlap: -time.Second, MaxEventTypes: -1})
	if err == nil || !strings.Contains(err.Error(), "secret-overlap:") || !strings.Contains(err.Error(), "max-event-types:") {
		t.Fatalf("New with negative settings = %v, want errors naming both fields", err)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})

	t.Run("generated secret", func(t *testing.T) {
		got := b.create(t, map[string]any{
			"url":         "https://example.com/hook",
			"event_types": []string{"order.*", "invoice.paid", "order.*"},
			"description": "orders",
			"rate_limit":  2.5,
			"concurrency": 3,
		})
		id, _ := got["id"].(string)
		if !strings.HasPrefix(id, "ep_") || len(id) != 29 || strings.ToLower(id) != id {
			t.Fatalf("id = %q, want ep_ and 26 lower-case base32 characters", id)
		}
		secret, _ := got["secret"].(string)
		if !strings.HasPrefix(secret, webhook.SecretPrefix) {
			t.Fatalf("secret = %q, want a whsec_ secret", secret)
		}
		if _, err := webhook.ParseSecret(secret); err != nil {
			t.Fatalf("generated secret does not parse: %v", err)
		}
		if got["status"] != streams.StatusHealthy || got["url"] != "https://example.com/hook" ||
			got["description"] != "orders" || got["rate_limit"] != 2.5 || got["concurrency"] != 3.0 {
			t.Fatalf("answer = %v", got)
		}
		if types := fmt.Sprint(got["event_types"]); types != "[order.* invoice.paid]" {
			t.Fatalf("event_types = %s, want duplicates removed in order", types)
		}
		if got["created_at"] != "2030-01-02T03:04:05Z" || got["status_since"] != "2030-01-02T03:04:05Z" {
			t.Fatalf("times = %v / %v, want RFC 3339 UTC of the clock", got["created_at"], got["status_since"])
		}

		ep, h := b.stored(t, id)
		if ep == nil || len(ep.Secrets) != 1 || ep.Secrets[0].Key != secret || !ep.Secrets[0].ExpiresAt.IsZero() {
			t.Fatalf("stored endpoint = %+v, want the answered secret, never expiring", ep)
		}
		if h == nil || h.Status != streams.StatusHealthy || h.Transitions != 0 || h.StatusEvent() != nil {
			t.Fatalf("stored health = %+v, want a new healthy record with nothing to notify", h)
		}
	})

	t.Run("given secret kept", func(t *testing.T) {
		got := b.create(t, map[string]any{"secret": testSecret})
		if got["secret"] != testSecret {
			t.Fatalf("secret = %v, want the given one", got["secret"])
		}
		ep, _ := b.stored(t, got["id"].(string))
		if ep.Secrets[0].Key != testSecret {
			t.Fatalf("stored secret = %q", ep.Secrets[0].Key)
		}
		if got["concurrency"] != 0.0 {
			t.Fatalf("concurrency = %v, want 0 stored as given", got["concurrency"])
		}
	})
}

func TestCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{MaxEventTypes: 3})
	cases := []struct {
		name, body, field string
	}{
		{"no url", `{"event_types":["a"]}`, "url: required"},
		{"ftp scheme", `{"url":"ftp://example.com/x","event_types":["a"]}`, "url: "},
		{"no scheme", `{"url":"example.com/x","event_types":["a"]}`, "url: "},
		{"long url", `{"url":"https://example.com/` + strings.Repeat("x", 2048) + `","event_types":["a"]}`, "url: longer than 2048"},
		{"loopback v4", `{"url":"http://127.0.0.1:9000/x","event_types":["a"]}`, "url: "},
		{"private v4", `{"url":"http://10.0.0.1/x","event_types":["a"]}`, "url: "},
		{"loopback v6", `{"url":"http://[::1]:8080/x","event_types":["a"]}`, "url: "},
		{"metadata", `{"url":"http://169.254.169.254/latest/meta-data","event_types":["a"]}`, "url: "},
		// Spellings the dial maps to a refused address: 400, not a 201 that
		// fails at every dial.
		{"full-width loopback", `{"url":"http://１２７.０.０.１/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"ideographic stops", `{"url":"http://１２７。０。０。１:9000/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"full-width metadata", `{"url":"http://１６９.２５４.１６９.２５４/latest","event_types":["a"]}`, "url: address not allowed: cloud-metadata"},
		{"bare 0x parts", `{"url":"http://0x7f.0x.0x.1/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"one decimal", `{"url":"http://2130706433/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"octal", `{"url":"http://0177.0.0.1/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"two parts", `{"url":"http://127.1/x","event_types":["a"]}`, "url: address not allowed: loopback address 127.0.0.1"},
		{"number that is no address", `{"url":"http://256.1.1.1/x","event_types":["a"]}`, "url: host ends in a number"},
		{"unmappable host", `{"url":"http://exa\u202emple.com/x","event_types":["a"]}`, "url: host is not a valid domain name"},
		{"no types", `{"url":"https://example.com"}`, "event_types: "},
		{"empty types", `{"url":"https://example.com","event_types":[]}`, "event_types: "},
		{"bad filter", `{"url":"https://example.com","event_types":["order.*","Order.Created"]}`, "event_types[1]: "},
		{"bad wildcard", `{"url":"https://example.com","event_types":["order*"]}`, "event_types[0]: "},
		{"too many types", `{"url":"https://example.com","event_types":["a","b","c","d","a"]}`, "event_types: at most 3"},
		{"secret without prefix", `{"url":"https://example.com","event_types":["a"],"secret":"hunter2"}`, "secret: "},
		{"secret too short", `{"url":"https://example.com","event_types":["a"],"secret":"whsec_c2hvcnQ="}`, "secret: "},
		{"long description", `{"url":"https://example.com","event_types":["a"],"description":"` + strings.Repeat("é", 1025) + `"}`, "description: "},
		{"negative rate", `{"url":"https://example.com","event_types":["a"],"rate_limit":-1}`, "rate_limit: "},
		{"huge rate", `{"url":"https://example.com","event_types":["a"],"rate_limit":100001}`, "rate_limit: "},
		{"negative concurrency", `{"url":"https://example.com","event_types":["a"],"concurrency":-1}`, "concurrency: "},
		{"huge concurrency", `{"url":"https://example.com","event_types":["a"],"concurrency":1001}`, "concurrency: "},
		{"url not a string", `{"url":5,"event_types":["a"]}`, "url: "},
		{"types not an array", `{"url":"https://example.com","event_types":"a"}`, "event_types: "},
		{"type not a string", `{"url":"https://example.com","event_types":[1]}`, "event_types"},
		{"rate not a number", `{"url":"https://example.com","event_types":["a"],"rate_limit":"fast"}`, "rate_limit: "},
		{"concurrency not a number", `{"url":"https://example.com","event_types":["a"],"concurrency":"ten"}`, "concurrency: "},
		{"unknown field", `{"url":"https://example.com","event_types":["a"],"status":"healthy"}`, "status: unknown field"},
		{"not an object", `[]`, "body: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := b.doJSON(t, http.MethodPost, "/v1/endpoints", tc.body, http.StatusBadRequest)
			msg, _ := got["error"].(string)
			t.Log(msg)
			if !strings.HasPrefix(msg, tc.field) {
				t.Fatalf("error = %q, want it to start with %q", msg, tc.field)
			}
			if strings.Contains(msg, "hunter2") {
				t.Fatalf("error %q repeats the secret", msg)
			}
		})
	}
	// Nothing was half-written by any of them.
	page := b.doJSON(t, http.MethodGet, "/v1/endpoints", nil, http.StatusOK)
	if items := page["items"].([]any); len(items) != 0 {
		t.Fatalf("after refused creates the list has %d endpoints", len(items))
	}
	for _, bucket := range []string{streams.BucketEndpoints, streams.BucketHealth} {
		kv, err := b.env.JS.KeyValue(b.ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if keys, err := kv.Keys(b.ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatalf("bucket %s holds %v after refused creates (err %v)", bucket, keys, err)
		}
	}
	// Duplicates do not count against the limit.
	ep, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com", EventTypes: []string{"a", "b", "a", "c", "b"}})
	if err != nil || !slices.Equal(ep.EventTypes, []string{"a", "b", "c"}) {
		t.Fatalf("create with duplicate types = %+v, %v", ep, err)
	}
	// The Go API keeps the cause for errors.Is.
	_, err = b.reg.Create(b.ctx, endpoints.CreateInput{URL: "http://10.0.0.1/", EventTypes: []string{"a"}})
	var he *httpjson.Error
	if !errors.Is(err, netguard.ErrForbidden) || !errors.As(err, &he) || he.Code != http.StatusBadRequest {
		t.Fatalf("Create with a private IP = %v, want a 400 wrapping netguard.ErrForbidden", err)
	}
}

func TestCreateAllowPrivate(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{AllowPrivate: true})
	for _, u := range []string{"http://127.0.0.1:9000/x", "http://10.0.0.1/x", "http://[::1]:8080/x"} {
		ep, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: u, EventTypes: []string{"*"}})
		if err != nil {
			t.Fatalf("create %s with AllowPrivate: %v", u, err)
		}
		if ep.URL != u {
			t.Fatalf("url = %q, want %q", ep.URL, u)
		}
	}
	// The scheme is still checked.
	if _, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "file:///etc/passwd", EventTypes: []string{"*"}}); err == nil {
		t.Fatal("a file URL was accepted")
	}
}

// With private endpoints allowed, the spellings of 127.0.0.1 are accepted:
// the dialer reaches them (netguard's tests show it), so they are no error.
func TestCreateAllowPrivateSpellings(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{AllowPrivate: true})
	for _, u := range []string{"http://１２７.０.０.１:9000/x", "http://0x7f.0x.0x.1/x", "http://127.1/x"} {
		b.create(t, map[string]any{"url": u})
	}
	// Still refused: what no dial reaches, whatever the setting.
	got := b.doJSON(t, http.MethodPost, "/v1/endpoints", `{"url":"http://1.2.3.4.5/","event_types":["a"]}`, http.StatusBadRequest)
	if msg, _ := got["error"].(string); !strings.HasPrefix(msg, "url: ") {
		t.Fatalf("error = %q, want it to name url", msg)
	}
}

// A URL's user name, password and query values are credentials: no answer
// shows them (create's included), as the secret is shown only once.
func TestURLCredentialsNeverShown(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	const (
		raw  = "https://hookuser:pw-s3cret@example.com/hook?token=T0KEN-VALUE&plain&v=2"
		want = "https://***:***@example.com/hook?token=***&plain&v=***"
	)
	check := func(what string, raw []byte, got any) {
		t.Helper()
		if got != want {
			t.Errorf("%s shows url %v, want %s", what, got, want)
		}
		for _, leak := range []string{"hookuser", "pw-s3cret", "T0KEN-VALUE"} {
			if strings.Contains(string(raw), leak) {
				t.Errorf("%s answer %s shows %q", what, raw, leak)
			}
		}
	}
	code, body := b.do(t, http.MethodPost, "/v1/endpoints", map[string]any{"url": raw, "event_types": []string{"a"}})
	if code != http.StatusCreated {
		t.Fatalf("create = %d %s", code, body)
	}
	var created map[string]any
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	check("create", body, created["url"])
	id := created["id"].(string)
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/endpoints/" + id, ""},
		{http.MethodPatch, "/v1/endpoints/" + id, `{"description":"d"}`},
		{http.MethodPost, "/v1/endpoints/" + id + "/disable", "{}"},
		{http.MethodPost, "/v1/endpoints/" + id + "/rotate-secret", "{}"},
	} {
		var in any
		if r.body != "" {
			in = r.body
		}
		code, body := b.do(t, r.method, r.path, in)
		var m map[string]any
		if code != http.StatusOK || json.Unmarshal(body, &m) != nil {
			t.Fatalf("%s %s = %d %s", r.method, r.path, code, body)
		}
		check(r.method+" "+r.path, body, m["url"])
	}
	code, body = b.do(t, http.MethodGet, "/v1/endpoints", nil)
	var page struct{ Items []map[string]any }
	if code != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Items) != 1 {
		t.Fatalf("list = %d %s", code, body)
	}
	check("list", body, page.Items[0]["url"])
	// Stored as given: the dispatcher needs the credentials.
	if ep, _ := b.stored(t, id); ep.URL != raw {
		t.Fatalf("stored url = %q, want %q", ep.URL, raw)
	}

	// An attempt whose error was stored with the URL in it (as dispatchers
	// did before they redacted it) is shown redacted.
	data, err := streams.Marshal(&streams.Attempt{
		EventID: "ev1", EventType: "a", EndpointID: id, Attempt: 1, Time: b.clock.Now(),
		Error: `Post "https://hookuser:***@example.com/hook?token=T0KEN-VALUE&plain&v=2": dial tcp: connection refused`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(b.ctx, streams.AttemptSubject(id), data); err != nil {
		t.Fatal(err)
	}
	code, body = b.do(t, http.MethodGet, "/v1/endpoints/"+id+"/attempts", nil)
	var attempts struct{ Items []struct{ Error string } }
	if code != http.StatusOK || json.Unmarshal(body, &attempts) != nil || len(attempts.Items) != 1 {
		t.Fatalf("attempts = %d %s", code, body)
	}
	if got, wantErr := attempts.Items[0].Error, `Post "`+want+`": dial tcp: connection refused`; got != wantErr {
		t.Errorf("attempt error = %q, want %q", got, wantErr)
	}
	for _, leak := range []string{"hookuser", "T0KEN-VALUE"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("attempts answer %s shows %q", body, leak)
		}
	}
}

func TestListPaginates(t *testing.T) {
	t.Parallel()
	n := 0
	b := setup(t, endpoints.Config{NewID: func() string { n++; return fmt.Sprintf("ep_%02d", 10-n) }})
	var want []string
	for range 6 {
		ep, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com", EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ep.ID)
	}
	// A deleted endpoint is not listed.
	if err := b.reg.Delete(b.ctx, want[2]); err != nil {
		t.Fatal(err)
	}
	want = slices.Delete(want, 2, 3)
	slices.Sort(want)

	var got []string
	cursor, pages := "", 0
	for {
		path := "/v1/endpoints?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK)
		pages++
		items := page["items"].([]any)
		if len(items) == 0 || len(items) > 2 {
			t.Fatalf("page %d has %d items", pages, len(items))
		}
		for _, it := range items {
			m := it.(map[string]any)
			if _, ok := m["secret"]; ok {
				t.Fatalf("list item shows the secret: %v", m)
			}
			if m["status"] != streams.StatusHealthy {
				t.Fatalf("status = %v", m["status"])
			}
			got = append(got, m["id"].(string))
		}
		cursor = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	if code, _ := b.do(t, http.MethodGet, "/v1/endpoints?limit=1001", nil); code != http.StatusBadRequest {
		t.Fatalf("limit=1001 answered %d, want 400", code)
	}
}

func TestShow(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{"description": "d"})["id"].(string)
	got := b.doJSON(t, http.MethodGet, "/v1/endpoints/"+id, nil, http.StatusOK)
	if _, ok := got["secret"]; ok {
		t.Fatalf("show includes the secret: %v", got)
	}
	for _, k := range []string{"id", "url", "event_types", "description", "rate_limit", "concurrency", "status", "status_reason", "status_since", "created_at", "updated_at"} {
		if _, ok := got[k]; !ok {
			t.Fatalf("show lacks %q: %v", k, got)
		}
	}
	for _, path := range []string{"/v1/endpoints/ep_nope", "/v1/endpoints/a.b", "/v1/endpoints/%2A"} {
		got := b.doJSON(t, http.MethodGet, path, nil, http.StatusNotFound)
		if msg, _ := got["error"].(string); !strings.Contains(msg, "not found") {
			t.Fatalf("GET %s error = %q", path, msg)
		}
	}
	if _, _, err := b.reg.Get(b.ctx, "ep_nope"); !errors.Is(err, httpjson.ErrNotFound) {
		t.Fatalf("Get unknown = %v, want ErrNotFound", err)
	}
}

func TestPatch(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	created := b.create(t, map[string]any{"description": "old", "rate_limit": 5, "concurrency": 2})
	id := created["id"].(string)
	path := "/v1/endpoints/" + id
	b.clock.Advance(time.Minute)

	got := b.doJSON(t, http.MethodPatch, path, map[string]any{
		"url": "https://example.org/new", "event_types": []string{"a.b", "a.b", "c"}, "description": "", "concurrency": 0,
	}, http.StatusOK)
	if got["url"] != "https://example.org/new" || fmt.Sprint(got["event_types"]) != "[a.b c]" || got["description"] != "" ||
		got["concurrency"] != 0.0 || got["rate_limit"] != 5.0 {
		t.Fatalf("patched = %v", got)
	}
	if got["updated_at"] != "2030-01-02T03:05:05Z" || got["created_at"] != created["created_at"] {
		t.Fatalf("updated_at = %v created_at = %v", got["updated_at"], got["created_at"])
	}
	if _, ok := got["secret"]; ok {
		t.Fatal("patch answer shows the secret")
	}
	show := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK)
	if show["url"] != "https://example.org/new" {
		t.Fatalf("show after patch = %v", show)
	}
	ep, _ := b.stored(t, id)
	if ep.Secrets[0].Key != created["secret"] {
		t.Fatal("patch changed the secret")
	}

	// An empty patch changes nothing.
	if got := b.doJSON(t, http.MethodPatch, path, `{}`, http.StatusOK); got["updated_at"] != "2030-01-02T03:05:05Z" {
		t.Fatalf("empty patch = %v", got)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"secret":"` + testSecret + `"}`, "secret: use rotate-secret"},
		{`{"url":"http://127.0.0.1/"}`, "url: "},
		{`{"url":"http://１２７.０.０.１/"}`, "url: address not allowed: loopback address 127.0.0.1"},
		{`{"url":"http://0x7f.0x.0x.1/"}`, "url: address not allowed: loopback address 127.0.0.1"},
		{`{"url":""}`, "url: required"},
		{`{"event_types":[]}`, "event_types: "},
		{`{"event_types":["ok","BAD"]}`, "event_types[1]: "},
		{`{"rate_limit":-2}`, "rate_limit: "},
		{`{"concurrency":"x"}`, "concurrency: "},
		{`{"id":"ep_other"}`, "id: unknown field"},
	} {
		got := b.doJSON(t, http.MethodPatch, path, tc.body, http.StatusBadRequest)
		if msg := got["error"].(string); !strings.HasPrefix(msg, tc.want) {
			t.Fatalf("PATCH %s: error %q, want prefix %q", tc.body, msg, tc.want)
		}
	}
	b.doJSON(t, http.MethodPatch, "/v1/endpoints/ep_nope", `{"description":"x"}`, http.StatusNotFound)
}

func TestDeleteLeavesTombstone(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{})["id"].(string)
	path := "/v1/endpoints/" + id
	if code, raw := b.do(t, http.MethodDelete, path, nil); code != http.StatusNoContent || len(raw) != 0 {
		t.Fatalf("DELETE = %d %q, want 204 with no body", code, raw)
	}
	ep, h := b.stored(t, id)
	if ep == nil || !ep.Deleted {
		t.Fatalf("stored after delete = %+v, want a tombstone", ep)
	}
	if h == nil {
		t.Fatal("delete removed the health record; the dispatcher removes it")
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, path}, {http.MethodPatch, path}, {http.MethodDelete, path},
		{http.MethodPost, path + "/enable"}, {http.MethodPost, path + "/disable"},
		{http.MethodPost, path + "/rotate-secret"}, {http.MethodGet, path + "/attempts"},
	} {
		body := any(nil)
		if r.method == http.MethodPatch {
			body = `{"description":"x"}`
		}
		if code, raw := b.do(t, r.method, r.path, body); code != http.StatusNotFound {
			t.Fatalf("%s %s after delete = %d %s, want 404", r.method, r.path, code, raw)
		}
	}
	if page := b.doJSON(t, http.MethodGet, "/v1/endpoints", nil, http.StatusOK); len(page["items"].([]any)) != 0 {
		t.Fatalf("list after delete = %v", page)
	}
}

func TestEnableDisable(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{})["id"].(string)
	path := "/v1/endpoints/" + id
	t1 := b.clock.Advance(time.Minute)

	got := b.doJSON(t, http.MethodPost, path+"/disable", nil, http.StatusOK)
	if got["status"] != streams.StatusDisabled || got["status_reason"] != "disabled by operator" ||
		got["status_since"] != t1.Format(time.RFC3339) || got["id"] != id {
		t.Fatalf("disable = %v", got)
	}
	if _, ok := got["secret"]; ok {
		t.Fatal("disable answer shows the secret")
	}
	_, h := b.stored(t, id)
	if h.Status != streams.StatusDisabled || h.Transitions != 1 || h.From != streams.StatusHealthy {
		t.Fatalf("health after disable = %+v", h)
	}
	if ev := h.StatusEvent(); ev == nil || ev.To != streams.StatusDisabled || ev.Seq != 1 {
		t.Fatalf("outbox after disable = %+v, want a status change for the dispatcher to publish", ev)
	}

	// Disabling twice is no second transition.
	b.clock.Advance(time.Minute)
	b.doJSON(t, http.MethodPost, path+"/disable", nil, http.StatusOK)
	if _, h := b.stored(t, id); h.Transitions != 1 || !h.Since.Equal(t1) {
		t.Fatalf("health after second disable = %+v", h)
	}
	if show := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK); show["status"] != streams.StatusDisabled {
		t.Fatalf("show status = %v", show["status"])
	}

	got = b.doJSON(t, http.MethodPost, path+"/enable", nil, http.StatusOK)
	if got["status"] != streams.StatusHealthy || got["status_reason"] != "enabled by operator" {
		t.Fatalf("enable = %v", got)
	}
	if _, h := b.stored(t, id); h.Transitions != 2 || h.Status != streams.StatusHealthy {
		t.Fatalf("health after enable = %+v", h)
	}
	// Enabling a healthy endpoint is a no-op 200.
	b.doJSON(t, http.MethodPost, path+"/enable", nil, http.StatusOK)
	if _, h := b.stored(t, id); h.Transitions != 2 {
		t.Fatalf("enabling a healthy endpoint made a transition: %+v", h)
	}

	// Enabling a failing endpoint leaves it failing.
	hkv, err := b.env.JS.KeyValue(b.ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := streams.Update(b.ctx, hkv, id, func(h *streams.Health) (*streams.Health, error) {
		h.Transition(streams.StatusFailing, "5 consecutive failures", b.clock.Now())
		return h, nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err = b.reg.SetEnabled(b.ctx, id, true)
	if err != nil || h.Status != streams.StatusFailing || h.Transitions != 3 {
		t.Fatalf("enable failing = %+v, %v; want it left failing", h, err)
	}
	// Disabling it is a transition from failing.
	h, err = b.reg.SetEnabled(b.ctx, id, false)
	if err != nil || h.Status != streams.StatusDisabled || h.From != streams.StatusFailing || h.Transitions != 4 {
		t.Fatalf("disable failing = %+v, %v", h, err)
	}
	if _, err := b.reg.SetEnabled(b.ctx, "ep_nope", false); !errors.Is(err, httpjson.ErrNotFound) {
		t.Fatalf("SetEnabled unknown = %v", err)
	}
}

func TestEnableDisableWithoutHealthRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	ep, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	hkv, err := b.env.JS.KeyValue(b.ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	if err := hkv.Purge(b.ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	// A missing record means healthy.
	if _, h, err := b.reg.Get(b.ctx, ep.ID); err != nil || h.Status != streams.StatusHealthy {
		t.Fatalf("Get without health = %+v, %v", h, err)
	}
	if h, err := b.reg.SetEnabled(b.ctx, ep.ID, true); err != nil || h.Status != streams.StatusHealthy {
		t.Fatalf("enable without health = %+v, %v", h, err)
	}
	if _, h := b.stored(t, ep.ID); h != nil {
		t.Fatalf("enabling a healthy endpoint wrote %+v", h)
	}
	if h, err := b.reg.SetEnabled(b.ctx, ep.ID, false); err != nil || h.Status != streams.StatusDisabled || h.Transitions != 1 {
		t.Fatalf("disable without health = %+v, %v", h, err)
	}
}

func TestRotateSecret(t *testing.T) {
	t.Parallel()
	const overlap = 2 * time.Hour
	b := setup(t, endpoints.Config{SecretOverlap: overlap})
	id := b.create(t, map[string]any{"secret": testSecret})["id"].(string)
	path := "/v1/endpoints/" + id
	t1 := b.clock.Advance(time.Hour)

	got := b.doJSON(t, http.MethodPost, path+"/rotate-secret", nil, http.StatusOK)
	newSecret, _ := got["secret"].(string)
	if got["id"] != id || newSecret == testSecret || got["url"] != "https://example.com/hook" || got["status"] != streams.StatusHealthy {
		t.Fatalf("rotate answer = %v", got)
	}
	if _, err := webhook.ParseSecret(newSecret); err != nil {
		t.Fatalf("new secret does not parse: %v", err)
	}
	ep, _ := b.stored(t, id)
	if len(ep.Secrets) != 2 || ep.Secrets[0].Key != newSecret || !ep.Secrets[0].ExpiresAt.IsZero() ||
		ep.Secrets[1].Key != testSecret || !ep.Secrets[1].ExpiresAt.Equal(t1.Add(overlap)) {
		t.Fatalf("secrets after rotation = %+v, want [new, old expiring at %s]", ep.Secrets, t1.Add(overlap))
	}
	if act := ep.ActiveSecrets(t1.Add(overlap - time.Nanosecond)); len(act) != 2 {
		t.Fatalf("during the overlap %d secrets sign, want 2", len(act))
	}
	if act := ep.ActiveSecrets(t1.Add(overlap)); len(act) != 1 || act[0].Key != newSecret {
		t.Fatalf("after the overlap the signing secrets are %+v, want only the new one", act)
	}
	if show := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK); show["secret"] != nil {
		t.Fatal("show after rotation includes the secret")
	}

	// A rotation after the overlap drops the expired secret.
	t2 := b.clock.Advance(overlap)
	third, err := b.reg.RotateSecret(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ = b.stored(t, id)
	if len(ep.Secrets) != 2 || ep.Secrets[0].Key != third || ep.Secrets[1].Key != newSecret || !ep.Secrets[1].ExpiresAt.Equal(t2.Add(overlap)) {
		t.Fatalf("secrets after second rotation = %+v", ep.Secrets)
	}
	if _, err := b.reg.RotateSecret(b.ctx, "ep_nope"); !errors.Is(err, httpjson.ErrNotFound) {
		t.Fatalf("rotate unknown = %v", err)
	}
}

func TestCreateIDTaken(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{NewID: func() string { return "ep_same" }})
	first, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com/1", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com/2", EventTypes: []string{"*"}}); !errors.Is(err, httpjson.ErrConflict) {
		t.Fatalf("second create under a taken id = %v, want ErrConflict", err)
	}
	// The endpoint exists without a health record: the health record the
	// failed create wrote first is removed again, the endpoint untouched.
	hkv, err := b.env.JS.KeyValue(b.ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	if err := hkv.Purge(b.ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com/3", EventTypes: []string{"*"}}); !errors.Is(err, httpjson.ErrConflict) {
		t.Fatalf("third create = %v, want ErrConflict", err)
	}
	ep, h := b.stored(t, first.ID)
	if h != nil || ep.URL != "https://example.com/1" {
		t.Fatalf("after a refused create: endpoint %+v, health %+v; want the first endpoint and no health", ep, h)
	}
}

func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{})["id"].(string)
	b.env.Stop(t)
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/endpoints/" + id}, {http.MethodGet, "/v1/endpoints"}, {http.MethodPost, "/v1/endpoints/" + id + "/disable"},
	} {
		req, err := http.NewRequestWithContext(b.ctx, r.method, b.srv.URL+r.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s with NATS down = %d (Retry-After %q), want 503 with Retry-After", r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if _, err := b.reg.Create(b.ctx, endpoints.CreateInput{URL: "https://example.com", EventTypes: []string{"*"}}); !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("create with NATS down = %v, want ErrUnavailable", err)
	}
}

// A record that no version of hookstream can read (written straight into
// the bucket by a NATS client) leaves the others listed: before, one such
// record made GET /v1/endpoints fail for every endpoint.
func TestListSkipsUnreadableRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	good := b.create(t, map[string]any{})["id"].(string)
	bad := b.create(t, map[string]any{})["id"].(string)
	kv, err := b.env.JS.KeyValue(b.ctx, streams.BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(b.ctx, bad, []byte("not msgpack at all")); err != nil {
		t.Fatal(err)
	}
	page := b.doJSON(t, http.MethodGet, "/v1/endpoints", nil, http.StatusOK)
	items := page["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != good {
		t.Fatalf("list with one unreadable record = %v, want only %s", items, good)
	}
	if code, _ := b.do(t, http.MethodGet, "/v1/endpoints/"+bad, nil); code < 500 {
		t.Errorf("GET the unreadable record = %d, want a 5xx (it exists but cannot be read)", code)
	}
}
