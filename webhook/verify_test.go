package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/webhook"
)

func TestVerifyRequestRoundTrip(t *testing.T) {
	t.Parallel()

	key := testKey(1)
	sent := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1","type":"order.created","data":{}}`)

	// The headers as the dispatcher sets them and as net/http delivers them.
	h := http.Header{}
	h.Set(webhook.HeaderID, "evt_1")
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.NewSigner(key).Sign("evt_1", sent, body))

	if err := webhook.VerifyRequest(h, body, sent.Add(3*time.Second), webhook.DefaultTolerance, key); err != nil {
		t.Fatalf("VerifyRequest: %v", err)
	}
}

func TestVerifyRequestHeaders(t *testing.T) {
	t.Parallel()

	oldKey, newKey := testKey(1), testKey(2)
	sent := time.Unix(1700000000, 0)
	body := []byte(`{}`)
	oldSig := webhook.NewSigner(oldKey).Sign("evt_1", sent, body)
	valid := func() http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderID, "evt_1")
		h.Set(webhook.HeaderTimestamp, "1700000000")
		h.Set(webhook.HeaderSignature, oldSig)
		return h
	}

	tests := []struct {
		name    string
		header  func() http.Header
		wantErr error
	}{
		{name: "valid", header: valid},
		{name: "no id", header: func() http.Header { h := valid(); h.Del(webhook.HeaderID); return h }, wantErr: webhook.ErrMissingHeaders},
		{name: "no timestamp", header: func() http.Header { h := valid(); h.Del(webhook.HeaderTimestamp); return h }, wantErr: webhook.ErrMissingHeaders},
		{name: "no signature", header: func() http.Header { h := valid(); h.Del(webhook.HeaderSignature); return h }, wantErr: webhook.ErrMissingHeaders},
		{name: "no headers", header: func() http.Header { return http.Header{} }, wantErr: webhook.ErrMissingHeaders},
		{
			name: "signature split over two header lines",
			header: func() http.Header {
				h := valid()
				h.Set(webhook.HeaderSignature, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
				h.Add(webhook.HeaderSignature, oldSig)
				return h
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := webhook.VerifyRequest(tt.header(), body, sent, webhook.DefaultTolerance, newKey, oldKey)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyRequest error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()

	key := testKey(1)
	const (
		id  = "evt_42"
		ts  = "1700000000"
		tol = 5 * time.Minute
	)
	sent := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_42","data":{"amount":100}}`)
	sig := webhook.NewSigner(key).Sign(id, sent, body)
	// sigAt is a correct signature for a timestamp other than ts, for the
	// tolerance cases (where the signature itself must not be the reason).
	sigAt := func(at time.Time) (string, string) {
		return strconv.FormatInt(at.Unix(), 10), webhook.NewSigner(key).Sign(id, at, body)
	}
	oldTS, oldSig := sigAt(sent.Add(-tol - time.Second))
	edgeTS, edgeSig := sigAt(sent.Add(-tol))
	futureTS, futureSig := sigAt(sent.Add(tol + time.Second))
	nearFutureTS, nearFutureSig := sigAt(sent.Add(tol))
	defaultTS, defaultSig := sigAt(sent.Add(-webhook.DefaultTolerance + time.Second))

	tests := []struct {
		name      string
		id, ts    string
		sig       string
		body      []byte
		tolerance time.Duration
		keys      [][]byte
		wantErr   error  // nil: accepted
		wantMsg   string // substring of the error message
	}{
		{name: "valid"},
		{name: "tampered body", body: []byte(`{"id":"evt_42","data":{"amount":900}}`), wantErr: webhook.ErrNoValidSignature},
		{name: "truncated body", body: body[:len(body)-1], wantErr: webhook.ErrNoValidSignature},
		{name: "tampered id", id: "evt_43", wantErr: webhook.ErrNoValidSignature},
		{name: "tampered timestamp", ts: "1700000001", wantErr: webhook.ErrNoValidSignature},
		{name: "wrong key", keys: [][]byte{testKey(2)}, wantErr: webhook.ErrNoValidSignature},
		{name: "no keys", keys: [][]byte{}, wantErr: webhook.ErrNoValidSignature},
		{name: "second key matches", keys: [][]byte{testKey(2), key}},
		{name: "signature among other entries", sig: "v2,bm9wZQ== v1,bm9wZQ== v1a," + sig[3:] + " " + sig},
		{name: "extra whitespace", sig: "  " + sig + "   v1,AAAA"},
		{name: "only other versions", sig: "v2," + sig[3:] + " v1a," + sig[3:], wantErr: webhook.ErrNoValidSignature},
		{name: "entry without comma", sig: "v1" + sig[3:], wantErr: webhook.ErrNoValidSignature},
		{name: "bad base64", sig: "v1," + strings.Repeat("*", 44), wantErr: webhook.ErrNoValidSignature},
		{name: "truncated signature", sig: sig[:len(sig)-4], wantErr: webhook.ErrNoValidSignature},
		{name: "unpadded signature", sig: strings.TrimSuffix(sig, "="), wantErr: webhook.ErrNoValidSignature},
		{name: "missing id", id: "-", wantErr: webhook.ErrMissingHeaders, wantMsg: "webhook-id is empty"},
		{name: "missing timestamp is missing", ts: "-", wantErr: webhook.ErrMissingHeaders, wantMsg: "webhook-timestamp is empty"},
		{name: "missing timestamp is a timestamp error", ts: "-", wantErr: webhook.ErrTimestamp},
		{name: "missing signature", sig: "-", wantErr: webhook.ErrMissingHeaders, wantMsg: "webhook-signature is empty"},
		{name: "timestamp not a number", ts: "yesterday", wantErr: webhook.ErrTimestamp, wantMsg: "not unix seconds"},
		{name: "timestamp with sign", ts: "+1700000000", wantErr: webhook.ErrTimestamp},
		{name: "timestamp negative", ts: "-1700000000", wantErr: webhook.ErrTimestamp},
		{name: "timestamp fractional", ts: "1700000000.5", wantErr: webhook.ErrTimestamp},
		{name: "timestamp in milliseconds", ts: "1700000000000", wantErr: webhook.ErrTimestamp, wantMsg: "from now"},
		{name: "timestamp overflows", ts: "99999999999999999999999", wantErr: webhook.ErrTimestamp},
		{name: "too old", ts: oldTS, sig: oldSig, wantErr: webhook.ErrTimestamp, wantMsg: "5m1s from now, more than the tolerance of 5m0s"},
		{name: "old at the tolerance", ts: edgeTS, sig: edgeSig},
		{name: "too far in the future", ts: futureTS, sig: futureSig, wantErr: webhook.ErrTimestamp},
		{name: "future at the tolerance", ts: nearFutureTS, sig: nearFutureSig},
		{name: "narrow tolerance", ts: edgeTS, sig: edgeSig, tolerance: time.Minute, wantErr: webhook.ErrTimestamp},
		{name: "zero tolerance means default", ts: defaultTS, sig: defaultSig, tolerance: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			// Zero fields take the valid request's values; "-" means empty.
			pick := func(v, def string) string {
				switch v {
				case "":
					return def
				case "-":
					return ""
				}
				return v
			}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			keys := [][]byte{key}
			if tt.keys != nil {
				keys = tt.keys
			}
			tolerance := tol
			if tt.tolerance < 0 {
				tolerance = 0
			} else if tt.tolerance > 0 {
				tolerance = tt.tolerance
			}

			err := webhook.Verify(pick(tt.id, id), pick(tt.ts, ts), pick(tt.sig, sig), b, sent, tolerance, keys...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want one wrapping %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// FuzzVerify feeds arbitrary headers and bodies to Verify: it must never panic,
// must answer with one of its sentinel errors, and a request signed by Signer
// over the same fuzzed id and body must always verify.
func FuzzVerify(f *testing.F) {
	key := testKey(1)
	now := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	good := webhook.NewSigner(key).Sign("evt_1", now, body)
	f.Add("evt_1", "1700000000", good, body)
	f.Add("evt_1", "1700000000", good+" "+good, body)
	f.Add("evt_1", "1700000000", "v2,xyz v1,"+good[3:], body)
	f.Add("", "", "", []byte(nil))
	f.Add("evt_1", "17e8", "v1,", body)
	f.Add("evt_1", "-1", "v1,====", body)
	f.Add("evt_1", "99999999999999999999", good, body)
	f.Add("e", "1700000000", "v1,"+strings.Repeat("A", 44), []byte{0xff, 0})
	f.Add("e.1700000000", "1700000000", ",,, , v1,v1,v1", []byte("."))
	f.Add("evt_1", "1700000000", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= \t\n", body)

	signer := webhook.NewSigner(key)
	f.Fuzz(func(t *testing.T, msgID, timestamp, sig string, body []byte) {
		err := webhook.Verify(msgID, timestamp, sig, body, now, webhook.DefaultTolerance, key)
		if err != nil && !errors.Is(err, webhook.ErrMissingHeaders) && !errors.Is(err, webhook.ErrTimestamp) && !errors.Is(err, webhook.ErrNoValidSignature) {
			t.Fatalf("Verify error %v wraps none of the sentinel errors", err)
		}

		if msgID == "" {
			return
		}
		signed := signer.Sign(msgID, now, body)
		if err := webhook.Verify(msgID, "1700000000", signed, body, now, webhook.DefaultTolerance, key); err != nil {
			t.Fatalf("Verify of Sign(%q, body %q) = %v", msgID, body, err)
		}
	})
}

// A receiver whose key is empty (WEBHOOK_SECRET unset and ParseSecret's
// error dropped) or short must refuse every request, even one signed with
// that very key: anyone can compute an HMAC under the empty key.
func TestVerifyRefusesEmptyAndShortKeys(t *testing.T) {
	t.Parallel()

	sent := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1","type":"order.created","data":{}}`)
	good := testKey(7)
	tests := []struct {
		name string
		keys [][]byte
	}{
		{name: "nil key", keys: [][]byte{nil}},
		{name: "empty key", keys: [][]byte{{}}},
		{name: "one byte", keys: [][]byte{{1}}},
		{name: "23 bytes", keys: [][]byte{testKey(3)[:23]}},
		{name: "65 bytes", keys: [][]byte{make([]byte, 65)}},
		{name: "empty key beside a good one", keys: [][]byte{good, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Signed with the bad key itself, by hand: what a forger sends.
			bad := tt.keys[len(tt.keys)-1]
			h := http.Header{}
			h.Set(webhook.HeaderID, "evt_1")
			h.Set(webhook.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
			h.Set(webhook.HeaderSignature, handSigned(bad, "evt_1", sent.Unix(), string(body)))

			err := webhook.VerifyRequest(h, body, sent, webhook.DefaultTolerance, tt.keys...)
			if !errors.Is(err, webhook.ErrInvalidKey) {
				t.Fatalf("VerifyRequest with %s = %v, want an error wrapping ErrInvalidKey", tt.name, err)
			}
			// Refused before the request is looked at: a misconfigured
			// receiver says so on every request, not only on signed ones.
			if err := webhook.VerifyRequest(http.Header{}, nil, sent, 0, tt.keys...); !errors.Is(err, webhook.ErrInvalidKey) {
				t.Errorf("VerifyRequest without headers = %v, want ErrInvalidKey first", err)
			}
		})
	}
	if err := webhook.Verify("evt_1", "1700000000", "v1,x", body, sent, 0); !errors.Is(err, webhook.ErrInvalidKey) || !errors.Is(err, webhook.ErrNoValidSignature) {
		t.Errorf("Verify with no keys = %v, want ErrInvalidKey and ErrNoValidSignature", err)
	}
}

// The README's receiver, run as written before it checked ParseSecret's
// error: with WEBHOOK_SECRET unset the key is nil, and a request signed with
// the empty key must not reach the handler.
func TestUnsetSecretRefusesEmptyKeySignature(t *testing.T) {
	t.Parallel()

	key, err := webhook.ParseSecret("") // os.Getenv of an unset variable
	if err == nil || key != nil {
		t.Fatalf("ParseSecret(\"\") = %x, %v; want nil and an error", key, err)
	}
	now := time.Unix(1700000000, 0)
	body := []byte(`{"forged":true}`)
	h := http.Header{}
	h.Set(webhook.HeaderID, "evt_forged")
	h.Set(webhook.HeaderTimestamp, "1700000000")
	h.Set(webhook.HeaderSignature, handSigned(nil, "evt_forged", now.Unix(), string(body)))
	if err := webhook.VerifyRequest(h, body, now, webhook.DefaultTolerance, key); err == nil {
		t.Fatal("a request signed with the empty key verified against the key of an unset secret")
	}
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	for n, ok := range map[int]bool{0: false, 1: false, 23: false, 24: true, 32: true, 64: true, 65: false} {
		err := webhook.CheckKey(make([]byte, n))
		if ok != (err == nil) || (!ok && !errors.Is(err, webhook.ErrInvalidKey)) {
			t.Errorf("CheckKey(%d bytes) = %v, want ok=%v", n, err, ok)
		}
	}
}
