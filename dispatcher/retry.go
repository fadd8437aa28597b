package dispatcher

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryDelay is the delay before attempt n+1 after attempt n failed:
// initial × 2^(n−1), scaled by (1 + jitter × (2r − 1)) for r in [0,1) (so
// ±jitter), then capped at max: jitter never takes a delay above the cap.
func RetryDelay(initial, max time.Duration, jitter float64, n int, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (1 + jitter*(2*r-1)))
	if d > max {
		d = max
	}
	return d
}

// schedule decides what happens after a failed attempt: the delay to ask
// JetStream for, or that the delivery is dead. A delay is never below
// RetryMinDelay (a Retry-After of 0 or in the past included: a zero delay
// would be a plain NAK, which is not persisted, and an immediate resend).
// The final attempt is made just before the deadline (finalLead ahead, so
// that its redelivery is not late), never after it; when even that is
// nearer than RetryMinDelay, the attempt just made was the last.
func (d *Dispatcher) schedule(now, deadline time.Time, delay time.Duration) (time.Duration, bool) {
	return schedule(now, deadline, delay, d.cfg.RetryMinDelay, finalLead(d.cfg.RetryMaxAge))
}

func schedule(now, deadline time.Time, delay, minDelay, lead time.Duration) (time.Duration, bool) {
	delay = max(delay, minDelay)
	last := deadline.Add(-lead)
	if now.Add(delay).After(last) {
		delay = last.Sub(now)
		if delay < minDelay {
			return 0, false
		}
	}
	return delay, true
}

// finalLead is how far ahead of the deadline the final attempt is asked
// for: a second, or a twentieth of the give-up age when that is shorter
// (tests scale the give-up age to seconds).
func finalLead(maxAge time.Duration) time.Duration { return min(time.Second, maxAge/20) }

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
