package inbound_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/inbound"
	"github.com/hookstream/hookstream/webhook"
)

// fuzzHex is the property every hex parser must keep, whatever the header
// and body: it never panics, every refusal is an ErrSignature, and it
// accepts only the one true signature (either hex case, prefixed as the
// format allows, spaces around).
func fuzzHex(t *testing.T, value string, body []byte, prefixRequired bool, verify func(string, []byte, ...[]byte) error) {
	err := verify(value, body, []byte(shared))
	if err != nil {
		if !errors.Is(err, inbound.ErrSignature) {
			t.Fatalf("refusal %v is not an ErrSignature", err)
		}
		if strings.Contains(err.Error(), shared) {
			t.Fatalf("the error shows the secret: %v", err)
		}
		return
	}
	got := strings.ToLower(strings.TrimSpace(value))
	want := hexHMAC(shared, body)
	if got != "sha256="+want && (prefixRequired || got != want) {
		t.Fatalf("accepted %q for a body whose signature is %s", value, want)
	}
}

func hexSeeds(f *testing.F) {
	b := []byte(body)
	f.Add("sha256="+hexHMAC(shared, b), b)
	f.Add(hexHMAC(shared, b), b)
	f.Add("sha256="+strings.ToUpper(hexHMAC(shared, b)), b)
	f.Add("sha256="+hexHMAC(sharedOld, b), b)
	f.Add("sha256=", []byte{})
	f.Add("sha256="+hexHMAC(shared, nil), []byte(nil))
	f.Add("sha1=0123", b)
	f.Add(" sha256=\x00"+strings.Repeat("f", 63), b)
	f.Add(strings.Repeat("sha256=", 20), b)
}

func FuzzVerifyDiscourse(f *testing.F) {
	hexSeeds(f)
	f.Fuzz(func(t *testing.T, value string, body []byte) {
		fuzzHex(t, value, body, true, inbound.VerifyDiscourse)
	})
}

func FuzzVerifyGitHub(f *testing.F) {
	hexSeeds(f)
	f.Fuzz(func(t *testing.T, value string, body []byte) {
		fuzzHex(t, value, body, true, inbound.VerifyGitHub)
	})
}

func FuzzVerifyHMACSHA256(f *testing.F) {
	hexSeeds(f)
	f.Fuzz(func(t *testing.T, value string, body []byte) {
		fuzzHex(t, value, body, false, func(v string, b []byte, keys ...[]byte) error {
			return inbound.VerifyHMACSHA256("X-Signature", v, b, keys...)
		})
	})
}

// A standard push verifies only with a signature entry the reference signer
// makes for its id, timestamp and body; anything else is an ErrSignature.
func FuzzVerifyStandard(f *testing.F) {
	b := []byte(body)
	ts := strconv.FormatInt(now.Unix(), 10)
	key, _ := webhook.ParseSecret(whsec)
	good := webhook.NewSigner(key).Sign("msg_1", now, b)
	f.Add("msg_1", ts, good, b)
	f.Add("msg_1", ts, "v1a,"+good[3:]+" "+good, b)
	f.Add("msg_1", ts, "v2,abc v1,", b)
	f.Add("msg_1", "-1", good, b)
	f.Add("", ts, good, b)
	f.Add("msg_1", ts, strings.Repeat("v1,", 100), []byte{})
	rc := inbound.Receiver{Format: inbound.Standard, Secrets: []string{whsec}}
	signer := webhook.NewSigner(key)
	f.Fuzz(func(t *testing.T, id, timestamp, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, timestamp)
		h.Set(webhook.HeaderSignature, sig)
		err := rc.Verify(h, body, now)
		if err != nil {
			if !errors.Is(err, inbound.ErrSignature) {
				t.Fatalf("refusal %v is not an ErrSignature", err)
			}
			return
		}
		secs, perr := strconv.ParseInt(timestamp, 10, 64)
		if perr != nil {
			t.Fatalf("accepted timestamp %q", timestamp)
		}
		want := signer.Sign(h.Get(webhook.HeaderID), timeUnix(secs), body)
		if !strings.Contains(" "+h.Get(webhook.HeaderSignature)+" ", " "+want+" ") {
			t.Fatalf("accepted %q, the signature is %q", sig, want)
		}
	})
}

// id_from's pointers, over any body: Read never panics, refuses with an
// ErrBadPush, and an id it returns is a valid one.
func FuzzReadIDFrom(f *testing.F) {
	f.Add(`{"post":{"id":7,"updated_at":"2025-01-01T00:00:00Z"}}`, "/post/id", "/post/updated_at")
	f.Add(`{"a":[1,[2,{"b~/":3}]]}`, "/a/1/1/b~0~1", "/a/0")
	f.Add(`{"a":1e400}`, "/a", "/a")
	f.Add(`[]`, "/0", "/0")
	f.Add(`{"":{"":"x"}}`, "//", "/")
	f.Fuzz(func(t *testing.T, body, p1, p2 string) {
		rc := inbound.Receiver{Format: inbound.GitHub, Secrets: []string{shared}, IDFrom: []string{p1, p2}}
		if rc.Check() != nil {
			return
		}
		h := http.Header{}
		h.Set(inbound.HeaderGitHubEvent, "push")
		push, err := rc.Read(h, []byte(body), now)
		if err != nil {
			if !errors.Is(err, inbound.ErrBadPush) {
				t.Fatalf("refusal %v is not an ErrBadPush", err)
			}
			return
		}
		if push.ID == "" || len(push.ID) > 256 || strings.ContainsAny(push.ID, " \t\r\n") {
			t.Fatalf("id %q", push.ID)
		}
	})
}
