package poller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

// The providers' signing, written from their documentation, so that the
// route is tested against what they send and not against itself.

// hexHMAC is the lower-case hex HMAC-SHA256 of body: Discourse's
// OpenSSL::HMAC.hexdigest("sha256", secret, body), GitHub's digest.
func hexHMAC(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// discoursePush is what Discourse sends for one web hook event.
func discoursePush(secret, body, eventID, event string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Discourse-Instance", "https://forum.example.com")
	h.Set("X-Discourse-Event-Id", eventID)
	h.Set("X-Discourse-Event-Type", strings.SplitN(event, "_", 2)[0])
	h.Set("X-Discourse-Event", event)
	h.Set("X-Discourse-Event-Signature", "sha256="+hexHMAC(secret, body))
	return h
}

// githubPush is what GitHub sends for one delivery.
func githubPush(secret, body, delivery, event string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/044aadd")
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("X-Hub-Signature-256", "sha256="+hexHMAC(secret, body))
	return h
}

// standardPush is a Standard Webhooks request signed with the reference
// scheme at at.
func standardPush(t *testing.T, secret, body, id string, at time.Time) http.Header {
	t.Helper()
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.NewSigner(key).Sign(id, at, []byte(body)))
	return h
}

// giteaPush is an hmac-sha256 provider's request: the bare hex HMAC in
// X-Gitea-Signature, the id in X-Gitea-Delivery.
func giteaPush(secret, body, delivery string) http.Header {
	h := http.Header{}
	h.Set("X-Gitea-Delivery", delivery)
	h.Set("X-Gitea-Event", "push")
	h.Set("X-Gitea-Signature", hexHMAC(secret, body))
	return h
}

const testSecret = "0123456789abcdef-shared-secret"

// push POSTs body to /ingest/<source> with h.
func (b *apiBundle) push(t *testing.T, source string, h http.Header, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+IngestPath(source), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("push answered %d %q: %v", resp.StatusCode, raw, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	return resp.StatusCode, m
}

// create POSTs a source and returns its answer; it fails the test unless
// 201.
func (b *apiBundle) create(t *testing.T, body string) map[string]any {
	t.Helper()
	code, raw := b.do(t, http.MethodPost, "/v1/sources", body)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/sources %s = %d %s", body, code, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// secretOf is the inbound secret an answer shows ("" when none).
func secretOf(m map[string]any) string {
	in, _ := m["inbound"].(map[string]any)
	s, _ := in["secret"].(string)
	return s
}

// pushes is hookstream_inbound_pushes_total{result}.
func (b *apiBundle) pushes(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookstream_inbound_pushes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no hookstream_inbound_pushes_total{result=%q}", result)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// A push signed exactly as each provider signs it is stored once as
// "<source>:<provider id>" with the body as data and the format's type; the
// provider's retry of it is a duplicate; a wrong secret, an altered body, a
// missing signature and (standard) a stale timestamp are 401 and store
// nothing.
func TestIngestEachProvider(t *testing.T) {
	t.Parallel()
	b := newAPI(t, nil)
	now := time.Now()
	const body = `{"post":{"id":7,"topic_id":3,"raw":"hello","updated_at":"2025-06-01T12:00:00.000Z"}}`
	const stdBody = `{"type":"invoice.paid","timestamp":"2025-06-01T12:00:00Z","data":{"invoice":"in_1"}}`
	cases := []struct {
		source, inbound string
		body            string
		sign            func(secret, body string) http.Header
		wantID          string
		wantType        string
		// bad are pushes that must be refused, given the source's secret.
		bad map[string]func(secret string) (http.Header, string)
	}{
		{
			source: "forum", inbound: `{"format":"discourse","secret":"` + testSecret + `"}`, body: body,
			sign:   func(s, bd string) http.Header { return discoursePush(s, bd, "1001", "post_created") },
			wantID: "forum:1001", wantType: "discourse.post_created",
		},
		{
			source: "gh", inbound: `{"format":"github","secret":"` + testSecret + `"}`, body: body,
			sign: func(s, bd string) http.Header {
				return githubPush(s, bd, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "issues")
			},
			wantID: "gh:72d3162e-cc78-11e3-81ab-4c9367dc0958", wantType: "github.issues",
		},
		{
			source: "billing", inbound: `{"format":"standard"}`, body: stdBody,
			sign:   func(s, bd string) http.Header { return standardPush(t, s, bd, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now) },
			wantID: "billing:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", wantType: "invoice.paid",
			bad: map[string]func(string) (http.Header, string){
				"stale timestamp": func(s string) (http.Header, string) {
					return standardPush(t, s, stdBody, "msg_old", now.Add(-10*time.Minute)), stdBody
				},
				"missing timestamp": func(s string) (http.Header, string) {
					h := standardPush(t, s, stdBody, "msg_x", now)
					h.Del(webhook.HeaderTimestamp)
					return h, stdBody
				},
			},
		},
		{
			source: "git", inbound: `{"format":"hmac-sha256","secret":"` + testSecret + `","header":"X-Gitea-Signature","id_header":"X-Gitea-Delivery","type":"gitea.event"}`, body: body,
			sign:   func(s, bd string) http.Header { return giteaPush(s, bd, "d-1") },
			wantID: "git:d-1", wantType: "gitea.event",
		},
	}
	for _, c := range cases {
		ans := b.create(t, `{"id":"`+c.source+`","inbound":`+c.inbound+`}`)
		secret := secretOf(ans)
		if secret == "" {
			t.Fatalf("%s: the create answer shows no secret: %v", c.source, ans)
		}
		if ans["ingest_url"] != "/ingest/"+c.source {
			t.Errorf("%s: ingest_url = %v", c.source, ans["ingest_url"])
		}
		wrong := "another-secret-of-enough-bytes"
		if strings.HasPrefix(secret, webhook.SecretPrefix) {
			wrong, _ = webhook.GenerateSecret()
		}
		bad := map[string]func(string) (http.Header, string){
			"wrong secret": func(string) (http.Header, string) { return c.sign(wrong, c.body), c.body },
			"altered body": func(s string) (http.Header, string) {
				return c.sign(s, c.body), strings.Replace(c.body, "1", "2", 1)
			},
			"missing signature": func(s string) (http.Header, string) {
				h := c.sign(s, c.body)
				for k := range h {
					if strings.Contains(strings.ToLower(k), "signature") {
						h.Del(k)
					}
				}
				return h, c.body
			},
		}
		for k, v := range c.bad {
			bad[k] = v
		}
		for name, mk := range bad {
			h, bd := mk(secret)
			code, m := b.push(t, c.source, h, bd)
			if code != http.StatusUnauthorized || m["error"] == "" {
				t.Errorf("%s, %s: %d %v, want 401 with an error", c.source, name, code, m)
			}
			if strings.Contains(fmt.Sprint(m), secret) {
				t.Errorf("%s, %s: the answer shows the secret", c.source, name)
			}
		}
		if n := len(sourceEvents(t, b.env, c.source)); n != 0 {
			t.Fatalf("%s: %d events stored by refused pushes", c.source, n)
		}

		h := c.sign(secret, c.body)
		code, m := b.push(t, c.source, h, c.body)
		if code != http.StatusAccepted || m["id"] != c.wantID || m["duplicate"] != false {
			t.Fatalf("%s: push = %d %v, want 202 %s", c.source, code, m, c.wantID)
		}
		// The provider retries the same delivery (same id, same body).
		if code, m := b.push(t, c.source, c.sign(secret, c.body), c.body); code != http.StatusAccepted || m["duplicate"] != true || m["id"] != c.wantID {
			t.Errorf("%s: retry = %d %v, want 202 duplicate", c.source, code, m)
		}
		evs := sourceEvents(t, b.env, c.source)
		if len(evs) != 1 {
			t.Fatalf("%s: %d events, want the push stored once", c.source, len(evs))
		}
		ev := evs[0]
		if ev.ID != c.wantID || ev.Type != c.wantType || ev.Source != c.source || string(ev.Data) != c.body {
			t.Errorf("%s: stored %s %s %s %s", c.source, ev.ID, ev.Type, ev.Source, ev.Data)
		}
	}
	for result, want := range map[string]float64{pushStored: 4, pushDuplicate: 4, pushBadSignature: 14} {
		if got := b.pushes(t, result); got != want {
			t.Errorf("pushes_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// The route's other answers: 404 for an unknown source or one without
// inbound, 413 over the data limit, 400 for a signed body that is not a JSON
// object or lacks the id, 503 with Retry-After when EVENTS does not answer.
func TestIngestAnswers(t *testing.T) {
	t.Parallel()
	b := newAPI(t, func(c *Config) { c.MaxEventData = 1024 })
	b.create(t, `{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	b.create(t, `{"id":"feedonly","changes_url":"http://127.0.0.1:9/changes"}`)
	ok := `{"topic":{"id":1}}`
	for _, c := range []struct {
		name, source string
		h            http.Header
		body         string
		code         int
		want         string
	}{
		{"unknown source", "nosuch", discoursePush(testSecret, ok, "1", "topic_created"), ok, 404, `source "nosuch": not found`},
		{"impossible id", "a.b", discoursePush(testSecret, ok, "1", "topic_created"), ok, 404, "not found"},
		{"no inbound", "feedonly", discoursePush(testSecret, ok, "1", "topic_created"), ok, 404, "receives no pushes"},
		{"too large", "forum", discoursePush(testSecret, big(2000), "1", "topic_created"), big(2000), 413, "body: larger than the limit of 1024 bytes"},
		{"array", "forum", discoursePush(testSecret, `[1,2]`, "1", "topic_created"), `[1,2]`, 400, "body: must be a JSON object"},
		{"form-encoded", "forum", discoursePush(testSecret, `payload=%7B%7D`, "1", "topic_created"), `payload=%7B%7D`, 400, "body: must be a JSON object"},
		{"no event id", "forum", without(discoursePush(testSecret, ok, "1", "topic_created"), "X-Discourse-Event-Id"), ok, 400, "X-Discourse-Event-Id: required"},
		{"no event name", "forum", without(discoursePush(testSecret, ok, "1", "topic_created"), "X-Discourse-Event"), ok, 400, "X-Discourse-Event: required"},
		// Refused on the missing header, before the body is read.
		{"unsigned and too large", "forum", http.Header{}, big(2000), 401, "X-Discourse-Event-Signature: missing"},
	} {
		code, m := b.push(t, c.source, c.h, c.body)
		if msg, _ := m["error"].(string); code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %v, want %d saying %q", c.name, code, m, c.code, c.want)
		}
	}
	if n := len(sourceEvents(t, b.env, "forum")); n != 0 {
		t.Fatalf("%d events stored by refused pushes", n)
	}
	for result, want := range map[string]float64{pushUnknownSource: 3, pushTooLarge: 1, pushInvalid: 4, pushBadSignature: 1, pushStored: 0} {
		if got := b.pushes(t, result); got != want {
			t.Errorf("pushes_total{result=%q} = %v, want %v", result, got, want)
		}
	}

	if err := b.env.JS.DeleteStream(context.Background(), streams.StreamEvents); err != nil {
		t.Fatal(err)
	}
	code, m := b.push(t, "forum", discoursePush(testSecret, ok, "2", "topic_created"), ok)
	if msg, _ := m["error"].(string); code != http.StatusServiceUnavailable || !strings.Contains(msg, "unavailable") {
		t.Fatalf("push without EVENTS = %d %v, want 503", code, m)
	}
	if got := b.pushes(t, pushUnavailable); got != 1 {
		t.Errorf("pushes_total{unavailable} = %v, want 1", got)
	}
}

func big(n int) string { return `{"k":"` + strings.Repeat("x", n) + `"}` }

func without(h http.Header, key string) http.Header {
	h.Del(key)
	return h
}

// The secret is shown by the create answer only: not by GET, the list or
// PATCH, and never logged, not even by a refused push.
func TestInboundSecretShownOnce(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	b := newAPI(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ans := b.create(t, `{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	if secretOf(ans) != testSecret {
		t.Fatalf("create answer = %v, want the secret", ans)
	}
	gen := b.create(t, `{"id":"hub","inbound":{"format":"github"}}`)
	generated := secretOf(gen)
	if len(generated) != 64 {
		t.Fatalf("generated github secret %q, want 64 hex characters", generated)
	}
	b.push(t, "forum", discoursePush("not-the-secret-at-all", `{}`, "1", "ping"), `{}`)
	b.push(t, "forum", discoursePush(testSecret, `{}`, "2", "ping"), `{}`)
	_, patched := b.do(t, http.MethodPatch, "/v1/sources/forum", `{"interval":"5m"}`)
	_, list := b.do(t, http.MethodGet, "/v1/sources", "")
	_, one := b.do(t, http.MethodGet, "/v1/sources/forum", "")
	for name, out := range map[string]string{"PATCH": string(patched), "list": string(list), "GET": string(one), "logs": logs.String()} {
		for _, s := range []string{testSecret, generated, hexHMAC(testSecret, `{}`)} {
			if strings.Contains(out, s) {
				t.Errorf("%s shows %q:\n%s", name, s, out)
			}
		}
	}
	if !strings.Contains(logs.String(), "push refused") || !strings.Contains(logs.String(), "does not match the body") {
		t.Errorf("the refused push was not logged with its reason:\n%s", logs.String())
	}
	var got struct {
		Inbound struct {
			Format, Header, IDHeader string
			IDFrom                   []string   `json:"id_from"`
			SecretCreatedAt          *time.Time `json:"secret_created_at"`
		}
		IngestURL string     `json:"ingest_url"`
		LastPush  *time.Time `json:"last_push"`
	}
	if err := json.Unmarshal(one, &got); err != nil {
		t.Fatal(err)
	}
	if got.Inbound.Format != "discourse" || got.Inbound.IDFrom == nil || got.Inbound.SecretCreatedAt == nil ||
		got.IngestURL != "/ingest/forum" || got.LastPush == nil {
		t.Errorf("GET = %s", one)
	}
}

// Settings errors name the field; PATCH merges into the inbound settings,
// keeps the secret unless the format needs another kind, and may remove
// either the feed or the inbound settings but not both.
func TestInboundSettings(t *testing.T) {
	t.Parallel()
	b := newAPI(t, nil)
	for _, c := range []struct {
		name, body, want string
	}{
		{"NoFormat", `{"id":"s","inbound":{"secret":"` + testSecret + `"}}`, "inbound.format: required"},
		{"BadFormat", `{"id":"s","inbound":{"format":"stripe"}}`, `inbound.format: must be one of standard, discourse, github, hmac-sha256; got "stripe"`},
		{"ShortSecret", `{"id":"s","inbound":{"format":"discourse","secret":"hunter2"}}`, "inbound.secret: must be at least 16 bytes, got 7"},
		{"EmptySecret", `{"id":"s","inbound":{"format":"discourse","secret":""}}`, "inbound.secret: must not be empty"},
		{"StandardNotWhsec", `{"id":"s","inbound":{"format":"standard","secret":"` + testSecret + `"}}`, `inbound.secret: invalid webhook secret: missing "whsec_" prefix`},
		{"HeaderForGitHub", `{"id":"s","inbound":{"format":"github","header":"X-Sig"}}`, "inbound.header: only for format hmac-sha256"},
		{"HMACNoHeader", `{"id":"s","inbound":{"format":"hmac-sha256","id_header":"X-Id"}}`, "inbound.header: required for format hmac-sha256"},
		{"HMACNoID", `{"id":"s","inbound":{"format":"hmac-sha256","header":"X-Sig"}}`, "inbound.id_header: required for format hmac-sha256 unless id_from"},
		{"BadPointer", `{"id":"s","inbound":{"format":"github","id_from":["post/id"]}}`, `inbound.id_from[0]: "post/id" must start with "/"`},
		{"UnknownField", `{"id":"s","inbound":{"format":"github","colour":"red"}}`, "inbound.colour: unknown field"},
		{"FormatNumber", `{"id":"s","inbound":{"format":7}}`, "inbound.format: must be a string"},
		{"NotObject", `{"id":"s","inbound":"discourse"}`, "inbound: must be a JSON object"},
		{"NullAndNoURL", `{"id":"s","inbound":null}`, "changes_url: required unless"},
	} {
		code, raw := b.do(t, http.MethodPost, "/v1/sources", c.body)
		var e struct{ Error string }
		_ = json.Unmarshal(raw, &e)
		if code != 400 || !strings.HasPrefix(e.Error, c.want) {
			t.Errorf("%s: %d %s, want 400 %q", c.name, code, raw, c.want)
		}
		if strings.Contains(string(raw), testSecret) || strings.Contains(string(raw), "hunter2") {
			t.Errorf("%s: the error repeats the secret: %s", c.name, raw)
		}
	}

	b.create(t, `{"id":"forum","changes_url":"http://127.0.0.1:9/changes","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	patch := func(body string) map[string]any {
		t.Helper()
		code, raw := b.do(t, http.MethodPatch, "/v1/sources/forum", body)
		if code != 200 {
			t.Fatalf("PATCH %s = %d %s", body, code, raw)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const body = `{"post":{"id":7,"version":2}}`
	// id_from merged in: the format and the secret stay.
	if m := patch(`{"inbound":{"id_from":["/post/id","/post/version"]}}`); secretOf(m) != "" {
		t.Errorf("PATCH that kept the secret shows one: %v", m)
	}
	if code, m := b.push(t, "forum", discoursePush(testSecret, body, "55", "post_edited"), body); code != 202 || m["id"] != "forum:7:2" {
		t.Fatalf("push after PATCH = %d %v, want forum:7:2", code, m)
	}
	// To github: a shared secret fits, so it is kept.
	if m := patch(`{"inbound":{"format":"github","id_from":[]}}`); secretOf(m) != "" {
		t.Errorf("PATCH to github shows a secret: %v", m)
	}
	if code, m := b.push(t, "forum", githubPush(testSecret, body, "g-1", "push"), body); code != 202 || m["id"] != "forum:g-1" {
		t.Fatalf("github push = %d %v", code, m)
	}
	// To standard: the shared secret does not fit; a whsec_ one is made
	// and shown once.
	m := patch(`{"inbound":{"format":"standard"}}`)
	whsec := secretOf(m)
	if !strings.HasPrefix(whsec, webhook.SecretPrefix) {
		t.Fatalf("PATCH to standard = %v, want a generated whsec_ secret", m)
	}
	const std = `{"type":"post.edited","data":{}}`
	if code, m := b.push(t, "forum", standardPush(t, whsec, std, "msg_9", time.Now()), std); code != 202 || m["id"] != "forum:msg_9" {
		t.Fatalf("standard push = %d %v", code, m)
	}
	// The feed may go, then the inbound settings may not.
	patch(`{"changes_url":""}`)
	if code, raw := b.do(t, http.MethodPatch, "/v1/sources/forum", `{"inbound":null}`); code != 400 || !strings.Contains(string(raw), "changes_url: required unless") {
		t.Errorf("PATCH removing both = %d %s, want 400", code, raw)
	}
	m = patch(`{"changes_url":"http://127.0.0.1:9/changes","inbound":null}`)
	if m["inbound"] != nil || m["ingest_url"] != "" {
		t.Errorf("after removing inbound: %v", m)
	}
	if code, _ := b.push(t, "forum", standardPush(t, whsec, std, "msg_10", time.Now()), std); code != 404 {
		t.Errorf("push to a source without inbound = %d, want 404", code)
	}
}

// rotate-secret makes a new secret current (shown once); the old one keeps
// verifying for SecretOverlap, then is refused.
func TestRotateInboundSecret(t *testing.T) {
	t.Parallel()
	clock := newClock()
	b := newAPI(t, func(c *Config) { c.Now, c.SecretOverlap = clock.Now, time.Hour })
	b.create(t, `{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	b.create(t, `{"id":"feed","changes_url":"http://127.0.0.1:9/"}`)
	rotate := func(id, body string) (int, map[string]any) {
		t.Helper()
		code, raw := b.do(t, http.MethodPost, "/v1/sources/"+id+"/rotate-secret", body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("rotate answered %d %q", code, raw)
		}
		return code, m
	}
	code, m := rotate("forum", "")
	fresh := secretOf(m)
	if code != 200 || len(fresh) != 64 || fresh == testSecret {
		t.Fatalf("rotate = %d %v, want a new generated secret", code, m)
	}
	in := m["inbound"].(map[string]any)
	if in["previous_secrets_expire_at"] != clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("previous_secrets_expire_at = %v, want an hour from now", in["previous_secrets_expire_at"])
	}
	if strings.Contains(fmt.Sprint(b.source(t, "forum")), fresh) {
		t.Error("GET shows the rotated secret")
	}
	push := func(secret, id string) int {
		code, _ := b.push(t, "forum", discoursePush(secret, `{}`, id, "ping"), `{}`)
		return code
	}
	if push(testSecret, "1") != 202 || push(fresh, "2") != 202 {
		t.Fatal("during the overlap both secrets must verify")
	}
	clock.Advance(time.Hour)
	if push(testSecret, "3") != 401 || push(fresh, "4") != 202 {
		t.Fatal("after the overlap only the new secret may verify")
	}
	// A provider-chosen secret; the one it replaces overlaps in turn.
	chosen := "the-provider-picked-this-one"
	if code, m := rotate("forum", `{"secret":"`+chosen+`"}`); code != 200 || secretOf(m) != chosen {
		t.Fatalf("rotate to a chosen secret = %d %v", code, m)
	}
	if push(chosen, "5") != 202 || push(fresh, "6") != 202 || push(testSecret, "7") != 401 {
		t.Fatal("after the second rotation: the chosen and the previous secret verify, the first does not")
	}
	for _, c := range []struct {
		id, body string
		code     int
		want     string
	}{
		{"forum", `{"secret":"short"}`, 400, "secret: must be at least 16 bytes"},
		{"forum", `{"secret":""}`, 400, "secret: must not be empty"},
		{"forum", `{"colour":1}`, 400, "colour: unknown field"},
		{"feed", ``, 409, "no inbound settings"},
		{"nosuch", ``, 404, "not found"},
	} {
		code, m := rotate(c.id, c.body)
		if msg, _ := m["error"].(string); code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("rotate %s %s = %d %v, want %d %q", c.id, c.body, code, m, c.code, c.want)
		}
	}
}

// A source with inbound settings and no changes_url is never polled; its
// state shows the last push.
func TestInboundOnlySourceIsNeverPolled(t *testing.T) {
	t.Parallel()
	b := newAPI(t, nil)
	var ticks tickCounter
	b.p.hooks.afterTick = ticks.tick
	start(t, b.p)
	b.create(t, `{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	if code, _ := b.push(t, "forum", discoursePush(testSecret, `{}`, "1", "ping"), `{}`); code != 202 {
		t.Fatalf("push = %d", code)
	}
	// Ticks after the source was known, with time for a poll to start.
	ticks.wait(t, 20)
	streamstest.WaitFor(t, waitLong, "no poll in flight", b.p.idle)
	st := readState(t, b.p, "forum")
	if st == nil || !st.LastPoll.IsZero() || st.LastPush.IsZero() {
		t.Fatalf("state = %+v, want a push and no poll", st)
	}
	if got := b.source(t, "forum"); got["last_poll"] != nil || got["last_push"] == nil || got["last_push_instance"] != "https://forum.example.com" {
		t.Errorf("GET = %v", got)
	}
}

// tickCounter counts the scheduler's ticks (Poller.hooks.afterTick).
type tickCounter struct{ n atomic.Int64 }

func (c *tickCounter) tick(time.Time) { c.n.Add(1) }

// wait waits for n more ticks to end: the scheduler has looked at every
// source at least n-1 times since wait was called.
func (c *tickCounter) wait(t *testing.T, n int64) {
	t.Helper()
	from := c.n.Load()
	streamstest.WaitFor(t, waitLong, fmt.Sprintf("%d ticks", n), func() bool { return c.n.Load() >= from+n })
}

// idle reports whether no poll or notification is running.
func (p *Poller) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight) == 0
}

// cachedLastPush is the last push in the scheduler's view of source id.
func (p *Poller) cachedLastPush(id string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs := p.states[id]; cs.st != nil {
		return cs.st.LastPush
	}
	return time.Time{}
}

// Pushes cost no state write each: an API process writes LastPush at most
// once per pushRecordEvery, and a second one skips the write the first made
// recently, while both see every push at once in their own view.
func TestPushRecordIsThrottled(t *testing.T) {
	t.Parallel()
	clock := newClock()
	mut := func(c *Config) { c.Now = clock.Now }
	a := newAPI(t, mut)
	other := newAPIOn(t, a.env, mut)
	a.create(t, `{"id":"forum","expected_window":"8m","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`)
	rev := func() uint64 {
		t.Helper()
		e, err := a.p.stateKV.Get(context.Background(), "forum")
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}
	send := func(b *apiBundle, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if code, m := b.push(t, "forum", discoursePush(testSecret, `{}`, strconv.Itoa(i), "ping"), `{}`); code != 202 {
				t.Fatalf("push %d = %d %v", i, code, m)
			}
		}
	}
	r0 := rev()
	send(a, 0, 20)
	r1 := rev()
	if r1 != r0+1 {
		t.Fatalf("20 pushes wrote the state %d times, want once", r1-r0)
	}
	clock.Advance(30 * time.Second) // within pushRecordEvery(8m) = 1m
	send(other, 100, 20)
	if r := rev(); r != r1 {
		t.Fatalf("the second process wrote the state %d times within the minute, want 0", r-r1)
	}
	if got := other.source(t, "forum")["last_push"]; got != clock.Now().Format(time.RFC3339) {
		t.Errorf("the second process shows last_push %v, want its own push at %s", got, clock.Now().Format(time.RFC3339))
	}
	clock.Advance(time.Minute)
	send(a, 200, 5)
	if r := rev(); r != r1+1 {
		t.Fatalf("after the minute: %d writes, want 1", r-r1)
	}
	if st := readState(t, a.p, "forum"); !st.LastPush.Equal(clock.Now()) {
		t.Errorf("stored last push %s, want %s", st.LastPush, clock.Now())
	}
}

// End to end in the poller: the first poll finds an empty feed; pushes
// arrive (at another API process, whose record of them reaches the poller
// through JetStream) and hold gap detection off past the expected window;
// they stop; after the window the gap poll fetches the feed, whose changes
// carry the same ids as the pushes (through id_from), so each change is
// stored once.
func TestPushesThenGapPollFetchesWhatTheyMissed(t *testing.T) {
	t.Parallel()
	clock := newClock()
	t0 := clock.Now()
	mut := func(c *Config) { c.Now = clock.Now }
	b := newAPI(t, mut)
	ingest := newAPIOn(t, b.env, mut) // an API process that does not poll
	feed := newFeed(10)
	fs := newFeedServer(t, feed)
	var ticks tickCounter
	b.p.hooks.afterTick = ticks.tick
	start(t, b.p)
	b.create(t, `{"id":"forum","changes_url":"`+fs.URL+`","interval":"1h","expected_window":"10m",
		"inbound":{"format":"discourse","secret":"`+testSecret+`","id_from":["/post/id","/post/version"]}}`)
	waitState(t, b.p, "forum", "the first poll", func(st *sourceState) bool { return st.LastPoll.Equal(t0) && st.Cursor == "0" })

	// post n, version 1: as the feed lists it and as Discourse pushes it.
	postChange := func(n int) Change {
		return Change{ID: fmt.Sprintf("%d:1", n), Type: "discourse.post_created",
			Data: json.RawMessage(fmt.Sprintf(`{"post":{"id":%d,"version":1,"source":"feed"}}`, n))}
	}
	pushPost := func(n int) {
		t.Helper()
		body := fmt.Sprintf(`{"post":{"id":%d,"version":1,"source":"push"}}`, n)
		if code, m := ingest.push(t, "forum", discoursePush(testSecret, body, strconv.Itoa(900+n), "post_created"), body); code != 202 || m["id"] != fmt.Sprintf("forum:%d:1", n) {
			t.Fatalf("push %d = %d %v", n, code, m)
		}
		now := clock.Now()
		streamstest.WaitFor(t, waitLong, "the poller to see the push", func() bool { return b.p.cachedLastPush("forum").Equal(now) })
	}
	// Pushes every 6 minutes: never 10 without one.
	for n := 1; n <= 3; n++ {
		clock.Advance(6 * time.Minute)
		feed.add(postChange(n))
		pushPost(n)
		ticks.wait(t, 5)
		streamstest.WaitFor(t, waitLong, "no poll in flight", b.p.idle)
		if n := feed.pollCount(); n != 1 {
			t.Fatalf("the feed was polled %d times while pushes came within the window, want only the first poll", n)
		}
	}
	// The pushes stop; the feed goes on.
	feed.add(postChange(4), postChange(5))
	lastPush := clock.Now()
	clock.Advance(10 * time.Minute)
	st := waitState(t, b.p, "forum", "the gap poll", func(st *sourceState) bool { return st.Cursor == "5" })
	if !st.LastPoll.Equal(lastPush.Add(10*time.Minute)) || feed.pollCount() != 2 {
		t.Fatalf("last poll %s after %d polls, want one gap poll a window after the last push", st.LastPoll, feed.pollCount())
	}
	evs := sourceEvents(t, b.env, "forum")
	ids := map[string]string{}
	for _, ev := range evs {
		if _, dup := ids[ev.ID]; dup {
			t.Errorf("%s stored twice", ev.ID)
		}
		ids[ev.ID] = string(ev.Data)
	}
	for n := 1; n <= 5; n++ {
		id := fmt.Sprintf("forum:%d:1", n)
		want := "feed"
		if n <= 3 {
			want = "push" // stored by the push; the poll's copy was a duplicate
		}
		if !strings.Contains(ids[id], `"source":"`+want+`"`) {
			t.Errorf("%s = %q, want it stored once, from the %s", id, ids[id], want)
		}
	}
	if len(evs) != 5 {
		t.Errorf("%d events, want 5", len(evs))
	}
	got := b.source(t, "forum")
	if got["last_push"] != lastPush.Format(time.RFC3339) || got["last_poll"] != st.LastPoll.Format(time.RFC3339) {
		t.Errorf("GET last_push %v last_poll %v, want %s and %s", got["last_push"], got["last_poll"], lastPush.Format(time.RFC3339), st.LastPoll.Format(time.RFC3339))
	}
	if !bytes.Contains(mustJSON(t, got), []byte(`"ingest_url":"/ingest/forum"`)) {
		t.Errorf("GET = %v, want the ingest URL", got)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
