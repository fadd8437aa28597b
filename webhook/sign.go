package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of a Standard Webhooks request, lower-case as the standard
// writes them; net/http canonicalises them on the wire either way.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// The one signature scheme of the standard: "v1," and the base64 of a 32-byte
// HMAC-SHA256.
const (
	sigVersion = "v1"
	sigB64Len  = 44 // base64.StdEncoding.EncodedLen(sha256.Size)
	sigEntry   = len(sigVersion) + 1 + sigB64Len
)

// Signer signs outgoing requests with one or more keys: one normally, two
// while a secret is rotated, so that a receiver holding either secret accepts
// the request. Build one per endpoint and reuse it: Sign is safe for
// concurrent use, and reusing keyed HMAC states across calls is what keeps it
// from allocating per key on the delivery hot path. A Signer must not be
// copied after first use.
type Signer struct {
	keys []signingKey
}

type signingKey struct {
	// pool holds *macState keyed with this key. hmac.New costs a hash state
	// and both pads per call; a pooled state is Reset to the keyed state
	// instead, and the pool keeps concurrent Sign calls off each other's state.
	pool sync.Pool
}

// macState is one keyed HMAC and the scratch space to feed it.
type macState struct {
	h   hash.Hash
	buf []byte // "<msgID>.<timestamp>."
	sum []byte
}

// NewSigner returns a Signer for keys, in the order their signatures appear in
// the header. Keys are normally the results of ParseSecret; they are copied,
// so the caller may reuse the slices. With no keys, Sign returns "".
//
// NewSigner panics on a key that CheckKey refuses (an empty or short one):
// signing with it would hand out signatures anyone can forge, and a key that
// did not come through ParseSecret or CheckKey is a programming error, like a
// bad pattern given to regexp.MustCompile.
func NewSigner(keys ...[]byte) *Signer {
	s := &Signer{keys: make([]signingKey, len(keys))}
	for i, k := range keys {
		if err := CheckKey(k); err != nil {
			panic(fmt.Sprintf("webhook.NewSigner: key %d: %v", i+1, err))
		}
		key := append([]byte(nil), k...)
		s.keys[i].pool.New = func() any {
			return &macState{
				h:   hmac.New(sha256.New, key),
				buf: make([]byte, 0, 64),
				sum: make([]byte, 0, sha256.Size),
			}
		}
	}
	return s
}

// Sign returns the webhook-signature header value for one attempt:
// "v1,<base64 HMAC-SHA256(key, msgID+"."+unix seconds of ts+"."+body)>" for each
// key, separated by single spaces.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	if len(s.keys) == 0 {
		return ""
	}
	var tsBuf [20]byte // the longest int64 in decimal
	unix := strconv.AppendInt(tsBuf[:0], ts.Unix(), 10)

	var b strings.Builder
	b.Grow(len(s.keys)*(sigEntry+1) - 1)
	var enc [sigB64Len]byte
	for i := range s.keys {
		pool := &s.keys[i].pool
		st := pool.Get().(*macState)
		st.buf = appendSigned(st.buf[:0], msgID, unix)
		st.h.Reset()
		st.h.Write(st.buf)
		st.h.Write(body)
		st.sum = st.h.Sum(st.sum[:0])
		base64.StdEncoding.Encode(enc[:], st.sum)
		pool.Put(st)

		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sigVersion)
		b.WriteByte(',')
		b.Write(enc[:])
	}
	return b.String()
}

// appendSigned appends what precedes the body in the signed content,
// "<msgID>.<timestamp>.". The timestamp is taken as the header carries it: a
// receiver verifies the characters it received, not a re-formatted number.
func appendSigned[T string | []byte](dst []byte, msgID string, timestamp T) []byte {
	dst = append(dst, msgID...)
	dst = append(dst, '.')
	dst = append(dst, timestamp...)
	return append(dst, '.')
}
