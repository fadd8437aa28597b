package poller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// Limits of a source's settings.
const (
	maxURLLength   = 2048
	maxHeaders     = 32
	maxHeaderBytes = 16 << 10
)

// Routes are the source routes: POST|GET /v1/sources and
// GET|PATCH|DELETE /v1/sources/{id}. They need no Start.
func (p *Poller) Routes() []httpjson.Route {
	return []httpjson.Route{
		{Method: http.MethodPost, Pattern: "/v1/sources", Handler: p.handleCreate},
		{Method: http.MethodGet, Pattern: "/v1/sources", Handler: p.handleList},
		{Method: http.MethodGet, Pattern: "/v1/sources/{id}", Handler: p.handleGet},
		{Method: http.MethodPatch, Pattern: "/v1/sources/{id}", Handler: p.handlePatch},
		{Method: http.MethodDelete, Pattern: "/v1/sources/{id}", Handler: p.handleDelete},
	}
}

// sourceJSON is a source as the API shows it: its settings (header names
// only, never values) and, at the top level, its status.
type sourceJSON struct {
	ID             string   `json:"id"`
	ChangesURL     string   `json:"changes_url"`
	Interval       string   `json:"interval"`
	ExpectedWindow string   `json:"expected_window"`
	Headers        []string `json:"headers"`
	// Status is healthy, unreachable or auth_required.
	Status      string     `json:"status"`
	StatusSince *time.Time `json:"status_since"`
	LastSuccess *time.Time `json:"last_success"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	NextPoll    *time.Time `json:"next_poll"`
	Cursor      string     `json:"cursor"`
	// Failures counts failed polls in a row.
	Failures int `json:"failures"`
	// SkippedChanges counts the invalid changes the feed sent, skipped and
	// never published; LastSkipped are the most recent (at most 10, oldest
	// first), each with what is wrong and where to find it.
	SkippedChanges uint64        `json:"skipped_changes"`
	LastSkipped    []skippedJSON `json:"last_skipped"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// skippedJSON is a skipped change as the API shows it: its place (the page's
// cursor, "" for the first page, and its index there), its id when it had
// one, and the reason.
type skippedJSON struct {
	Index  int       `json:"index"`
	Cursor string    `json:"cursor"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func view(c *sourceConfig, st *sourceState) sourceJSON {
	v := sourceJSON{
		ID:             c.ID,
		ChangesURL:     redactURL(c.ChangesURL),
		Interval:       c.Interval.String(),
		ExpectedWindow: c.ExpectedWindow.String(),
		Headers:        headerNames(c.Headers),
		Status:         StatusHealthy,
		LastSkipped:    []skippedJSON{},
		CreatedAt:      c.CreatedAt.UTC(),
		UpdatedAt:      c.UpdatedAt.UTC(),
	}
	if st != nil {
		v.Status = st.Status
		v.StatusSince = timePtr(st.Since)
		v.LastSuccess = timePtr(st.LastSuccess)
		v.LastError = st.LastError
		v.LastErrorAt = timePtr(st.LastErrorAt)
		v.NextPoll = timePtr(st.NextPoll)
		v.Cursor = st.Cursor
		v.Failures = st.Failures
		v.SkippedChanges = st.Skipped
		for _, sk := range st.SkippedRecent {
			v.LastSkipped = append(v.LastSkipped, skippedJSON{Index: sk.Index, Cursor: sk.Cursor, ID: sk.ID, Reason: sk.Reason, At: sk.At.UTC()})
		}
	}
	return v
}

// timePtr is t in UTC, or nil (JSON null) when zero.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// redactURL hides a password in the URL's user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

func headerNames(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// sourceRequest is the body of POST (all fields) and PATCH (any field but
// id) /v1/sources.
type sourceRequest struct {
	ID             *string            `json:"id"`
	ChangesURL     *string            `json:"changes_url"`
	Interval       *string            `json:"interval"`
	ExpectedWindow *string            `json:"expected_window"`
	Headers        *map[string]string `json:"headers"`
}

// apply checks req's fields and sets them on c.
func (p *Poller) apply(c *sourceConfig, req *sourceRequest) error {
	if req.ChangesURL != nil {
		u := *req.ChangesURL
		switch {
		case u == "":
			return httpjson.BadRequest("changes_url: required")
		case len(u) > maxURLLength:
			return httpjson.BadRequest("changes_url: longer than %d characters", maxURLLength)
		}
		if err := netguard.CheckURL(u, p.cfg.AllowPrivate); err != nil {
			return httpjson.BadRequest("changes_url: %s", strings.TrimPrefix(err.Error(), "url: "))
		}
		c.ChangesURL = u
	}
	for _, d := range []struct {
		field string
		in    *string
		out   *time.Duration
	}{
		{"interval", req.Interval, &c.Interval}, {"expected_window", req.ExpectedWindow, &c.ExpectedWindow},
	} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			return httpjson.BadRequest("%s: %q is not a duration such as \"30s\" or \"15m\"", d.field, *d.in)
		}
		if v < p.cfg.MinInterval {
			return httpjson.BadRequest("%s: must be at least %s, got %s", d.field, p.cfg.MinInterval, v)
		}
		*d.out = v
	}
	if req.Headers != nil {
		if err := checkHeaders(*req.Headers); err != nil {
			return err
		}
		c.Headers = *req.Headers
	}
	return nil
}

// checkHeaders refuses header names and values that cannot be sent; the
// errors name the header but never repeat a value.
func checkHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return httpjson.BadRequest("headers: at most %d, got %d", maxHeaders, len(h))
	}
	total := 0
	for _, k := range headerNames(h) {
		v := h[k]
		total += len(k) + len(v)
		switch {
		case k == "" || strings.IndexFunc(k, func(r rune) bool { return !isTokenChar(r) }) >= 0:
			return httpjson.BadRequest("headers: %q is not a valid header name", k)
		case slices.Contains([]string{"host", "content-length", "transfer-encoding", "connection"}, strings.ToLower(k)):
			return httpjson.BadRequest("headers: %s may not be set", k)
		case strings.ContainsAny(v, "\r\n\x00"):
			return httpjson.BadRequest("headers: the value of %s may not contain line breaks or NUL", k)
		}
	}
	if total > maxHeaderBytes {
		return httpjson.BadRequest("headers: %d bytes in all, over the limit of %d", total, maxHeaderBytes)
	}
	return nil
}

// isTokenChar reports whether r may appear in a header name (RFC 9110 tchar).
func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// validateID checks a source id: streams.ValidateSource, and not hookstream's
// own source (its events would pass for hookstream's).
func validateID(id string) error {
	if err := streams.ValidateSource(id); err != nil {
		return fmt.Errorf("id: %s", strings.TrimPrefix(trimInvalid(err), "source: "))
	}
	if id == streams.OwnSource {
		return fmt.Errorf("id: %q is reserved for hookstream's own events", id)
	}
	return nil
}

// unavailable marks a store error as "try again later" (503).
func unavailable(err error) error {
	if errors.Is(err, streams.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", streams.ErrUnavailable, err)
}

func (p *Poller) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req sourceRequest
	if err := httpjson.Decode(w, r, 0, &req); err != nil {
		httpjson.Fail(w, err)
		return
	}
	if req.ID == nil {
		httpjson.Fail(w, httpjson.BadRequest("id: required"))
		return
	}
	id := *req.ID
	if err := validateID(id); err != nil {
		httpjson.Fail(w, httpjson.BadRequest("%s", err.Error()))
		return
	}
	if req.ChangesURL == nil {
		httpjson.Fail(w, httpjson.BadRequest("changes_url: required"))
		return
	}
	now := p.cfg.Now().UTC()
	c := &sourceConfig{ID: id, Interval: p.cfg.IntervalDefault, ExpectedWindow: p.cfg.ExpectedWindowDefault,
		Headers: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	if err := p.apply(c, &req); err != nil {
		httpjson.Fail(w, err)
		return
	}
	p.mu.Lock()
	_, registered := p.registered[id]
	p.mu.Unlock()
	if registered {
		httpjson.Fail(w, fmt.Errorf("id: %q is a source registered in code: %w", id, httpjson.ErrConflict))
		return
	}
	b, err := streams.Marshal(c)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx := r.Context()
	if _, err := p.sourcesKV.Create(ctx, id, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			httpjson.Fail(w, fmt.Errorf("id: source %q already exists: %w", id, httpjson.ErrConflict))
			return
		}
		httpjson.Fail(w, unavailable(fmt.Errorf("create source: %w", err)))
		return
	}
	// A fresh state, overwriting any left by a deleted source of the same
	// id: healthy, polled at once, from the start of its feed.
	st := newState(id, now)
	sb, err := streams.Marshal(st)
	if err == nil {
		_, err = p.stateKV.Put(ctx, id, sb)
	}
	if err != nil {
		// The source exists; the poller creates its state at the first poll.
		p.log.Warn("write new source state", "source", id, "err", err)
	}
	p.log.Info("source created", "source", id)
	w.Header().Set("Location", "/v1/sources/"+id)
	httpjson.WriteJSON(w, http.StatusCreated, view(c, st))
}

func (p *Poller) handleList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := httpjson.ParsePage(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx := r.Context()
	keys, err := p.sourceIDs(ctx)
	if err != nil {
		httpjson.Fail(w, unavailable(err))
		return
	}
	page := httpjson.Page[sourceJSON]{Items: []sourceJSON{}}
	i, _ := slices.BinarySearch(keys, cursor)
	if i < len(keys) && keys[i] == cursor {
		i++
	}
	for ; i < len(keys) && len(page.Items) < limit; i++ {
		c, st, found, err := p.load(ctx, keys[i])
		if err != nil {
			httpjson.Fail(w, unavailable(err))
			return
		}
		if found {
			page.Items = append(page.Items, view(c, st))
		}
	}
	if i < len(keys) && len(page.Items) > 0 {
		page.NextCursor = page.Items[len(page.Items)-1].ID
	}
	httpjson.WriteJSON(w, http.StatusOK, page)
}

// sourceIDs lists the stored source ids, sorted.
func (p *Poller) sourceIDs(ctx context.Context) ([]string, error) {
	lister, err := p.sourcesKV.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// load reads a source's configuration and state.
func (p *Poller) load(ctx context.Context, id string) (*sourceConfig, *sourceState, bool, error) {
	c, _, found, err := streams.Get[sourceConfig](ctx, p.sourcesKV, id)
	if err != nil || !found {
		return nil, nil, false, err
	}
	st, _, _, err := streams.Get[sourceState](ctx, p.stateKV, id)
	if err != nil {
		return nil, nil, false, err
	}
	return c, st, true, nil
}

// pathID reads {id}; an id that cannot exist is simply not found.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if streams.ValidateSource(id) != nil {
		return "", fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound)
	}
	return id, nil
}

func (p *Poller) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	c, st, found, err := p.load(r.Context(), id)
	switch {
	case err != nil:
		httpjson.Fail(w, unavailable(err))
	case !found:
		httpjson.Fail(w, fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound))
	default:
		httpjson.WriteJSON(w, http.StatusOK, view(c, st))
	}
}

func (p *Poller) handlePatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	var req sourceRequest
	if err := httpjson.Decode(w, r, 0, &req); err != nil {
		httpjson.Fail(w, err)
		return
	}
	if req.ID != nil && *req.ID != id {
		httpjson.Fail(w, httpjson.BadRequest("id: cannot be changed"))
		return
	}
	ctx := r.Context()
	c, _, err := streams.Update(ctx, p.sourcesKV, id, func(cur *sourceConfig) (*sourceConfig, error) {
		if cur == nil {
			return nil, fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound)
		}
		next := *cur
		if err := p.apply(&next, &req); err != nil {
			return nil, err
		}
		next.UpdatedAt = p.cfg.Now().UTC()
		return &next, nil
	})
	if err != nil {
		var he *httpjson.Error
		if errors.As(err, &he) || errors.Is(err, httpjson.ErrNotFound) {
			httpjson.Fail(w, err)
		} else {
			httpjson.Fail(w, unavailable(err))
		}
		return
	}
	// A shorter interval takes effect now, not after the old one.
	st, _, err := streams.Update(ctx, p.stateKV, id, func(cur *sourceState) (*sourceState, error) {
		if cur == nil || cur.Status != StatusHealthy {
			return nil, streams.ErrNoChange
		}
		soon := p.cfg.Now().Add(c.Interval)
		if !cur.NextPoll.After(soon) {
			return nil, streams.ErrNoChange
		}
		next := *cur
		next.NextPoll = soon
		return &next, nil
	})
	if err != nil && !errors.Is(err, streams.ErrNoChange) {
		p.log.Warn("bring the next poll forward", "source", id, "err", err)
	}
	p.log.Info("source updated", "source", id)
	httpjson.WriteJSON(w, http.StatusOK, view(c, st))
}

func (p *Poller) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx := r.Context()
	e, err := p.sourcesKV.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		httpjson.Fail(w, fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound))
		return
	case err != nil:
		httpjson.Fail(w, unavailable(err))
		return
	}
	if err := p.sourcesKV.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		if streams.IsConflict(err) {
			httpjson.Fail(w, fmt.Errorf("source %q changed meanwhile; try again: %w", id, httpjson.ErrConflict))
			return
		}
		httpjson.Fail(w, unavailable(err))
		return
	}
	if err := p.stateKV.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		// Harmless: a new source of this id overwrites the state.
		p.log.Warn("delete source state", "source", id, "err", err)
	}
	p.log.Info("source deleted", "source", id)
	w.WriteHeader(http.StatusNoContent)
}
