package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookstream/hookstream/netguard"
)

// Defaults of the client flags.
const (
	// APIDefault is the API every client command talks to unless --api (or
	// HOOKSTREAM_SERVER) says otherwise: where `hookstream serve` listens.
	APIDefault = "http://127.0.0.1:8080"
	// ClientTimeoutDefault bounds one API request.
	ClientTimeoutDefault = 60 * time.Second
)

// maxAnswer bounds an API answer the CLI reads (a page of 1000 dead letters
// with their attempts is large, but not this large).
const maxAnswer = 256 << 20

// listPageAll is the page size --all asks for when no --limit is given: the
// API's maximum, to follow as few cursors as possible.
const listPageAll = 1000

// clientFlags are the flags of every command that talks to the API.
type clientFlags struct {
	api   string
	token string
}

// addClientFlags adds --api and --api-token, read from HOOKSTREAM_SERVER and
// HOOKSTREAM_TOKEN when not given: the only environment names every client
// command reads (HOOKSTREAM_API_TOKEN is the server's --api-token).
func addClientFlags(fs *flag.FlagSet) *clientFlags {
	cf := &clientFlags{}
	fs.StringVar(&cf.api, "api", APIDefault, "base URL of the hookstream API")
	fs.StringVar(&cf.token, "api-token", "", "bearer token for the API")
	setEnvTwin(fs, "api", envServer)
	setEnvTwin(fs, "api-token", envToken)
	return cf
}

// client is the HTTP API client of the CLI.
type client struct {
	base  string // scheme://host[/prefix], no trailing slash
	token string
	hc    *http.Client
}

func (cf *clientFlags) client() (*client, error) {
	raw := strings.TrimSpace(cf.api)
	if raw == "" {
		return nil, usageErrorf("--api: must not be empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, usageErrorf("--api: %q is not a URL", cf.api)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, usageErrorf("--api: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, usageErrorf("--api: %q has no host", cf.api)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, usageErrorf("--api: must be a base URL without query or fragment")
	}
	return &client{
		base:  strings.TrimRight(u.String(), "/"),
		token: cf.token,
		hc:    &http.Client{Timeout: ClientTimeoutDefault},
	}, nil
}

// apiError is a non-2xx answer of the API: its status and its {"error"} text.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return strconv.Itoa(e.Status) + ": " + e.Msg }

// notRunningError is a refused connection: nothing listens at the API address.
type notRunningError struct {
	base string
	err  error
}

func (e *notRunningError) Error() string {
	return "connection refused: is `hookstream serve` running at " + netguard.RedactURL(e.base) + "?"
}

// redactedError shows err with the URLs it names redacted.
type redactedError struct{ err error }

func (e redactedError) Error() string { return netguard.RedactError(e.err) }
func (e redactedError) Unwrap() error { return e.err }

func (e *notRunningError) Unwrap() error { return e.err }

// esc escapes one path segment: ids may hold ':' (kept) or '/' (escaped).
func esc(id string) string { return url.PathEscape(id) }

// do sends one request and returns the answer body of a 2xx, or an error. A
// nil body is sent as no body, except on POST, where it is `{}` (actions such
// as enable take an empty object). body may be []byte / json.RawMessage
// (sent as is) or any value to encode.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) (json.RawMessage, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
		if method == http.MethodPost {
			rd = strings.NewReader("{}")
		}
	case json.RawMessage:
		rd = bytes.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode request body: %w", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hookstream-cli/"+version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &notRunningError{base: c.base, err: err}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// The *url.Error names the method and the URL (never the token); a
		// user name, password or query value in --api is hidden.
		return nil, redactedError{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := errorText(resp, data)
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (give --api-token or set " + envToken + ")"
		}
		return nil, &apiError{Status: resp.StatusCode, Msg: msg}
	}
	return data, nil
}

// errorText is the {"error"} of an answer, or what the answer says instead.
func errorText(resp *http.Response, data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text == "" {
		text = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	return text
}

// printJSON writes an API answer as indented JSON; an empty answer (204)
// prints nothing.
func printJSON(w io.Writer, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		// Not JSON: print it as it came rather than lose it.
		buf.Reset()
		buf.Write(bytes.TrimSpace(data))
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// encodeJSON writes v as indented JSON without HTML escaping.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// page is the shape of every list answer.
type page struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// pageFlags are the flags of every list command.
type pageFlags struct {
	limit  int
	cursor string
	all    bool
}

func addPageFlags(fs *flag.FlagSet) *pageFlags {
	pf := &pageFlags{}
	fs.IntVar(&pf.limit, "limit", 0, "items per page, 1 to 1000 (the API's default when not given: 100)")
	fs.StringVar(&pf.cursor, "cursor", "", "cursor from a previous page's next_cursor")
	fs.BoolVar(&pf.all, "all", false, "follow next_cursor and print every page's items")
	return pf
}

func (pf *pageFlags) check() error {
	if pf.limit < 0 || pf.limit > listPageAll {
		return usageErrorf("--limit: must be from 1 to %d, got %d", listPageAll, pf.limit)
	}
	return nil
}

// list fetches one page, or with all every page from the cursor on.
func (c *client) list(ctx context.Context, path string, query url.Values, pf *pageFlags) (*page, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	limit := pf.limit
	if pf.all && limit == 0 {
		limit = listPageAll
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	cursor := pf.cursor
	out := &page{Items: []json.RawMessage{}}
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		} else {
			q.Del("cursor")
		}
		data, err := c.do(ctx, http.MethodGet, path, q, nil)
		if err != nil {
			return nil, err
		}
		var p page
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("GET %s: answer is not a list page: %w", path, err)
		}
		out.Items = append(out.Items, p.Items...)
		out.NextCursor = p.NextCursor
		if !pf.all || p.NextCursor == "" {
			return out, nil
		}
		if p.NextCursor == cursor {
			return nil, fmt.Errorf("GET %s: next_cursor %q repeats the cursor asked for", path, cursor)
		}
		cursor = p.NextCursor
	}
}

// call sends one request with the client the flags describe and prints the
// JSON answer: what most commands do.
func (c *cli) call(ctx context.Context, cf *clientFlags, method, path string, query url.Values, body any) error {
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ans, err := cl.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	return printJSON(c.stdout, ans)
}
