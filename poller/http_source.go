package poller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// MaxFeedBody bounds one change-feed page read by HTTPSource.
const MaxFeedBody = 10 << 20

// HTTPSource is the built-in adapter for an HTTP change feed:
// GET <ChangesURL>?since=<cursor> (no since on the first poll) answering
// {"changes":[{"id","type","time","data"}],"next_cursor":…,"has_more":bool}.
//
// Every change is validated (id present, type per streams.ValidateType, data a
// JSON object, time RFC 3339 or absent, meaning the time of the poll); an
// invalid one is returned with Err set (and its ID when readable), for the
// poller to skip and record, while a page that is not the page's shape is
// refused whole (ErrBadFeed). 401 and 403 are
// ErrAuth; connection errors, timeouts, 408, 429 and 5xx are ErrUnreachable;
// any other non-2xx answer, or a body over MaxFeedBody, is ErrBadFeed. Error
// messages never repeat the URL or the headers, which may carry credentials.
type HTTPSource struct {
	// ChangesURL is the feed's URL; a since parameter is added to its query.
	ChangesURL string
	// Headers are sent with every request (credentials, typically).
	Headers map[string]string
	// Client sends the requests; its timeout bounds each one.
	Client *http.Client

	// now is the time given to changes without one; nil means time.Now.
	now func() time.Time
}

// NewHTTPSource returns the adapter for changesURL. A nil client is
// netguard.NewClient with internal addresses refused and
// RequestTimeoutDefault.
func NewHTTPSource(changesURL string, headers map[string]string, client *http.Client) *HTTPSource {
	if client == nil {
		client = netguard.NewClient(&netguard.Dialer{}, feedConnsPerHost, RequestTimeoutDefault)
	}
	return &HTTPSource{ChangesURL: changesURL, Headers: headers, Client: client}
}

// Poll fetches the page after cursor.
func (s *HTTPSource) Poll(ctx context.Context, cursor string) (Page, error) {
	u, err := url.Parse(s.ChangesURL)
	if err != nil {
		return Page{}, fmt.Errorf("%w: changes_url does not parse", ErrBadFeed)
	}
	if cursor != "" {
		q := u.Query()
		q.Set("since", cursor)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page{}, fmt.Errorf("%w: build request: %w", ErrBadFeed, stripURL(err))
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "hookstream-poller")
	}
	client := s.Client
	if client == nil {
		// Never http.DefaultClient: it follows redirects and dials
		// internal addresses.
		client = guardedClient
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	pollTime := now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Page{}, ctx.Err()
		}
		return Page{}, fmt.Errorf("%w: get: %w", ErrUnreachable, stripURL(err))
	}
	defer func() {
		// Drain a little so that the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
	}()
	switch c := resp.StatusCode; {
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		return Page{}, fmt.Errorf("%w: status %d", ErrAuth, c)
	case c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests:
		return Page{}, fmt.Errorf("%w: status %d", ErrUnreachable, c)
	case c < 200 || c > 299:
		return Page{}, fmt.Errorf("%w: unexpected status %d", ErrBadFeed, c)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxFeedBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return Page{}, ctx.Err()
		}
		return Page{}, fmt.Errorf("%w: read body: %w", ErrUnreachable, stripURL(err))
	}
	if len(body) > MaxFeedBody {
		return Page{}, fmt.Errorf("%w: body larger than the limit of %d bytes", ErrBadFeed, MaxFeedBody)
	}
	return decodePage(body, pollTime)
}

// stripURL unwraps a *url.Error, whose message quotes the whole URL (query
// tokens and user:password included).
func stripURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if ue.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

// wirePage and wireChange are the feed's JSON. Fields are raw so that a
// wrong type is reported with the change's index and field name.
type wirePage struct {
	Changes    json.RawMessage `json:"changes"`
	NextCursor json.RawMessage `json:"next_cursor"`
	HasMore    json.RawMessage `json:"has_more"`
}

type wireChange struct {
	ID   json.RawMessage `json:"id"`
	Type json.RawMessage `json:"type"`
	Time json.RawMessage `json:"time"`
	Data json.RawMessage `json:"data"`
}

// decodePage parses and validates one feed page. Every error wraps
// ErrBadFeed and names the field; a change that is not valid does not fail
// the page: it comes back with Err naming the field. now is the time of
// changes that carry none.
func decodePage(body []byte, now time.Time) (Page, error) {
	var w wirePage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return Page{}, fmt.Errorf("%w: body: not a JSON object: %s", ErrBadFeed, jsonErr(err))
	}
	if dec.More() {
		return Page{}, fmt.Errorf("%w: body: data after the JSON object", ErrBadFeed)
	}
	var page Page
	if isNull(w.Changes) {
		return Page{}, fmt.Errorf("%w: changes: required", ErrBadFeed)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(w.Changes, &raw); err != nil {
		return Page{}, fmt.Errorf("%w: changes: must be an array", ErrBadFeed)
	}
	next, err := scalarString(w.NextCursor)
	if err != nil {
		return Page{}, fmt.Errorf("%w: next_cursor: %w", ErrBadFeed, err)
	}
	page.NextCursor = next
	if !isNull(w.HasMore) {
		if err := json.Unmarshal(w.HasMore, &page.HasMore); err != nil {
			return Page{}, fmt.Errorf("%w: has_more: must be a boolean", ErrBadFeed)
		}
	}
	page.Changes = make([]Change, 0, len(raw))
	for _, r := range raw {
		c, err := decodeChange(r, now)
		if err != nil {
			c = Change{ID: c.ID, Err: err}
		}
		page.Changes = append(page.Changes, c)
	}
	return page, nil
}

// decodeChange reads one change. On error the change returned keeps its id,
// if that much could be read, and the error names the field.
func decodeChange(r json.RawMessage, now time.Time) (Change, error) {
	var w wireChange
	if r = bytes.TrimSpace(r); len(r) == 0 || r[0] != '{' {
		return Change{}, fieldErr{"", "must be a JSON object"}
	}
	if err := json.Unmarshal(r, &w); err != nil {
		return Change{}, fieldErr{"", jsonErr(err)}
	}
	var c Change
	id, err := scalarString(w.ID)
	if err != nil {
		return Change{}, fieldErr{"id", err.Error()}
	}
	c.ID = id
	if id == "" {
		return c, fieldErr{"id", "required"}
	}
	if err := streams.ValidateID(id); err != nil {
		return c, fieldErr{"", trimInvalid(err)}
	}
	bad := func(field, msg string) (Change, error) { return Change{ID: id}, fieldErr{field, msg} }
	if isNull(w.Type) {
		return bad("type", "required")
	}
	if err := json.Unmarshal(w.Type, &c.Type); err != nil {
		return bad("type", "must be a string")
	}
	if err := streams.ValidateType(c.Type); err != nil {
		return bad("", trimInvalid(err))
	}
	c.Time = now.UTC()
	if !isNull(w.Time) {
		var s string
		if err := json.Unmarshal(w.Time, &s); err != nil {
			return bad("time", "must be an RFC 3339 string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("time", fmt.Sprintf("%q is not RFC 3339", s))
		}
		c.Time = t.UTC()
	}
	if isNull(w.Data) {
		return bad("data", "required")
	}
	if err := streams.ValidateData(w.Data, MaxFeedBody); err != nil {
		return bad("", trimInvalid(err))
	}
	c.Data = bytes.TrimSpace(w.Data)
	return c, nil
}

// fieldErr is what is wrong with one change: "id: required", or "must be a
// JSON object" for the change itself. msg alone is used when field is "" (it
// may name a field itself, as streams' validation errors do).
type fieldErr struct{ field, msg string }

func (e fieldErr) Error() string {
	if e.field != "" {
		return e.field + ": " + e.msg
	}
	return e.msg
}

// scalarString reads a JSON string, or a number as its literal text (feeds
// often number their changes and cursors); null or absent is "".
func scalarString(r json.RawMessage) (string, error) {
	if isNull(r) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(r, &n); err == nil {
		return n.String(), nil
	}
	return "", errors.New("must be a string")
}

func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || bytes.Equal(r, []byte("null"))
}

// jsonErr shortens a decoding error to what is wrong, without Go types.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &ute):
		return fmt.Sprintf("got %s where an object was expected", ute.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end"
	}
	return err.Error()
}

// trimInvalid drops streams' ": invalid event" suffix from a validation
// error, leaving "<field>: <what is wrong>".
func trimInvalid(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+streams.ErrInvalidEvent.Error())
}

// guardedClient polls an HTTPSource built without a client: internal
// addresses refused at dial, redirects not followed.
var guardedClient = netguard.NewClient(&netguard.Dialer{}, 4, RequestTimeoutDefault)
