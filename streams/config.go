package streams

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config. Each is documented on the field it fills.
const (
	ReplicasDefault            = 1
	EventsMaxAgeDefault        = 7 * 24 * time.Hour
	DedupWindowDefault         = 10 * time.Minute
	DLQMaxAgeDefault           = 30 * 24 * time.Hour
	RetryMaxAgeDefault         = 24 * time.Hour
	DeliveriesMarginDefault    = 24 * time.Hour
	AttemptsMaxAgeDefault      = 7 * 24 * time.Hour
	AttemptsPerEndpointDefault = 1000
	MaxEventDataDefault        = 1 << 20
	// EmbeddedMaxPayload is the embedded server's max_payload: large enough
	// that an envelope and a dead-letter record around a maximal event fit.
	EmbeddedMaxPayload = 8 << 20
	// envelopeOverhead is what a dead-letter record adds around an event's
	// data at most: the event's other fields, 25 attempts with their errors
	// and body excerpts, and msgpack framing.
	envelopeOverhead = 256 << 10
)

// Config sets the retention, duplicate window and replication of every
// stream and bucket. Durations are derived from it so that tests can scale
// the whole 30 s … 24 h schedule down to milliseconds and still create valid
// streams.
type Config struct {
	// Replicas is the replica count of every stream and bucket: 1 on a single
	// node, 3 on a cluster. Defaults to ReplicasDefault (1).
	Replicas int
	// EventsMaxAge is how long EVENTS keeps an event. Defaults to 7 days.
	EventsMaxAge time.Duration
	// DedupWindow is the window in which a re-published event id (or a
	// re-made delivery) is answered as a duplicate and stored once. Capped at
	// the stream's MaxAge, as the server requires. Defaults to 10 minutes.
	DedupWindow time.Duration
	// DLQMaxAge is how long a dead-letter record is kept. Defaults to 30 days.
	DLQMaxAge time.Duration
	// RetryMaxAge is the give-up age of a delivery. DELIVERIES keeps messages
	// for RetryMaxAge + DeliveriesMargin so that the stream's MaxAge never
	// deletes a delivery that still waits for its final attempt. Defaults to
	// 24 hours.
	RetryMaxAge time.Duration
	// DeliveriesMargin is how long past RetryMaxAge DELIVERIES keeps a
	// message, time for a dispatcher that was down to dead-letter it.
	// Defaults to 24 hours.
	DeliveriesMargin time.Duration
	// AttemptsMaxAge is how long the attempt log keeps an attempt. Defaults
	// to 7 days.
	AttemptsMaxAge time.Duration
	// AttemptsPerEndpoint is how many attempts the log keeps per endpoint.
	// Defaults to 1000.
	AttemptsPerEndpoint int
	// MaxEventData is the largest event data accepted, in bytes; the NATS
	// server's max_payload must leave room for it inside a dead-letter
	// record. Defaults to 1 MiB.
	MaxEventData int
	// UpdateStreams lets Ensure shrink settings that shape stored data
	// (a stream's max age, duplicate window or replicas, a bucket's TTL):
	// without it a role started with smaller values refuses to start and
	// names the setting. Defaults to false.
	UpdateStreams bool
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = ReplicasDefault
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = EventsMaxAgeDefault
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DedupWindowDefault
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = DLQMaxAgeDefault
	}
	if c.RetryMaxAge == 0 {
		c.RetryMaxAge = RetryMaxAgeDefault
	}
	if c.DeliveriesMargin == 0 {
		c.DeliveriesMargin = DeliveriesMarginDefault
	}
	if c.AttemptsMaxAge == 0 {
		c.AttemptsMaxAge = AttemptsMaxAgeDefault
	}
	if c.AttemptsPerEndpoint == 0 {
		c.AttemptsPerEndpoint = AttemptsPerEndpointDefault
	}
	if c.MaxEventData == 0 {
		c.MaxEventData = MaxEventDataDefault
	}
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas: must be 1 to 5, got %d", c.Replicas))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"events-max-age", c.EventsMaxAge}, {"dedup-window", c.DedupWindow}, {"dlq-max-age", c.DLQMaxAge},
		{"retry-max-age", c.RetryMaxAge}, {"deliveries-margin", c.DeliveriesMargin}, {"attempts-max-age", c.AttemptsMaxAge},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.name, d.v))
		}
	}
	if c.AttemptsPerEndpoint < 0 {
		errs = append(errs, fmt.Errorf("attempts-per-endpoint: must not be negative, got %d", c.AttemptsPerEndpoint))
	}
	if c.MaxEventData < 0 || c.MaxEventData > 64<<20 {
		errs = append(errs, fmt.Errorf("max-event-data: must be 1 byte to 64 MiB, got %d", c.MaxEventData))
	}
	return errors.Join(errs...)
}

// DeliveriesMaxAge is the MaxAge of DELIVERIES.
func (c Config) DeliveriesMaxAge() time.Duration { return c.RetryMaxAge + c.DeliveriesMargin }

// RequiredMaxPayload is the smallest server max_payload that holds a
// dead-letter record around the largest event data allowed.
func (c Config) RequiredMaxPayload() int64 { return int64(c.MaxEventData) + envelopeOverhead }

// dedupFor caps the duplicate window at a stream's MaxAge, which the server
// requires.
func (c Config) dedupFor(maxAge time.Duration) time.Duration {
	if maxAge > 0 && c.DedupWindow > maxAge {
		return maxAge
	}
	return c.DedupWindow
}
