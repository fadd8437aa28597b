package netguard

import (
	"net/http"
	"time"
)

// connsPerHostDefault is NewTransport's maxConnsPerHost when it is not
// positive: the design's default per-endpoint concurrency.
const connsPerHostDefault = 10

// MaxResponseHeaderBytes bounds the status line and headers read from one
// response. Go's default is 10 MiB, and a header line costs far more parsed
// than on the wire: an endpoint answering 400,000 headers grew the process by
// over 50 MiB per request in flight. Past the bound the request fails with
// "server response headers exceeded 65536 bytes" and nothing more is read.
const MaxResponseHeaderBytes = 64 << 10

// NewTransport returns the *http.Transport for webhook deliveries and source
// polls, dialling through d (a nil d is the zero Dialer).
//
// maxConnsPerHost is the caller's per-endpoint concurrency (10 when not
// positive). Idle connections are kept up to that many per host: with Go's
// default of 2, a busy endpoint's connections are closed after every burst and
// redialled, which measured 2.5 times slower and left thousands of sockets in
// TIME_WAIT. MaxConnsPerHost stays unlimited because the caller already
// limits concurrency per endpoint, and a second limit here would only queue
// requests out of the caller's sight. The total idle pool has room for 100
// endpoints at full concurrency before the least recently used are closed.
//
// The status line and headers are read up to MaxResponseHeaderBytes. There is
// no response header timeout: the client's timeout bounds the whole
// exchange. There is no proxy either: a proxy from the environment would
// connect to the endpoint itself, past the dialer's checks.
func NewTransport(d *Dialer, maxConnsPerHost int) *http.Transport {
	if d == nil {
		d = &Dialer{}
	}
	if maxConnsPerHost <= 0 {
		maxConnsPerHost = connsPerHostDefault
	}
	return &http.Transport{
		Proxy:       nil,
		DialContext: d.DialContext,
		// A custom DialContext turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100 * maxConnsPerHost,
		MaxIdleConnsPerHost:    maxConnsPerHost,
		MaxConnsPerHost:        0,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  0,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
}

// NewClient returns an *http.Client over NewTransport(d, maxConnsPerHost) whose
// timeout bounds each whole request (0: none) and which never follows a
// redirect: the 3xx response itself is returned. A redirect is the endpoint's
// answer, recorded like any other non-2xx, and following it would let a
// public endpoint send hookstream's signed request to an address it would have
// refused.
func NewClient(d *Dialer, maxConnsPerHost int, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: NewTransport(d, maxConnsPerHost),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
