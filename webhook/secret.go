package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix starts every endpoint secret, so that a secret pasted in the
// wrong place is recognisable and the format can change under a new prefix.
const SecretPrefix = "whsec_"

// Key sizes, in decoded bytes. The bounds are the Standard Webhooks ones (a
// secret is whsec_ and the base64 of 24 to 64 random bytes): below 24 bytes
// (192 bits) a key is short of the margin HMAC-SHA256 is meant to keep, and
// an empty one is no key at all (anyone can sign with it); above 64 HMAC
// hashes the key down to 32 bytes anyway, so a longer one only wastes space.
// Every function of this package that takes a key refuses one outside them.
const (
	MinKeyLen       = 24
	MaxKeyLen       = 64
	generatedKeyLen = 32
)

// ErrInvalidSecret is wrapped by every ParseSecret error; the message around
// it says what is wrong with the secret (never the secret itself).
var ErrInvalidSecret = errors.New("invalid webhook secret")

// ErrInvalidKey is wrapped by the errors of Verify, VerifyRequest and
// CheckKey for a key outside MinKeyLen to MaxKeyLen bytes, or no key at all:
// a receiver set up that way (an unset WEBHOOK_SECRET whose parse error was
// dropped, say) must refuse every request rather than accept one signed with
// the empty key.
var ErrInvalidKey = errors.New("invalid webhook key")

// CheckKey returns an error wrapping ErrInvalidKey when key is shorter than
// MinKeyLen or longer than MaxKeyLen bytes. ParseSecret's keys always pass.
func CheckKey(key []byte) error {
	if len(key) < MinKeyLen || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidKey, len(key), MinKeyLen, MaxKeyLen)
	}
	return nil
}

// GenerateSecret returns a new secret: SecretPrefix followed by the standard
// padded base64 of 32 random bytes from crypto/rand.
func GenerateSecret() (string, error) {
	key := make([]byte, generatedKeyLen)
	if _, err := rand.Read(key); err != nil {
		// crypto/rand does not fail on supported platforms since Go 1.24; the
		// error is kept so that callers need not change if that ever differs.
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret validates a secret and returns its key bytes. The secret must
// carry SecretPrefix and be followed by standard padded base64 of 24 to 64
// bytes: the empty string (an unset environment variable) and "whsec_" alone
// are errors, never an empty key. Errors wrap ErrInvalidSecret.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	// The base64 decoder silently skips CR and LF; a secret that carries them
	// was mangled on its way here, and accepting it would give one key two
	// spellings.
	if strings.ContainsAny(enc, "\r\n") {
		return nil, fmt.Errorf("%w: contains a line break", ErrInvalidSecret)
	}
	// Strict rejects non-zero padding bits, so each key has exactly one
	// spelling and two secrets that differ as strings differ as keys.
	key, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		// The decoder's message gives only the offset of the bad byte, which
		// helps and does not leak the secret.
		return nil, fmt.Errorf("%w: not standard padded base64: %w", ErrInvalidSecret, err)
	}
	if len(key) < MinKeyLen || len(key) > MaxKeyLen {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinKeyLen, MaxKeyLen)
	}
	return key, nil
}
