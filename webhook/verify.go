package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a request's timestamp may be from the
// receiver's clock, in either direction, before it is refused as a replay (or
// as sent by a sender whose clock is wrong).
const DefaultTolerance = 5 * time.Minute

// Verification errors, for errors.Is. The messages around them say which
// header is wrong and how.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature is
	// absent or empty.
	ErrMissingHeaders = errors.New("missing webhook headers")
	// ErrTimestamp: webhook-timestamp is missing, not unix seconds, or outside
	// the tolerance. A missing timestamp is both ErrMissingHeaders and
	// ErrTimestamp.
	ErrTimestamp = errors.New("bad webhook timestamp")
	// ErrNoValidSignature: no "v1" entry of webhook-signature matches any key.
	ErrNoValidSignature = errors.New("no valid webhook signature")
)

// Verify checks a received webhook: timestamp (the webhook-timestamp header,
// unix seconds) must be within tolerance of now in either direction, and at
// least one "v1," entry of sigHeader (space-separated) must be the signature of
// msgID, timestamp and body under one of keys. Entries of other versions are
// ignored, so that a sender may add a scheme without breaking receivers. A
// tolerance of zero or less means DefaultTolerance.
//
// Every key must pass CheckKey, and at least one must be given: otherwise
// every request is refused with an error wrapping ErrInvalidKey, before the
// request is looked at, so a receiver whose secret is missing fails closed
// (and says why) instead of accepting requests signed with an empty key.
//
// The timestamp is checked before any HMAC is computed, so a stale or forged
// flood costs the receiver little.
func Verify(msgID, timestamp, sigHeader string, body []byte, now time.Time, tolerance time.Duration, keys ...[]byte) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: %w: no keys to verify with", ErrInvalidKey, ErrNoValidSignature)
	}
	for i, key := range keys {
		if err := CheckKey(key); err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	switch {
	case msgID == "":
		return fmt.Errorf("%w: %s is empty", ErrMissingHeaders, HeaderID)
	case timestamp == "":
		return fmt.Errorf("%w: %w: %s is empty", ErrMissingHeaders, ErrTimestamp, HeaderTimestamp)
	case sigHeader == "":
		return fmt.Errorf("%w: %s is empty", ErrMissingHeaders, HeaderSignature)
	}
	if err := checkTimestamp(timestamp, now, tolerance); err != nil {
		return err
	}

	// Compute each key's MAC once, then compare it against every entry.
	signed := appendSigned(make([]byte, 0, len(msgID)+len(timestamp)+2), msgID, timestamp)
	want := make([][sha256.Size]byte, len(keys))
	for i, key := range keys {
		h := hmac.New(sha256.New, key)
		h.Write(signed)
		h.Write(body)
		h.Sum(want[i][:0])
	}

	var got [sha256.Size + 1]byte // base64 decoding needs DecodedLen(44) = 33 bytes of room
	for entry := range strings.FieldsSeq(sigHeader) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != sigVersion || len(sig) != sigB64Len {
			continue
		}
		n, err := base64.StdEncoding.Decode(got[:], []byte(sig))
		if err != nil || n != sha256.Size {
			continue
		}
		for i := range want {
			// hmac.Equal compares in constant time, so a forger learns nothing
			// from how long a near miss took to refuse.
			if hmac.Equal(got[:n], want[i][:]) {
				return nil
			}
		}
	}
	return ErrNoValidSignature
}

// checkTimestamp parses timestamp as unix seconds and checks it against now.
func checkTimestamp(timestamp string, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Only plain decimal digits: ParseInt alone would also take a sign, and a
	// sender never writes one.
	for i := 0; i < len(timestamp); i++ {
		if timestamp[i] < '0' || timestamp[i] > '9' {
			return fmt.Errorf("%w: %s %.32q is not unix seconds", ErrTimestamp, HeaderTimestamp, timestamp)
		}
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %.32q is not unix seconds", ErrTimestamp, HeaderTimestamp, timestamp)
	}
	// Sub saturates instead of overflowing, so an absurd timestamp is just far off.
	skew := now.Sub(time.Unix(secs, 0))
	if skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: %s %d is %s from now, more than the tolerance of %s",
			ErrTimestamp, HeaderTimestamp, secs, skew.Abs().Truncate(time.Second), tolerance)
	}
	return nil
}

// VerifyRequest reads webhook-id, webhook-timestamp and webhook-signature from
// h and calls Verify with them. Several webhook-signature lines are taken as
// one space-separated list, as a proxy may have split them. Like Verify, it
// refuses every request when a key is empty or short (ErrInvalidKey).
func VerifyRequest(h http.Header, body []byte, now time.Time, tolerance time.Duration, keys ...[]byte) error {
	sig := h.Get(HeaderSignature)
	if vs := h.Values(HeaderSignature); len(vs) > 1 {
		sig = strings.Join(vs, " ")
	}
	return Verify(h.Get(HeaderID), h.Get(HeaderTimestamp), sig, body, now, tolerance, keys...)
}
