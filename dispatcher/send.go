package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// AttemptErrorLimit bounds an attempt's error text, so that whatever an
// endpoint answers (a malformed status line is quoted in Go's error) the
// attempt log and a dead-letter record of 25 attempts always fit.
const AttemptErrorLimit = 1 << 10

// result is what one attempt came to.
type result struct {
	status     int
	err        error
	body       []byte // the first AttemptBodyLimit bytes of the response
	retryAfter time.Duration
	hasRetry   bool
	duration   time.Duration
	// ours marks an error made before anything was sent (the body could
	// not be encoded, the request not built).
	ours bool
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// errorText is the attempt's error as stored and logged: URLs redacted
// (user name, password and query values hidden) and at most
// AttemptErrorLimit bytes, cut on a UTF-8 boundary.
func (r result) errorText() string {
	switch {
	case r.err != nil:
		return cutText(netguard.RedactError(r.err), AttemptErrorLimit)
	case r.ok():
		return ""
	default:
		return "http status " + strconv.Itoa(r.status)
	}
}

// localErrnos are the failures of this process or host, not of the
// endpoint: out of file descriptors, ephemeral ports, buffers or memory.
var localErrnos = []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS, syscall.ENOMEM}

// local reports whether the attempt failed for a reason of ours rather than
// the endpoint's: a request that could not be built, or a host out of file
// descriptors, ports, buffers or memory. Such a failure says nothing about
// the endpoint, so it must not count against it (its failure count, its
// health, its retry schedule).
func (r result) local() bool {
	if r.err == nil {
		return false
	}
	if r.ours {
		return true
	}
	for _, errno := range localErrnos {
		if errors.Is(r.err, errno) {
			return true
		}
	}
	// The resolver keeps only the text of the error that failed its lookup
	// (a socket it could not open, say).
	if dnsErr, ok := errors.AsType[*net.DNSError](r.err); ok {
		for _, errno := range localErrnos {
			if strings.Contains(dnsErr.Err, errno.Error()) {
				return true
			}
		}
	}
	return false
}

// cutText cuts s to at most n bytes, ending in "…" when it was cut, without
// splitting a UTF-8 sequence.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…"
	return string(cutUTF8([]byte(s), n-len(more))) + more
}

// cutUTF8 cuts b to at most n bytes, backing off to the start of a rune
// rather than splitting one (b need not be text: a rune start is looked for
// only among the last 3 bytes).
func cutUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return b[:i]
		}
	}
	return b[:n]
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
		return result{err: fmt.Errorf("encode body: %w", err), ours: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("request: %w", err), ours: true}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", s.userAgent)
	h.Set(webhook.HeaderID, d.Event.ID)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(webhook.HeaderSignature, signer.Sign(d.Event.ID, now, body))
	if d.Event.TraceParent != "" {
		// The publisher's trace continues into the receiver's.
		h.Set("traceparent", d.Event.TraceParent)
	}
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
	// connection goes back to the pool (or is dropped if the body is huge);
	// keep AttemptBodyLimit of it. The headers were bounded by the
	// transport (netguard.MaxResponseHeaderBytes).
	buf, rerr := io.ReadAll(io.LimitReader(resp.Body, ResponseBodyLimit))
	resp.Body.Close()
	r := result{status: resp.StatusCode, duration: time.Since(start)}
	r.body = bytes.Clone(cutUTF8(buf, AttemptBodyLimit))
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
