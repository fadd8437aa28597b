package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/webhook"
)

// testKey returns a deterministic 32-byte key that differs per seed.
func testKey(seed byte) []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = seed + byte(i)*31
	}
	return key
}

// handSigned is the expected signature entry, built straight from the
// standard's definition rather than through any code under test.
func handSigned(key []byte, msgID string, unix int64, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(unix, 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSignKnownAnswer(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		key   []byte
		msgID string
		ts    time.Time
		body  string
		want  string
	}{
		{
			name:  "hand-built HMAC",
			key:   testKey(1),
			msgID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
			ts:    time.Unix(1674087231, 999_000_000), // sub-second part is not signed
			body:  `{"id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W","type":"order.updated","data":{"n":1}}`,
			want:  handSigned(testKey(1), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, `{"id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W","type":"order.updated","data":{"n":1}}`),
		},
		{
			name:  "empty body",
			key:   testKey(2),
			msgID: "e1",
			ts:    time.Unix(1, 0),
			body:  "",
			want:  handSigned(testKey(2), "e1", 1, ""),
		},
		{
			// The vector published with the Standard Webhooks reference
			// libraries: matching it is what says a receiver's own library
			// accepts what hookstream sends.
			name:  "standard webhooks vector",
			key:   mustBase64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
			msgID: "msg_p5jXN8AQM9LWM0D4loKWxJek",
			ts:    time.Unix(1614265330, 0),
			body:  `{"test": 2432232314}`,
			want:  "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := webhook.NewSigner(tt.key).Sign(tt.msgID, tt.ts, []byte(tt.body))
			if got != tt.want {
				t.Fatalf("Sign = %q, want %q", got, tt.want)
			}
		})
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignRotation(t *testing.T) {
	t.Parallel()

	oldKey, newKey, otherKey := testKey(10), testKey(20), testKey(30)
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"rotating":true}`)
	header := webhook.NewSigner(oldKey, newKey).Sign("evt_1", ts, body)

	entries := strings.Split(header, " ")
	wantEntries := []string{
		handSigned(oldKey, "evt_1", ts.Unix(), string(body)),
		handSigned(newKey, "evt_1", ts.Unix(), string(body)),
	}
	if len(entries) != 2 || entries[0] != wantEntries[0] || entries[1] != wantEntries[1] {
		t.Fatalf("Sign = %q, want the entries %q separated by one space", header, wantEntries)
	}

	tests := []struct {
		name string
		keys [][]byte
		ok   bool
	}{
		{name: "receiver with old key", keys: [][]byte{oldKey}, ok: true},
		{name: "receiver with new key", keys: [][]byte{newKey}, ok: true},
		{name: "receiver with both", keys: [][]byte{otherKey, newKey}, ok: true},
		{name: "receiver with another key", keys: [][]byte{otherKey}, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := webhook.Verify("evt_1", "1700000000", header, body, ts, webhook.DefaultTolerance, tt.keys...)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("Verify accepted a signature made with other keys")
			}
		})
	}
}

func TestSignNoKeys(t *testing.T) {
	t.Parallel()

	if got := webhook.NewSigner().Sign("evt", time.Unix(1, 0), nil); got != "" {
		t.Fatalf("Sign without keys = %q, want \"\"", got)
	}
}

func TestNewSignerCopiesKeys(t *testing.T) {
	t.Parallel()

	key := testKey(40)
	want := handSigned(testKey(40), "evt", 5, "b")
	s := webhook.NewSigner(key)
	key[0] ^= 0xff // a caller reusing its buffer must not change the signer
	if got := s.Sign("evt", time.Unix(5, 0), []byte("b")); got != want {
		t.Fatalf("Sign after the caller changed its key slice = %q, want %q", got, want)
	}
}

// TestSignConcurrent lets -race check that pooled HMAC states are never shared.
func TestSignConcurrent(t *testing.T) {
	t.Parallel()

	k1, k2 := testKey(50), testKey(60)
	s := webhook.NewSigner(k1, k2)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := "evt_" + strconv.Itoa(g) + "_" + strconv.Itoa(i)
				body := bytes.Repeat([]byte{byte(i)}, i)
				want := handSigned(k1, id, int64(i), string(body)) + " " + handSigned(k2, id, int64(i), string(body))
				if got := s.Sign(id, time.Unix(int64(i), 0), body); got != want {
					t.Errorf("Sign(%s) = %q, want %q", id, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	ts := time.Unix(1700000000, 0)
	for _, n := range []int{1, 2} {
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = testKey(byte(i))
		}
		s := webhook.NewSigner(keys...)
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_ = s.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
			}
		})
	}
}

// NewSigner refuses to sign with a key anyone could sign with too.
func TestNewSignerPanicsOnShortKey(t *testing.T) {
	t.Parallel()
	for _, keys := range [][][]byte{{nil}, {{}}, {testKey(1)[:23]}, {testKey(1), {}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewSigner(%d keys, last %d bytes) did not panic", len(keys), len(keys[len(keys)-1]))
				}
			}()
			webhook.NewSigner(keys...)
		}()
	}
}
