package dlq

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	if c.JobBatch != JobBatchDefault || c.JobLease != JobLeaseDefault || c.PollInterval != PollIntervalDefault ||
		c.Now == nil || c.NewJobID == nil || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	id := regexp.MustCompile(`^job_[a-z2-7]{26}$`)
	if a, b := c.NewJobID(), c.NewJobID(); !id.MatchString(a) || a == b {
		t.Fatalf("job ids %q, %q: want distinct job_ + 20 lower-case base32 characters", a, b)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, "js: "},
		{Config{JobBatch: -1}, "job-batch: "},
		{Config{JobBatch: 1001}, "job-batch: "},
		{Config{JobLease: -time.Second}, "job-lease: "},
		{Config{PollInterval: -time.Second}, "poll-interval: "},
	} {
		_, err := New(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tc.cfg, err, tc.field)
		}
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.svc.Stop(ctx); err != nil {
		t.Fatalf("stop without start: %v", err)
	}
	if err := b.svc.Start(ctx); err == nil {
		t.Fatal("start after stop succeeded")
	}
	s := b.newService(t)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("second start succeeded")
	}
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
}
