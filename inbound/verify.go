package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrSignature is wrapped by every refusal of a push's authenticity: a
// missing or malformed signature header, a signature that matches no secret,
// a stale timestamp, a receiver without a usable secret. The ingest route
// answers it 401 and stores nothing. The messages around it name the header
// and what is wrong, never a secret or the expected signature.
var ErrSignature = errors.New("signature refused")

// VerifyDiscourse checks X-Discourse-Event-Signature's value: "sha256=" and
// the hex HMAC-SHA256 of body under one of secrets.
func VerifyDiscourse(value string, body []byte, secrets ...[]byte) error {
	return verifyHex(HeaderDiscourseSignature, value, true, body, secrets)
}

// VerifyGitHub checks X-Hub-Signature-256's value: "sha256=" and the hex
// HMAC-SHA256 of body under one of secrets.
func VerifyGitHub(value string, body []byte, secrets ...[]byte) error {
	return verifyHex(HeaderGitHubSignature, value, true, body, secrets)
}

// VerifyHMACSHA256 checks a configured header's value (named header in the
// errors): the hex HMAC-SHA256 of body under one of secrets, alone or after
// "sha256=" (providers write both).
func VerifyHMACSHA256(header, value string, body []byte, secrets ...[]byte) error {
	return verifyHex(header, value, false, body, secrets)
}

// verifyHex checks value, the hex HMAC-SHA256 of body, against every secret.
// Hex digits may be of either case. Every secret must pass
// checkSharedSecret, and there must be one: a receiver set up without its
// secret refuses every push instead of accepting those signed with an empty
// key.
func verifyHex(header, value string, prefixRequired bool, body []byte, secrets [][]byte) error {
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrSignature)
	}
	for i, s := range secrets {
		if err := checkSharedSecret(string(s)); err != nil {
			return fmt.Errorf("%w: secret %d: %v", ErrSignature, i+1, err)
		}
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return fmt.Errorf("%w: %s: missing", ErrSignature, header)
	}
	hexSig, hadPrefix := strings.CutPrefix(value, sigPrefix)
	if prefixRequired && !hadPrefix {
		return fmt.Errorf("%w: %s: must start with %q", ErrSignature, header, sigPrefix)
	}
	var got [sha256.Size]byte
	if len(hexSig) != sha256HexBytes {
		return fmt.Errorf("%w: %s: want %d hex digits, got %d characters", ErrSignature, header, sha256HexBytes, len(hexSig))
	}
	if _, err := hex.Decode(got[:], []byte(hexSig)); err != nil {
		return fmt.Errorf("%w: %s: not hex", ErrSignature, header)
	}
	var want [sha256.Size]byte
	match := false
	for _, s := range secrets {
		h := hmac.New(sha256.New, s)
		h.Write(body)
		h.Sum(want[:0])
		// Every secret is compared, and in constant time, so that neither
		// the time taken nor which secret matched tells a forger anything.
		if hmac.Equal(got[:], want[:]) {
			match = true
		}
	}
	if !match {
		return fmt.Errorf("%w: %s: does not match the body", ErrSignature, header)
	}
	return nil
}
