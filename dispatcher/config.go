package dispatcher

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/netguard"
)

// Defaults of Config, as DESIGN.md states them.
const (
	DeliveryTimeoutDefault  = 10 * time.Second
	AckWaitDefault          = 30 * time.Second
	RetryInitialDefault     = 30 * time.Second
	RetryMaxIntervalDefault = 4 * time.Hour
	RetryMaxAgeDefault      = 24 * time.Hour
	RetryMinDelayDefault    = time.Second
	JitterDefault           = 0.2
	FailingAfterDefault     = 5
	ConcurrencyDefault      = 10
	MaxAckPendingDefault    = 20000
	PullWaitDefault         = 10 * time.Second
	FanoutBatchDefault      = 256
	AttemptLogFlushDefault  = 20 * time.Millisecond
	// MemberTTLDefault is MemberTTL's default with the default
	// DeliveryTimeout; a longer DeliveryTimeout makes it 3 × that.
	MemberTTLDefault = 30 * time.Second
	// ResponseBodyLimit is how much of a response body is read; the rest is
	// discarded with the connection.
	ResponseBodyLimit = 64 << 10
	// AttemptBodyLimit is how much of it the attempt log keeps.
	AttemptBodyLimit = 4 << 10
	// DeadLetterBodyLimit is how much of it a dead-letter record keeps per
	// attempt.
	DeadLetterBodyLimit = 1 << 10
)

// Config configures a Dispatcher: the fan-out from EVENTS to DELIVERIES and
// the delivery of DELIVERIES to endpoints.
type Config struct {
	// JS is the JetStream context. Required.
	JS jetstream.JetStream
	// DeliveryTimeout bounds one webhook request. Defaults to 10s.
	DeliveryTimeout time.Duration
	// AckWait is how long JetStream waits for a delivery's ack before it
	// sends it again (to any dispatcher); it must exceed DeliveryTimeout.
	// Defaults to 30s.
	AckWait time.Duration
	// RetryInitial is the first retry delay; delay n is RetryInitial ×
	// 2^(n−1) ± Jitter. Defaults to 30s.
	RetryInitial time.Duration
	// RetryMaxInterval caps a retry delay (and the spacing of probes).
	// Defaults to 4h.
	RetryMaxInterval time.Duration
	// RetryMaxAge is a delivery's give-up age, counted from its JetStream
	// timestamp. Defaults to 24h.
	RetryMaxAge time.Duration
	// RetryMinDelay is the shortest retry delay asked of JetStream, whatever
	// the schedule or a Retry-After says. Defaults to 1s; tests that scale
	// the schedule to milliseconds lower it.
	RetryMinDelay time.Duration
	// Jitter is the ± fraction applied to every retry delay. Defaults to
	// 0.2; set a negative value for none.
	Jitter float64
	// FailingAfter is how many consecutive failures make an endpoint
	// failing. Defaults to 5.
	FailingAfter int
	// Concurrency is an endpoint's deliveries in flight (across all
	// dispatchers) when it sets none itself. Defaults to 10.
	Concurrency int
	// MaxAckPending bounds an endpoint consumer's unacknowledged deliveries,
	// in flight and waiting for a retry. Defaults to 20000.
	MaxAckPending int
	// PullWait is how long one pull request waits for deliveries. Defaults
	// to 10s.
	PullWait time.Duration
	// FanoutBatch is how many events fan-out takes at once. Defaults to 256.
	FanoutBatch int
	// AttemptLogFlush is how long a successful attempt's log entry waits
	// to be stored with the endpoint's other successes (one ATTEMPTS
	// message per batch; a failed attempt is stored at once). Defaults to
	// 20ms.
	AttemptLogFlush time.Duration
	// MemberTTL is how long a dispatcher that stopped heartbeating still
	// counts, holding its share of the endpoints' concurrency. A dispatcher
	// whose own heartbeat has not been acknowledged for about MemberTTL/2
	// starts no send (its sends in flight end within DeliveryTimeout), so
	// that the others never take over slots still in use: it must be above
	// 2 × DeliveryTimeout. Defaults to 30s, or 3 × DeliveryTimeout when that
	// is longer.
	MemberTTL time.Duration
	// Alone says that no other dispatcher can share these streams (serve on
	// an embedded NATS that listens nowhere): membership and slot records
	// found at start are then a previous run's (a crash, kill -9) and are
	// cleared, so a restart need not wait MemberTTL for the dead run's slots.
	// Defaults to false.
	Alone bool
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses (--allow-private-endpoints).
	AllowPrivate bool
	// Resolver resolves endpoint host names at dial time, where the
	// resolved addresses are checked (unless AllowPrivate). Defaults to the
	// system resolver; tests inject one.
	Resolver netguard.Resolver
	// UserAgent is sent with every webhook. Defaults to "hookstream/dev".
	UserAgent string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0,1) for jitter. Defaults to
	// math/rand/v2.
	Rand func() float64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// NoEndpointLabel leaves the endpoint label of the per-endpoint series
	// empty, for deployments with too many endpoints for a series each.
	// Defaults to false: every series names its endpoint.
	NoEndpointLabel bool
	// Metrics, when set, receives the dispatcher's metrics.
	Metrics prometheus.Registerer
	// Observer, when set, is told of every attempt and the retry delay asked
	// for; tests use it to check the schedule.
	Observer func(Outcome)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DeliveryTimeout, DeliveryTimeoutDefault)
	def(&c.AckWait, AckWaitDefault)
	def(&c.RetryInitial, RetryInitialDefault)
	def(&c.RetryMaxInterval, RetryMaxIntervalDefault)
	def(&c.RetryMaxAge, RetryMaxAgeDefault)
	def(&c.RetryMinDelay, RetryMinDelayDefault)
	def(&c.PullWait, PullWaitDefault)
	def(&c.AttemptLogFlush, AttemptLogFlushDefault)
	def(&c.MemberTTL, max(MemberTTLDefault, 3*c.DeliveryTimeout))
	if c.Jitter == 0 {
		c.Jitter = JitterDefault
	} else if c.Jitter < 0 {
		c.Jitter = 0
	}
	if c.FailingAfter == 0 {
		c.FailingAfter = FailingAfterDefault
	}
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = MaxAckPendingDefault
	}
	if c.FanoutBatch == 0 {
		c.FanoutBatch = FanoutBatchDefault
	}
	if c.UserAgent == "" {
		c.UserAgent = "hookstream/dev"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the settings, naming each invalid field (JS is checked
// by New, so that flags can be checked before anything connects).
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"delivery-timeout", c.DeliveryTimeout}, {"ack-wait", c.AckWait}, {"retry-initial", c.RetryInitial},
		{"retry-max-interval", c.RetryMaxInterval}, {"retry-max-age", c.RetryMaxAge}, {"retry-min-delay", c.RetryMinDelay}, {"pull-wait", c.PullWait},
		{"member-ttl", c.MemberTTL}, {"attempt-log-flush", c.AttemptLogFlush},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	if c.AckWait <= c.DeliveryTimeout {
		errs = append(errs, fmt.Errorf("ack-wait: %s must be above delivery-timeout %s, or a delivery still in flight would be sent again", c.AckWait, c.DeliveryTimeout))
	}
	if c.MemberTTL <= 2*c.DeliveryTimeout {
		errs = append(errs, fmt.Errorf("member-ttl: %s must be above 2 × delivery-timeout %s, or a dispatcher cut off from NATS could still be sending when the others take over its share of an endpoint's concurrency", c.MemberTTL, c.DeliveryTimeout))
	}
	if c.RetryMaxInterval < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry-max-interval: %s is below retry-initial %s", c.RetryMaxInterval, c.RetryInitial))
	}
	if c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("jitter: must be below 1, got %v", c.Jitter))
	}
	if c.FailingAfter < 1 {
		errs = append(errs, fmt.Errorf("failing-after: must be at least 1, got %d", c.FailingAfter))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("concurrency: must be 1 to 10000, got %d", c.Concurrency))
	}
	if c.MaxAckPending < c.Concurrency {
		errs = append(errs, fmt.Errorf("max-ack-pending: %d is below concurrency %d", c.MaxAckPending, c.Concurrency))
	}
	return errors.Join(errs...)
}
