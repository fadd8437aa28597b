package endpoints

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Defaults of Config.
const (
	// SecretOverlapDefault is how long a rotated-out secret keeps signing
	// next to its successor, time for receivers to switch keys.
	SecretOverlapDefault = 24 * time.Hour
	// MaxEventTypesDefault bounds the type filters of one endpoint.
	MaxEventTypesDefault = 64
	// ConcurrencyDefault is the in-flight limit an endpoint created with
	// concurrency 0 gets from the dispatcher.
	ConcurrencyDefault = 10
)

// Limits of an endpoint's fields.
const (
	maxURLLength         = 2048
	maxDescriptionLength = 1024
	maxRateLimit         = 100000
	maxConcurrency       = 1000
	maxIDLength          = 128
)

// Config configures a Registry.
type Config struct {
	// JS is the JetStream context the buckets and the attempt log are read
	// and written through. Required.
	JS jetstream.JetStream
	// AllowPrivate allows endpoint URLs whose host is an IP literal on a
	// loopback, private, link-local or otherwise internal address
	// (--allow-private-endpoints). Defaults to false.
	AllowPrivate bool
	// SecretOverlap is how long a rotated-out secret keeps signing.
	// Defaults to SecretOverlapDefault (24h).
	SecretOverlap time.Duration
	// MaxEventTypes is the most type filters an endpoint may have.
	// Defaults to MaxEventTypesDefault (64).
	MaxEventTypes int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// NewID makes the id of a new endpoint; it must return a NATS subject
	// token of letters, digits, '_' and '-'. Defaults to "ep_" followed by 26
	// crypto-random lower-case base32 characters.
	NewID func() string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.SecretOverlap == 0 {
		c.SecretOverlap = SecretOverlapDefault
	}
	if c.MaxEventTypes == 0 {
		c.MaxEventTypes = MaxEventTypesDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = newID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("js: required"))
	}
	if c.SecretOverlap < 0 {
		errs = append(errs, fmt.Errorf("secret-overlap: must not be negative, got %s", c.SecretOverlap))
	}
	if c.MaxEventTypes < 0 {
		errs = append(errs, fmt.Errorf("max-event-types: must not be negative, got %d", c.MaxEventTypes))
	}
	return errors.Join(errs...)
}

// newID returns a new endpoint id, "ep_" and 26 random characters.
func newID() string { return streams.NewID("ep_") }

// validID reports whether id can be an endpoint id: a non-empty subject
// token of letters, digits, '_' and '-'. Anything else cannot name a stored
// endpoint, so the routes answer it 404 without asking the store.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
