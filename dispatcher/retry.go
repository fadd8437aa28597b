package dispatcher

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryDelay is the delay before attempt n+1 after attempt n failed:
// initial × 2^(n−1), capped at max, then scaled by (1 + jitter × (2r − 1))
// for r in [0,1), so ±jitter.
func RetryDelay(initial, max time.Duration, jitter float64, n int, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * (1 + jitter*(2*r-1)))
}

// schedule decides what happens after a failed attempt: the delay to ask
// JetStream for, or that the delivery is dead (its deadline has come). The
// last attempt happens at the deadline itself, never after it.
func schedule(now, deadline time.Time, delay time.Duration) (time.Duration, bool) {
	if !now.Before(deadline) {
		return 0, false
	}
	if now.Add(delay).After(deadline) {
		return deadline.Sub(now), true
	}
	return delay, true
}

// parseRetryAfter reads a Retry-After header: delta seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}
