package dlq

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
	JobBatchDefault     = 100
	JobLeaseDefault     = 30 * time.Second
	PollIntervalDefault = time.Second
)

// jobBatchMax bounds JobBatch: a batch must finish well inside its lease.
const jobBatchMax = 1000

// Config configures a Service.
type Config struct {
	// JS is the JetStream connection; the DLQ and DELIVERIES streams and the
	// endpoint, dead-letter state and replay job buckets must exist. Required.
	JS jetstream.JetStream
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// NewJobID makes bulk replay job ids. Defaults to "job_" + 26
	// crypto-random lower-case base32 characters.
	NewJobID func() string
	// JobBatch is how many records a bulk job replays per step; progress is
	// saved after each step. Defaults to JobBatchDefault (100).
	JobBatch int
	// JobLease is how long a runner owns a job before another may take it
	// over; each saved step renews it. Defaults to JobLeaseDefault (30s).
	JobLease time.Duration
	// PollInterval is how often the runner looks for unclaimed jobs (a job
	// created by this process is picked up at once). Defaults to
	// PollIntervalDefault (1s).
	PollInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewJobID == nil {
		c.NewJobID = newJobID
	}
	if c.JobBatch == 0 {
		c.JobBatch = JobBatchDefault
	}
	if c.JobLease == 0 {
		c.JobLease = JobLeaseDefault
	}
	if c.PollInterval == 0 {
		c.PollInterval = PollIntervalDefault
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
	if c.JobBatch < 1 || c.JobBatch > jobBatchMax {
		errs = append(errs, fmt.Errorf("job-batch: must be 1 to %d, got %d", jobBatchMax, c.JobBatch))
	}
	if c.JobLease <= 0 {
		errs = append(errs, fmt.Errorf("job-lease: must be positive, got %s", c.JobLease))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll-interval: must be positive, got %s", c.PollInterval))
	}
	return errors.Join(errs...)
}

// newJobID is "job_" + 26 crypto-random lower-case base32 characters.
func newJobID() string { return streams.NewID("job_") }
