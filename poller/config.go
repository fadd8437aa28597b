package poller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/inbound"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// Defaults of Config and of a source's settings.
const (
	// IntervalDefault is how often a source is polled when it names no
	// interval.
	IntervalDefault = time.Minute
	// ExpectedWindowDefault is how long a source may stay silent before it
	// is polled at once.
	ExpectedWindowDefault = 15 * time.Minute
	// MaxBackoffDefault caps the back-off of an unreachable or
	// auth_required source.
	MaxBackoffDefault = 30 * time.Minute
	// UnreachableAfterDefault is how many polls in a row must fail to reach
	// a source, or to read its page, before it is unreachable.
	UnreachableAfterDefault = 3
	// MaxPagesPerPollDefault bounds how many has_more pages one poll follows.
	MaxPagesPerPollDefault = 100
	// RequestTimeoutDefault bounds one page request.
	RequestTimeoutDefault = 30 * time.Second
	// TickDefault is the scheduler's resolution.
	TickDefault = time.Second
	// MinIntervalDefault is the smallest interval or expected window the API
	// accepts.
	MinIntervalDefault = time.Second
	// LeaseTTLDefault is how long a poll lease lives if its holder dies.
	LeaseTTLDefault = 30 * time.Second
	// MaxEventDataDefault is the largest change data accepted: 1 MiB.
	MaxEventDataDefault = streams.MaxEventDataDefault
	// RewatchMaxDefault caps the back-off between attempts to open again a
	// bucket watch that ended.
	RewatchMaxDefault = 5 * time.Second
	// SecretOverlapDefault is how long a source's rotated-out inbound
	// secret still verifies pushes, as an endpoint's keeps signing.
	SecretOverlapDefault = 24 * time.Hour
	// IngestToleranceDefault is how far a standard push's webhook-timestamp
	// may be from the clock: the Standard Webhooks 5 minutes.
	IngestToleranceDefault = inbound.ToleranceDefault
)

const (
	// minLeaseTTL is the smallest per-key TTL the server honours.
	minLeaseTTL = time.Second
	// maxConcurrentPolls bounds the polls one poller runs at once, so that a
	// thousand sources due at the same tick do not open a thousand requests.
	maxConcurrentPolls = 16
	// feedConnsPerHost is the default client's idle connections per feed
	// host: a source is polled by one request at a time.
	feedConnsPerHost = 4
)

// Config configures a Poller.
type Config struct {
	// JS is the JetStream context sources, state and events are kept with.
	// Required.
	JS jetstream.JetStream
	// AllowPrivate allows changes_urls on loopback, private and other
	// internal addresses (--allow-private-endpoints). It is checked when a
	// source is created or changed and again, after DNS, whenever the default
	// HTTPClient dials. Defaults to false.
	AllowPrivate bool
	// IntervalDefault is a source's poll interval when it names none.
	// Defaults to IntervalDefault (1 minute).
	IntervalDefault time.Duration
	// ExpectedWindowDefault is a source's expected window when it names
	// none. Defaults to ExpectedWindowDefault (15 minutes).
	ExpectedWindowDefault time.Duration
	// MaxBackoff caps the back-off of an unreachable or auth_required
	// source's polls (a source whose interval is longer is polled at its
	// interval). Defaults to MaxBackoffDefault (30 minutes).
	MaxBackoff time.Duration
	// RequestTimeout bounds one page request (and the wait for its publish
	// acks). Defaults to RequestTimeoutDefault (30 seconds).
	RequestTimeout time.Duration
	// UnreachableAfter is how many polls in a row must fail to reach a
	// source or read its page (connection error, timeout, 5xx, a page that
	// is not one) before it is unreachable. Defaults to
	// UnreachableAfterDefault (3).
	UnreachableAfter int
	// MaxPagesPerPoll bounds the has_more pages one poll follows; a source
	// with more is polled again at the next tick. Defaults to
	// MaxPagesPerPollDefault (100).
	MaxPagesPerPoll int
	// Tick is the scheduler's resolution: how often it looks for due
	// sources and unpublished status changes. Defaults to TickDefault (1s);
	// tests set a few milliseconds.
	Tick time.Duration
	// MinInterval is the smallest interval and expected window the API
	// accepts. Defaults to MinIntervalDefault (1s); tests set 1ms.
	MinInterval time.Duration
	// LeaseTTL is how long a poll lease outlives a poller that died holding
	// it; several pollers never poll one source at once. At least 1s.
	// Defaults to LeaseTTLDefault (30s).
	LeaseTTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// HTTPClient polls HTTP sources. It should not follow redirects and
	// should refuse internal addresses unless AllowPrivate. Defaults to
	// netguard.NewClient(&netguard.Dialer{AllowPrivate: AllowPrivate}, 4,
	// RequestTimeout).
	HTTPClient *http.Client
	// Logger defaults to slog.Default(). Source headers and URLs are never
	// logged.
	Logger *slog.Logger
	// MaxEventData is the largest change data accepted, in bytes; a page
	// with a larger one is refused as a bad feed. It should match the
	// streams configuration's MaxEventData. Defaults to MaxEventDataDefault
	// (1 MiB).
	MaxEventData int
	// RewatchMax caps the back-off between attempts to open again a watch
	// of the sources, source state or endpoint health bucket that ended
	// (from 100ms, doubling). Defaults to RewatchMaxDefault (5s).
	RewatchMax time.Duration
	// SecretOverlap is how long an inbound secret replaced by
	// POST /v1/sources/{id}/rotate-secret still verifies pushes, so that
	// the provider's settings can be changed after hookstream's
	// (--secret-overlap). Defaults to SecretOverlapDefault (24h).
	SecretOverlap time.Duration
	// IngestTolerance is how far a standard push's webhook-timestamp may be
	// from Now before it is refused as a replay. Defaults to
	// IngestToleranceDefault (5 minutes).
	IngestTolerance time.Duration
	// Metrics registers hookstream_inbound_pushes_total. Defaults to nil:
	// no metrics.
	Metrics prometheus.Registerer
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.IntervalDefault == 0 {
		c.IntervalDefault = IntervalDefault
	}
	if c.ExpectedWindowDefault == 0 {
		c.ExpectedWindowDefault = ExpectedWindowDefault
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = MaxBackoffDefault
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = UnreachableAfterDefault
	}
	if c.MaxPagesPerPoll == 0 {
		c.MaxPagesPerPoll = MaxPagesPerPollDefault
	}
	if c.Tick == 0 {
		c.Tick = TickDefault
	}
	if c.MinInterval == 0 {
		c.MinInterval = MinIntervalDefault
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = LeaseTTLDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = netguard.NewClient(&netguard.Dialer{AllowPrivate: c.AllowPrivate}, feedConnsPerHost, c.RequestTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxEventData == 0 {
		c.MaxEventData = MaxEventDataDefault
	}
	if c.RewatchMax == 0 {
		c.RewatchMax = RewatchMaxDefault
	}
	if c.SecretOverlap == 0 {
		c.SecretOverlap = SecretOverlapDefault
	}
	if c.IngestTolerance == 0 {
		c.IngestTolerance = IngestToleranceDefault
	}
	return c
}

// validate reports every invalid field by name.
func (c Config) validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("js: required"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"interval-default", c.IntervalDefault}, {"expected-window-default", c.ExpectedWindowDefault},
		{"max-backoff", c.MaxBackoff}, {"request-timeout", c.RequestTimeout}, {"tick", c.Tick},
		{"min-interval", c.MinInterval}, {"rewatch-max", c.RewatchMax},
		{"secret-overlap", c.SecretOverlap}, {"ingest-tolerance", c.IngestTolerance},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	if c.LeaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("lease-ttl: must be at least %s, got %s", minLeaseTTL, c.LeaseTTL))
	}
	if c.UnreachableAfter < 1 {
		errs = append(errs, fmt.Errorf("unreachable-after: must be at least 1, got %d", c.UnreachableAfter))
	}
	if c.MaxPagesPerPoll < 1 {
		errs = append(errs, fmt.Errorf("max-pages-per-poll: must be at least 1, got %d", c.MaxPagesPerPoll))
	}
	if c.MaxEventData < 1 || c.MaxEventData > 64<<20 {
		errs = append(errs, fmt.Errorf("max-event-data: must be 1 byte to 64 MiB, got %d", c.MaxEventData))
	}
	return errors.Join(errs...)
}
