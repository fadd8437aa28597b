package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of a Client.
const (
	// TimeoutDefault bounds one request unless WithHTTPClient says otherwise.
	TimeoutDefault = 60 * time.Second
	// MaxAnswerDefault bounds an answer's body: a page of 1000 dead letters
	// with their attempts is large, but not this large.
	MaxAnswerDefault = 256 << 20
	// UserAgentDefault is the User-Agent sent unless WithUserAgent says
	// otherwise.
	UserAgentDefault = "hookstream-client"
)

// Client is a client of one hookstream API. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[/prefix], no trailing slash
	token     string
	hc        *http.Client
	userAgent string
	maxAnswer int64
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer <token>" on every request: the
// server's --api-token.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sends the requests with hc. Defaults to an http.Client with
// a TimeoutDefault (60s) timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header. Defaults to UserAgentDefault.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the API at baseURL ("http://127.0.0.1:8080", or
// "127.0.0.1:8080", taken as http). The URL may carry a path prefix (a
// proxy's), but no query or fragment.
func New(baseURL string, opts ...Option) (*Client, error) {
	raw := strings.TrimSpace(baseURL)
	if raw == "" {
		return nil, errors.New("base URL: required")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("base URL: %q is not a URL", baseURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("base URL: scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("base URL: %q has no host", baseURL)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("base URL: must have no query or fragment")
	}
	c := &Client{
		base:      strings.TrimRight(u.String(), "/"),
		hc:        &http.Client{Timeout: TimeoutDefault},
		userAgent: UserAgentDefault,
		maxAnswer: MaxAnswerDefault,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// IngestURL is the URL a provider sends source's webhooks to:
// <base>/ingest/<source>.
func (c *Client) IngestURL(source string) string { return c.base + "/ingest/" + url.PathEscape(source) }

// esc escapes one path segment: ids may hold ':' (kept) or '/' (escaped).
func esc(id string) string { return url.PathEscape(id) }

// request is one API call.
type request struct {
	method, path string
	query        url.Values
	// body is sent as JSON; nil sends none, except that a POST sends {}
	// (actions such as enable take an empty object). raw is sent as is.
	body   any
	raw    []byte
	header http.Header
	noAuth bool
}

// do sends r and decodes a 2xx answer into out (nil: discard it). A non-2xx
// answer is an *Error.
func (c *Client) do(ctx context.Context, r request, out any) error {
	data, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what the API sends: %w", r.method, r.path, err)
	}
	return nil
}

// send sends r and returns a 2xx answer's body.
func (c *Client) send(ctx context.Context, r request) ([]byte, error) {
	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var rd io.Reader
	switch {
	case r.raw != nil:
		rd = bytes.NewReader(r.raw)
	case r.body != nil:
		enc, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode the request: %w", r.method, r.path, err)
		}
		rd = bytes.NewReader(enc)
	case r.method == http.MethodPost:
		rd = strings.NewReader("{}")
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if rd != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" && !r.noAuth {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// The *url.Error names the method and the URL, never the token.
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newError(resp, data)
	}
	if f, ok := ctx.Value(answerKey{}).(func([]byte)); ok && f != nil {
		f(data)
	}
	return data, nil
}

// get is a GET decoded into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: query}, out)
}

// ListOptions page through a list: Limit items (the API's default 100 when
// 0, at most 1000), from Cursor ("" for the first page).
type ListOptions struct {
	Limit  int
	Cursor string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// Page is one page of a list. NextCursor is "" on the last page (for the
// dead-letter list: nothing more now).
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

type answerKey struct{}

// WithAnswer returns a context under which every call hands each 2xx
// answer's body, exactly as the server sent it, to f before decoding it: for
// a tool that prints the server's JSON (the CLI's --json) while it works
// with the typed result. f runs on the calling goroutine.
func WithAnswer(ctx context.Context, f func(body []byte)) context.Context {
	return context.WithValue(ctx, answerKey{}, f)
}
