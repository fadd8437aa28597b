package inbound

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/hookstream/hookstream/webhook"
)

// Bounds of a shared secret (discourse, github, hmac-sha256), in bytes.
//
// The secret is the HMAC key, and the HMAC covers only the body: whoever saw
// one signed push (a proxy's log, a provider's delivery page) can test
// guesses of the secret offline, as fast as they can hash. 16 bytes of
// random characters are far out of reach of that; the short, memorable
// secrets people type into a provider's settings page are not. Above 512
// bytes a secret is a paste gone wrong (HMAC hashes keys longer than 64
// bytes down to 32 anyway).
const (
	MinSharedSecret = 16
	MaxSharedSecret = 512
)

// generatedSharedBytes is the randomness of a generated shared secret,
// written as hex (64 characters), which every provider's settings accept.
const generatedSharedBytes = 32

// CheckSecret checks secret for format f. A standard secret is a whsec_
// secret (webhook.ParseSecret); the others are shared secrets of
// MinSharedSecret to MaxSharedSecret bytes of printable UTF-8 without
// surrounding space. The error never repeats the secret.
func CheckSecret(f Format, secret string) error {
	if f == Standard {
		if _, err := webhook.ParseSecret(secret); err != nil {
			return err
		}
		return nil
	}
	return checkSharedSecret(secret)
}

func checkSharedSecret(s string) error {
	switch {
	case len(s) < MinSharedSecret:
		return fmt.Errorf("must be at least %d bytes, got %d: a shorter one can be guessed offline from one signed push", MinSharedSecret, len(s))
	case len(s) > MaxSharedSecret:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxSharedSecret, len(s))
	case !utf8.ValidString(s):
		return fmt.Errorf("must be UTF-8 text")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			// A line break or tab in a secret is a paste gone wrong; the
			// provider's settings field would not keep it.
			return fmt.Errorf("must not contain control characters or line breaks")
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return fmt.Errorf("must not start or end with a space")
	}
	return nil
}

// GenerateSecret returns a new secret for format f: webhook.GenerateSecret's
// for standard, the hex of 32 random bytes for the others.
func GenerateSecret(f Format) (string, error) {
	if f == Standard {
		return webhook.GenerateSecret()
	}
	b := make([]byte, generatedSharedBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
