package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// result is what one attempt came to.
type result struct {
	status     int
	err        error
	body       []byte // the first AttemptBodyLimit bytes of the response
	retryAfter time.Duration
	hasRetry   bool
	duration   time.Duration
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

func (r result) errorText() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.ok():
		return ""
	default:
		return "http status " + strconv.Itoa(r.status)
	}
}

// sender makes webhook requests.
type sender struct {
	client    *http.Client
	userAgent string
	timeout   time.Duration
}

// send POSTs one attempt of d to url, signed with signer at now.
func (s *sender) send(ctx context.Context, url string, signer *webhook.Signer, d *streams.Delivery, now time.Time) result {
	body, err := d.Event.WebhookBody()
	if err != nil {
		return result{err: fmt.Errorf("encode body: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("request: %w", err)}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", s.userAgent)
	h.Set(webhook.HeaderID, d.Event.ID)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(webhook.HeaderSignature, signer.Sign(d.Event.ID, now, body))
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		r := result{err: err, duration: time.Since(start)}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.err = fmt.Errorf("timeout after %s", s.timeout)
		}
		return r
	}
	// Read at most ResponseBodyLimit and always close, so that the
	// connection goes back to the pool (or is dropped if the body is huge).
	buf, rerr := io.ReadAll(io.LimitReader(resp.Body, ResponseBodyLimit))
	resp.Body.Close()
	r := result{status: resp.StatusCode, duration: time.Since(start)}
	if len(buf) > AttemptBodyLimit {
		buf = buf[:AttemptBodyLimit]
	}
	r.body = buf
	if rerr != nil && r.ok() && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// A 2xx whose body did not arrive in time is still a 2xx: the
		// endpoint took the delivery.
		rerr = nil
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter, r.hasRetry = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}
