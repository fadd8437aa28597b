package dispatcher

import (
	"testing"
	"time"
)

// Jitter is applied before the cap: no delay is ever above the maximum.
func TestRetryDelayNeverAboveTheCap(t *testing.T) {
	t.Parallel()
	for n := 1; n < 40; n++ {
		for _, r := range []float64{0, 0.5, 0.999999} {
			if d := RetryDelay(30*time.Second, 4*time.Hour, 0.2, n, r); d > 4*time.Hour || d <= 0 {
				t.Fatalf("RetryDelay(n=%d, r=%v) = %s, outside (0, 4h]", n, r, d)
			}
		}
	}
	// Below the cap the jitter is ±20 %.
	if d := RetryDelay(30*time.Second, 4*time.Hour, 0.2, 2, 0.999999); d <= 60*time.Second || d > 72*time.Second {
		t.Fatalf("attempt 2 with full jitter = %s, want just under 72s", d)
	}
}

func TestScheduleFloorAndFinalAttempt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	deadline := now.Add(24 * time.Hour)
	lead := finalLead(24 * time.Hour)
	for _, c := range []struct {
		name     string
		now      time.Time
		delay    time.Duration
		want     time.Duration
		wantMore bool
	}{
		{"a Retry-After of 0 is floored", now, 0, time.Second, true},
		{"a delay under the floor is floored", now, 10 * time.Millisecond, time.Second, true},
		{"a normal delay", now, time.Minute, time.Minute, true},
		{"past the deadline: the final attempt just before it", deadline.Add(-time.Hour), 4 * time.Hour, time.Hour - lead, true},
		{"the deadline nearer than the floor: that was the last", deadline.Add(-lead - 500*time.Millisecond), time.Minute, 0, false},
		{"at the deadline", deadline, time.Minute, 0, false},
		{"after the deadline", deadline.Add(time.Second), time.Minute, 0, false},
	} {
		got, more := schedule(c.now, deadline, c.delay, time.Second, lead)
		if got != c.want || more != c.wantMore {
			t.Errorf("%s: schedule = %s, %v; want %s, %v", c.name, got, more, c.want, c.wantMore)
		}
		if more && (got < time.Second || !c.now.Add(got).Before(deadline)) {
			t.Errorf("%s: a retry in %s is below the floor or not before the deadline", c.name, got)
		}
	}
}
