package poller

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	if c.IntervalDefault != IntervalDefault || c.ExpectedWindowDefault != ExpectedWindowDefault || c.MaxBackoff != MaxBackoffDefault ||
		c.RequestTimeout != RequestTimeoutDefault || c.UnreachableAfter != UnreachableAfterDefault || c.MaxPagesPerPoll != MaxPagesPerPollDefault ||
		c.Tick != time.Second || c.MinInterval != time.Second || c.LeaseTTL != 30*time.Second || c.MaxEventData != 1<<20 ||
		c.Now == nil || c.HTTPClient == nil || c.Logger == nil || c.SecretOverlap != 24*time.Hour || c.IngestTolerance != 5*time.Minute {
		t.Fatalf("defaults = %+v", c)
	}
	if c.HTTPClient.Timeout != RequestTimeoutDefault || c.HTTPClient.CheckRedirect == nil {
		t.Fatalf("default client: timeout %s, follows redirects %v", c.HTTPClient.Timeout, c.HTTPClient.CheckRedirect == nil)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{Tick: -time.Second, LeaseTTL: 100 * time.Millisecond, UnreachableAfter: -1, MaxPagesPerPoll: -2, MaxEventData: 1 << 30,
		SecretOverlap: -time.Hour, IngestTolerance: -time.Second})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"js: required", "tick: must be positive", "lease-ttl: must be at least 1s", "unreachable-after:", "max-pages-per-poll:", "max-event-data:", "secret-overlap: must be positive", "ingest-tolerance: must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
