package inbound_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/inbound"
	"github.com/hookstream/hookstream/webhook"
)

const (
	shared    = "correct-horse-battery-staple-42"
	sharedOld = "the-secret-before-the-rotation"
	whsec     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whsecOld  = "whsec_dGhlIG9sZCBrZXkgb2YgdHdlbnR5LWZvdXIgYnl0ZXM="
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// provider is one format under the shared suite: how to build its receiver,
// sign a push as the provider does, and what Read must find.
type provider struct {
	name     string
	secret   string // the current secret
	old      string // a secret a rotation still accepts
	receiver func(secrets ...string) inbound.Receiver
	sign     func(h http.Header, secret string, body []byte)
	// sigHeader is the header the signature travels in.
	sigHeader string
	wantID    string
	wantType  string
}

var providers = []provider{
	{
		name: "discourse", secret: shared, old: sharedOld,
		receiver: func(s ...string) inbound.Receiver { return inbound.Receiver{Format: inbound.Discourse, Secrets: s} },
		sign: func(h http.Header, secret string, body []byte) {
			signDiscourse(h, secret, body, "4321", "post_created")
		},
		sigHeader: "X-Discourse-Event-Signature", wantID: "4321", wantType: "discourse.post_created",
	},
	{
		name: "github", secret: shared, old: sharedOld,
		receiver: func(s ...string) inbound.Receiver { return inbound.Receiver{Format: inbound.GitHub, Secrets: s} },
		sign: func(h http.Header, secret string, body []byte) {
			signGitHub(h, secret, body, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "pull_request")
		},
		sigHeader: "X-Hub-Signature-256", wantID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", wantType: "github.pull_request",
	},
	{
		name: "standard", secret: whsec, old: whsecOld,
		receiver: func(s ...string) inbound.Receiver { return inbound.Receiver{Format: inbound.Standard, Secrets: s} },
		sign: func(h http.Header, secret string, body []byte) {
			signStandard(h, secret, body, "msg_p5jXN8AQM9LWM0D4loKWxJek", now.Add(-time.Minute))
		},
		sigHeader: webhook.HeaderSignature, wantID: "msg_p5jXN8AQM9LWM0D4loKWxJek", wantType: "invoice.paid",
	},
	{
		name: "hmac-sha256", secret: shared, old: sharedOld,
		receiver: giteaReceiver,
		sign: func(h http.Header, secret string, body []byte) {
			signGitea(h, secret, body, "f6266f16-1bf3-46a5-9ea4-602e06ead473")
		},
		sigHeader: "X-Gitea-Signature", wantID: "f6266f16-1bf3-46a5-9ea4-602e06ead473", wantType: inbound.TypeDefault,
	},
}

const body = `{"type":"invoice.paid","timestamp":"2025-06-01T11:58:00Z","data":{"id":"in_1"},"post":{"id":7,"version":3}}`

// Every format passes the same suite: a push signed as its provider signs
// it verifies and reads; a wrong secret, an altered body, a missing or
// malformed signature are refused as signature errors; a rotated-out secret
// still verifies while it is kept; an empty secret list refuses everything.
func TestProvidersSuite(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rc := p.receiver(p.secret)
			if err := rc.Check(); err != nil {
				t.Fatalf("Check: %v", err)
			}
			signed := func(secret, b string) http.Header {
				h := http.Header{}
				p.sign(h, secret, []byte(b))
				return h
			}
			refused := func(name string, r inbound.Receiver, h http.Header, b string) {
				t.Helper()
				err := r.Verify(h, []byte(b), now)
				if !errors.Is(err, inbound.ErrSignature) {
					t.Errorf("%s: Verify = %v, want an ErrSignature", name, err)
				}
				for _, s := range r.Secrets {
					if err != nil && strings.Contains(err.Error(), s) {
						t.Errorf("%s: the error shows the secret: %v", name, err)
					}
				}
			}

			h := signed(p.secret, body)
			if err := rc.Signed(h); err != nil {
				t.Fatalf("Signed: %v", err)
			}
			if err := rc.Verify(h, []byte(body), now); err != nil {
				t.Fatalf("Verify of a push signed as %s signs it: %v", p.name, err)
			}
			push, err := rc.Read(h, []byte(body), now)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if push.ID != p.wantID || push.Type != p.wantType {
				t.Errorf("Read = id %q type %q, want %q %q", push.ID, push.Type, p.wantID, p.wantType)
			}

			refused("wrong secret", rc, signed(p.old, body), body)
			refused("altered body", rc, h, strings.Replace(body, "in_1", "in_2", 1))
			refused("one more byte", rc, h, body+" ")
			missing := h.Clone()
			missing.Del(p.sigHeader)
			refused("missing header", rc, missing, body)
			if err := rc.Signed(missing); !errors.Is(err, inbound.ErrSignature) {
				t.Errorf("Signed without %s = %v, want an ErrSignature", p.sigHeader, err)
			}
			cut := h.Clone()
			cut.Set(p.sigHeader, h.Get(p.sigHeader)[:len(h.Get(p.sigHeader))-2])
			refused("cut signature", rc, cut, body)
			refused("no secrets", p.receiver(), h, body)

			rotated := p.receiver(p.old, p.secret)
			if err := rotated.Verify(h, []byte(body), now); err != nil {
				t.Errorf("a secret kept by a rotation: Verify = %v", err)
			}
			if err := rotated.Verify(signed(p.old, body), []byte(body), now); err != nil {
				t.Errorf("the new secret: Verify = %v", err)
			}
		})
	}
}

// Hex signatures are compared as bytes: upper-case hex verifies too, and
// hmac-sha256 takes a "sha256=" prefix, which Discourse and GitHub require.
func TestHexSignatureSpellings(t *testing.T) {
	t.Parallel()
	b := []byte(body)
	sig := hexHMAC(shared, b)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"discourse upper case", inbound.VerifyDiscourse("sha256="+strings.ToUpper(sig), b, []byte(shared))},
		{"github with spaces around", inbound.VerifyGitHub("  sha256="+sig+" ", b, []byte(shared))},
		{"hmac bare", inbound.VerifyHMACSHA256("X-Sig", sig, b, []byte(shared))},
		{"hmac prefixed", inbound.VerifyHMACSHA256("X-Sig", "sha256="+sig, b, []byte(shared))},
	} {
		if c.err != nil {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	for _, c := range []struct {
		name, want string
		err        error
	}{
		{"discourse without prefix", `must start with "sha256="`, inbound.VerifyDiscourse(sig, b, []byte(shared))},
		{"github sha1 prefix", `must start with "sha256="`, inbound.VerifyGitHub("sha1="+sig[:40], b, []byte(shared))},
		{"not hex", "not hex", inbound.VerifyGitHub("sha256="+strings.Repeat("zz", 32), b, []byte(shared))},
		{"short secret", "at least 16 bytes", inbound.VerifyDiscourse("sha256="+hexHMAC("short", b), b, []byte("short"))},
		{"empty secret", "at least 16 bytes", inbound.VerifyDiscourse("sha256="+hexHMAC("", b), b, []byte(""))},
	} {
		if !errors.Is(c.err, inbound.ErrSignature) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want an ErrSignature saying %q", c.name, c.err, c.want)
		}
	}
}

// A standard push is refused outside the timestamp tolerance, either way.
func TestStandardTimestampTolerance(t *testing.T) {
	t.Parallel()
	rc := inbound.Receiver{Format: inbound.Standard, Secrets: []string{whsec}}
	for _, c := range []struct {
		name string
		sent time.Time
		ok   bool
	}{
		{"just now", now, true},
		{"four minutes ago", now.Add(-4 * time.Minute), true},
		{"stale", now.Add(-6 * time.Minute), false},
		{"from the future", now.Add(6 * time.Minute), false},
	} {
		h := http.Header{}
		signStandard(h, whsec, []byte(body), "msg_1", c.sent)
		err := rc.Verify(h, []byte(body), now)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && (!errors.Is(err, inbound.ErrSignature) || !errors.Is(err, webhook.ErrTimestamp)):
			t.Errorf("%s: %v, want a timestamp refusal", c.name, err)
		}
	}
	short := rc
	short.Tolerance = 30 * time.Second
	h := http.Header{}
	signStandard(h, whsec, []byte(body), "msg_1", now.Add(-time.Minute))
	if err := short.Verify(h, []byte(body), now); !errors.Is(err, webhook.ErrTimestamp) {
		t.Errorf("a 30s tolerance took a minute-old push: %v", err)
	}
}

func TestReadIDTypeAndTime(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	signDiscourse(h, shared, []byte(body), "99", "Topic-Created")
	disc := inbound.Receiver{Format: inbound.Discourse, Secrets: []string{shared}, IDFrom: []string{"/post/id", "/post/version"}}
	push, err := disc.Read(h, []byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	if push.ID != "7:3" || push.Type != "discourse.topic_created" || push.Instance != "https://forum.example.com" || !push.Time.Equal(now) {
		t.Errorf("discourse with id_from = %+v", push)
	}

	std := inbound.Receiver{Format: inbound.Standard, Secrets: []string{whsec}, Type: "billing.event"}
	if push, err := std.Read(msgID("msg_1"), []byte(body), now); err != nil ||
		push.Type != "invoice.paid" || !push.Time.Equal(time.Date(2025, 6, 1, 11, 58, 0, 0, time.UTC)) {
		t.Errorf("standard payload = %+v, %v; want its type and timestamp", push, err)
	}
	for _, b := range []string{`{"data":{}}`, `{"type":"...","timestamp":"yesterday"}`, `{"type":7}`} {
		if push, err := std.Read(msgID("msg_1"), []byte(b), now); err != nil || push.Type != "billing.event" || !push.Time.Equal(now) {
			t.Errorf("standard %s = %+v, %v; want the source's type and now", b, push, err)
		}
	}
	if push, err := std.Read(msgID("msg_1"), []byte(`{"type":"Invoice-Paid"}`), now); err != nil || push.Type != "invoice_paid" {
		t.Errorf("standard type Invoice-Paid = %+v, %v; want invoice_paid", push, err)
	}

	for _, c := range []struct {
		name string
		rc   inbound.Receiver
		h    http.Header
		body string
		want string
	}{
		{"array body", disc, h, `[1]`, "body: must be a JSON object"},
		{"string body", disc, h, `"x"`, "body: must be a JSON object"},
		{"truncated", disc, h, `{"post":`, "body: must be a JSON object"},
		{"empty", disc, h, ``, "body: must be a JSON object"},
		{"no id header", inbound.Receiver{Format: inbound.GitHub}, http.Header{"X-Github-Event": {"push"}}, `{}`, "X-GitHub-Delivery: required"},
		{"no event header", inbound.Receiver{Format: inbound.GitHub}, http.Header{"X-Github-Delivery": {"d1"}}, `{}`, "X-GitHub-Event: required"},
		{"id with a space", inbound.Receiver{Format: inbound.GitHub}, http.Header{"X-Github-Delivery": {"a b"}, "X-Github-Event": {"push"}}, `{}`, "X-GitHub-Delivery: must not contain spaces"},
		{"pointer missing", disc, h, `{"post":{"id":7}}`, `id_from[1]: "/post/version" is not in the body`},
		{"pointer at an object", disc, h, `{"post":{"id":{},"version":1}}`, `id_from[0]: "/post/id" is an object`},
		{"pointer at null", disc, h, `{"post":{"id":null,"version":1}}`, `id_from[0]: "/post/id" is null`},
		{"pointer at empty", disc, h, `{"post":{"id":"","version":1}}`, `id_from[0]: "/post/id" is an empty string`},
		{"id too long", inbound.Receiver{Format: inbound.GitHub, MaxIDLength: 10}, http.Header{"X-Github-Delivery": {"12345678901"}, "X-Github-Event": {"push"}}, `{}`, "over the 10"},
	} {
		_, err := c.rc.Read(c.h, []byte(c.body), now)
		if !errors.Is(err, inbound.ErrBadPush) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Read = %v, want an ErrBadPush saying %q", c.name, err, c.want)
		}
	}
}

// msgID is a header with webhook-id set.
func msgID(id string) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	return h
}

func TestPointers(t *testing.T) {
	t.Parallel()
	rc := inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}}
	doc := `{"a/b":{"m~n":[10,"x",{"k":true}]},"n":1.50,"":{"":"empty-keys"}}`
	for ptr, want := range map[string]string{
		"/a~1b/m~0n/0":   "10",
		"/a~1b/m~0n/1":   "x",
		"/a~1b/m~0n/2/k": "true",
		"/n":             "1.50", // numbers as written
		"//":             "empty-keys",
	} {
		rc.IDFrom = []string{ptr}
		if err := rc.Check(); err != nil {
			t.Errorf("Check %q: %v", ptr, err)
			continue
		}
		if push, err := rc.Read(http.Header{"X-Github-Event": {"push"}}, []byte(doc), now); err != nil || push.ID != want {
			t.Errorf("%q = %q, %v; want %q", ptr, push.ID, err, want)
		}
	}
	for _, ptr := range []string{"/a~1b/m~0n/01", "/a~1b/m~0n/3", "/a~1b/m~0n/-", "/n/x", "/a~1b/m~0n/+1"} {
		rc.IDFrom = []string{ptr}
		if _, err := rc.Read(http.Header{"X-Github-Event": {"push"}}, []byte(doc), now); !errors.Is(err, inbound.ErrBadPush) {
			t.Errorf("%q: %v, want not found", ptr, err)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		rc   inbound.Receiver
		want string
	}{
		{"no format", inbound.Receiver{Secrets: []string{shared}}, "format: must be one of standard, discourse, github, hmac-sha256"},
		{"unknown format", inbound.Receiver{Format: "stripe", Secrets: []string{shared}}, `format: must be one of`},
		{"no secret", inbound.Receiver{Format: inbound.Discourse}, "secret: required"},
		{"short secret", inbound.Receiver{Format: inbound.Discourse, Secrets: []string{"fifteen-bytes.."}}, "secret: must be at least 16 bytes, got 15"},
		{"secret with a newline", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared + "\n"}}, "secret: must not contain control characters"},
		{"secret with a space around", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{" " + shared}}, "secret: must not start or end with a space"},
		{"standard shared secret", inbound.Receiver{Format: inbound.Standard, Secrets: []string{shared}}, `secret: invalid webhook secret: missing "whsec_" prefix`},
		{"header for discourse", inbound.Receiver{Format: inbound.Discourse, Secrets: []string{shared}, Header: "X-Sig"}, "header: only for format hmac-sha256"},
		{"id_header for github", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDHeader: "X-Id"}, "id_header: only for format hmac-sha256"},
		{"hmac without header", inbound.Receiver{Format: inbound.HMACSHA256, Secrets: []string{shared}, IDHeader: "X-Id"}, "header: required for format hmac-sha256"},
		{"hmac without id", inbound.Receiver{Format: inbound.HMACSHA256, Secrets: []string{shared}, Header: "X-Sig"}, "id_header: required for format hmac-sha256 unless id_from"},
		{"bad header name", inbound.Receiver{Format: inbound.HMACSHA256, Secrets: []string{shared}, Header: "X Sig", IDHeader: "X-Id"}, `header: "X Sig" is not a valid header name`},
		{"relative pointer", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDFrom: []string{"/ok", "post/id"}}, `id_from[1]: "post/id" must start with "/"`},
		{"whole-body pointer", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDFrom: []string{""}}, `id_from[0]: must point into the body`},
		{"bad escape", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDFrom: []string{"/a~2"}}, `id_from[0]: "/a~2": "~" must be followed by 0 or 1`},
		{"too many pointers", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDFrom: strings.Split("/a /b /c /d /e /f /g /h /i", " ")}, "id_from: at most 8"},
		{"type for github", inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, Type: "x.y"}, "type: only for formats standard and hmac-sha256"},
		{"bad type", inbound.Receiver{Format: inbound.HMACSHA256, Secrets: []string{shared}, Header: "X-Sig", IDHeader: "X-Id", Type: "Not A Type"}, `type: "Not A Type" must be dot-separated`},
	} {
		err := c.rc.Check()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: Check = %v, want %q", c.name, err, c.want)
		}
		for _, s := range c.rc.Secrets {
			if err != nil && strings.Contains(err.Error(), strings.TrimSpace(s)) {
				t.Errorf("%s: the error shows the secret: %v", c.name, err)
			}
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	for _, f := range inbound.Formats {
		a, err := inbound.GenerateSecret(f)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := inbound.GenerateSecret(f)
		if a == b {
			t.Errorf("%s: two equal secrets", f)
		}
		if err := inbound.CheckSecret(f, a); err != nil {
			t.Errorf("%s: generated secret refused: %v", f, err)
		}
	}
}
