package dlq

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// scanBudgetDefault bounds the stream messages one list request (or one job
// step) reads, so that a sparse filter over a large DLQ costs a bounded
// amount per request; the caller continues from next_cursor.
const scanBudgetDefault = 10000

// saveTimeout bounds saving a job's progress after the runner was told to
// stop, so that Stop returns in bounded time.
const saveTimeout = 5 * time.Second

// Service serves dead-letter records and runs bulk replay jobs.
type Service struct {
	cfg       Config
	js        jetstream.JetStream
	dlq       jetstream.Stream
	states    jetstream.KeyValue
	endpoints jetstream.KeyValue
	jobs      jetstream.KeyValue
	// owner identifies this process's runner in the jobs it claims.
	owner string
	// scanBudget is scanBudgetDefault; tests lower it.
	scanBudget int
	// afterStep, when set (by tests), runs after each saved job step.
	afterStep func(ctx context.Context, j *job)

	nudge chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New checks cfg and looks up the streams and buckets the service uses. It
// does not start the bulk replay runner (Start does): an API-only process
// can serve every route, and jobs it creates are run by whichever process
// runs Start.
func New(ctx context.Context, cfg Config) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	s := &Service{
		cfg:        cfg,
		js:         cfg.JS,
		owner:      "runner_" + strings.ToLower(rand.Text()[:16]),
		scanBudget: scanBudgetDefault,
		nudge:      make(chan struct{}, 1),
	}
	var err error
	if s.dlq, err = cfg.JS.Stream(ctx, streams.StreamDLQ); err != nil {
		return nil, fmt.Errorf("dlq: stream %s: %w", streams.StreamDLQ, err)
	}
	for _, b := range []struct {
		name string
		to   *jetstream.KeyValue
	}{
		{streams.BucketDLQState, &s.states},
		{streams.BucketEndpoints, &s.endpoints},
		{streams.BucketReplayJobs, &s.jobs},
	} {
		if *b.to, err = cfg.JS.KeyValue(ctx, b.name); err != nil {
			return nil, fmt.Errorf("dlq: bucket %s: %w", b.name, err)
		}
	}
	return s, nil
}

// Start runs the bulk replay job runner in the background and returns at
// once.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return errors.New("dlq: start after stop")
	case s.started:
		return errors.New("dlq: already started")
	}
	s.started = true
	// The runner outlives Start's context, not Stop.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.done = make(chan struct{})
	go s.run(runCtx)
	s.cfg.Logger.Info("dlq replay runner started", "runner", s.owner)
	return nil
}

// Stop stops the runner: the job step in progress stops after its current
// record, saves its progress and gives up its lease, so that another process
// resumes it at once. Stop waits for that, bounded by ctx. It is idempotent
// and safe without Start.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dlq: stop: %w", ctx.Err())
	}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// storeErr wraps a failed NATS operation: any failure to read or write
// JetStream is, from the caller's point of view, "try again later" (503).
func storeErr(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, streams.ErrUnavailable, err)
}
