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
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/inbound"
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

// Routes are the source routes: POST|GET /v1/sources,
// GET|PATCH|DELETE /v1/sources/{id} and POST /v1/sources/{id}/rotate-secret.
// They need no Start. The providers' route is in PublicRoutes.
func (p *Poller) Routes() []httpjson.Route {
	return []httpjson.Route{
		{Method: http.MethodPost, Pattern: "/v1/sources", Handler: httpjson.Query(p.handleCreate)},
		{Method: http.MethodGet, Pattern: "/v1/sources", Handler: httpjson.Query(p.handleList, httpjson.PageParams...)},
		{Method: http.MethodGet, Pattern: "/v1/sources/{id}", Handler: httpjson.Query(p.handleGet)},
		{Method: http.MethodPatch, Pattern: "/v1/sources/{id}", Handler: httpjson.Query(p.handlePatch)},
		{Method: http.MethodDelete, Pattern: "/v1/sources/{id}", Handler: httpjson.Query(p.handleDelete)},
		{Method: http.MethodPost, Pattern: "/v1/sources/{id}/rotate-secret", Handler: httpjson.Query(p.handleRotate)},
	}
}

// sourceJSON is a source as the API shows it: its settings (header names
// only, never values; the inbound secret only in the answer that made it)
// and, at the top level, its status.
type sourceJSON struct {
	ID string `json:"id"`
	// ChangesURL is "" for a source that only receives pushes.
	ChangesURL     string   `json:"changes_url"`
	Interval       string   `json:"interval"`
	ExpectedWindow string   `json:"expected_window"`
	Headers        []string `json:"headers"`
	// Inbound is null for a source that receives no pushes.
	Inbound *inboundJSON `json:"inbound"`
	// IngestURL is the path providers push to (/ingest/<id>), to be
	// prefixed with the API's public base URL; "" without inbound.
	IngestURL string `json:"ingest_url"`
	// Status is healthy, unreachable or auth_required.
	Status      string     `json:"status"`
	StatusSince *time.Time `json:"status_since"`
	// LastPoll is when the last poll started; LastPush when the last push
	// was stored (to within a minute, or a quarter of expected_window when
	// that is shorter, when another API process received it), with the
	// X-Discourse-Instance it named.
	LastPoll         *time.Time `json:"last_poll"`
	LastPush         *time.Time `json:"last_push"`
	LastPushInstance string     `json:"last_push_instance"`
	LastSuccess      *time.Time `json:"last_success"`
	LastError        string     `json:"last_error"`
	LastErrorAt      *time.Time `json:"last_error_at"`
	NextPoll         *time.Time `json:"next_poll"`
	Cursor           string     `json:"cursor"`
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

// inboundJSON is a source's inbound settings as the API shows them.
type inboundJSON struct {
	Format string `json:"format"`
	// Secret is shown only by the answer that made it: the source's
	// creation, a rotation, a PATCH that had to generate one.
	Secret   string   `json:"secret,omitempty"`
	Header   string   `json:"header"`
	IDHeader string   `json:"id_header"`
	IDFrom   []string `json:"id_from"`
	Type     string   `json:"type"`
	// SecretCreatedAt is when the current secret was set;
	// PreviousSecretsExpireAt when the last secret a rotation replaced
	// stops verifying (null when none does).
	SecretCreatedAt         *time.Time `json:"secret_created_at"`
	PreviousSecretsExpireAt *time.Time `json:"previous_secrets_expire_at"`
}

// view is a source as the API shows it; reveal is the inbound secret to
// show ("" for none). The last push is the newest of the stored one and
// this process's own.
func (p *Poller) view(c *sourceConfig, st *sourceState, reveal string) sourceJSON {
	v := view(c, st)
	if c.Inbound != nil {
		ic := c.Inbound
		iv := &inboundJSON{Format: ic.Format, Secret: reveal, Header: ic.Header, IDHeader: ic.IDHeader,
			IDFrom: append([]string{}, ic.IDFrom...), Type: ic.Type}
		now := p.cfg.Now()
		for i, s := range ic.Secrets {
			switch {
			case i == 0:
				iv.SecretCreatedAt = timePtr(s.CreatedAt)
			case now.Before(s.ExpiresAt) && (iv.PreviousSecretsExpireAt == nil || s.ExpiresAt.After(*iv.PreviousSecretsExpireAt)):
				iv.PreviousSecretsExpireAt = timePtr(s.ExpiresAt)
			}
		}
		v.Inbound, v.IngestURL = iv, IngestPath(c.ID)
	}
	p.mu.Lock()
	mine := p.pushes[c.ID].last
	p.mu.Unlock()
	if st == nil || mine.After(st.LastPush) {
		v.LastPush = timePtr(mine)
	}
	return v
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
		v.LastPoll = timePtr(st.LastPoll)
		v.LastPush = timePtr(st.LastPush)
		v.LastPushInstance = st.LastPushInstance
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
	// Inbound is raw so that null (remove the inbound settings) and absent
	// (keep them) differ.
	Inbound json.RawMessage `json:"inbound"`
}

// inboundRequest is the inbound object of POST and PATCH. On PATCH it is
// merged into the current settings: an absent field keeps its value, "" or
// [] clears it.
type inboundRequest struct {
	Format   *string   `json:"format"`
	Secret   *string   `json:"secret"`
	Header   *string   `json:"header"`
	IDHeader *string   `json:"id_header"`
	IDFrom   *[]string `json:"id_from"`
	Type     *string   `json:"type"`
}

// apply checks req's fields and sets them on c. generated is the inbound
// secret it had to make (a new inbound, or a format the current secret does
// not fit, without a secret given), for the answer to show once.
func (p *Poller) apply(c *sourceConfig, req *sourceRequest) (generated string, err error) {
	if req.ChangesURL != nil {
		u := *req.ChangesURL
		switch {
		case u == "":
			// No feed: the source only receives pushes (checked below).
			c.ChangesURL = ""
		case len(u) > maxURLLength:
			return "", httpjson.BadRequest("changes_url: longer than %d characters", maxURLLength)
		default:
			if err := netguard.CheckURL(u, p.cfg.AllowPrivate); err != nil {
				return "", httpjson.BadRequest("changes_url: %s", strings.TrimPrefix(err.Error(), "url: "))
			}
			c.ChangesURL = u
		}
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
			return "", httpjson.BadRequest("%s: %q is not a duration such as \"30s\" or \"15m\"", d.field, *d.in)
		}
		if v < p.cfg.MinInterval {
			return "", httpjson.BadRequest("%s: must be at least %s, got %s", d.field, p.cfg.MinInterval, v)
		}
		*d.out = v
	}
	if req.Headers != nil {
		if err := checkHeaders(*req.Headers); err != nil {
			return "", err
		}
		c.Headers = *req.Headers
	}
	if req.Inbound != nil {
		if generated, err = p.applyInbound(c, req.Inbound); err != nil {
			return "", err
		}
	}
	if !c.polled() && c.Inbound == nil {
		return "", httpjson.BadRequest("changes_url: required unless the source has inbound settings (it would have nothing to receive or poll)")
	}
	return generated, nil
}

// applyInbound merges the inbound object raw (or null: none) into c.
func (p *Poller) applyInbound(c *sourceConfig, raw json.RawMessage) (generated string, err error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		c.Inbound = nil
		return "", nil
	}
	var req inboundRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		he := httpjson.DecodeError(err, httpjson.DefaultBodyLimit)
		if msg, ok := strings.CutPrefix(he.Msg, "body: "); ok {
			return "", httpjson.BadRequest("inbound: %s", msg)
		}
		return "", httpjson.BadRequest("inbound.%s", he.Msg)
	}
	next := inboundConfig{}
	if c.Inbound != nil {
		next = *c.Inbound
		next.IDFrom = slices.Clone(next.IDFrom)
		next.Secrets = slices.Clone(next.Secrets)
	}
	oldFormat := next.Format
	for _, f := range []struct {
		in  *string
		out *string
	}{{req.Format, &next.Format}, {req.Header, &next.Header}, {req.IDHeader, &next.IDHeader}, {req.Type, &next.Type}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	if req.IDFrom != nil {
		next.IDFrom = nil
		if len(*req.IDFrom) > 0 {
			next.IDFrom = slices.Clone(*req.IDFrom)
		}
	}
	if next.Format == "" {
		return "", httpjson.BadRequest("inbound.format: required (one of standard, discourse, github, hmac-sha256)")
	}
	format, err := inbound.ParseFormat(next.Format)
	if err != nil {
		return "", httpjson.BadRequest("inbound.format: %s", err)
	}
	now := p.cfg.Now().UTC()
	switch {
	case req.Secret != nil:
		// Set at once, without overlap: the caller changes the provider
		// too. rotate-secret keeps the old one verifying for a while.
		if *req.Secret == "" {
			return "", httpjson.BadRequest("inbound.secret: must not be empty; leave it out to have one generated")
		}
		if err := inbound.CheckSecret(format, *req.Secret); err != nil {
			return "", httpjson.BadRequest("inbound.secret: %s", err)
		}
		next.Secrets = []inboundSecret{{Value: *req.Secret, CreatedAt: now}}
	case next.Format != oldFormat:
		// Keep the secrets that fit the new format (discourse, github and
		// hmac-sha256 share one kind); make one if none does.
		next.Secrets = slices.DeleteFunc(next.Secrets, func(s inboundSecret) bool { return inbound.CheckSecret(format, s.Value) != nil })
	}
	if len(next.Secrets) == 0 {
		if generated, err = inbound.GenerateSecret(format); err != nil {
			return "", err
		}
		next.Secrets = []inboundSecret{{Value: generated, CreatedAt: now}}
	}
	rc := p.receiver(c.ID, &next, now)
	if err := rc.Check(); err != nil {
		return "", httpjson.BadRequest("inbound.%s", err)
	}
	c.Inbound = &next
	return generated, nil
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
	now := p.cfg.Now().UTC()
	c := &sourceConfig{ID: id, Interval: p.cfg.IntervalDefault, ExpectedWindow: p.cfg.ExpectedWindowDefault,
		Headers: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	if _, err := p.apply(c, &req); err != nil {
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
	p.log.Info("source created", "source", id, "inbound", c.Inbound != nil)
	w.Header().Set("Location", "/v1/sources/"+id)
	reveal := ""
	if c.Inbound != nil {
		// Shown here, whether given or generated, and never again.
		reveal = c.Inbound.Secrets[0].Value
	}
	httpjson.WriteJSON(w, http.StatusCreated, p.view(c, st, reveal))
}

func (p *Poller) handleList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := httpjson.ParsePage(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	if cursor != "" && streams.ValidateSource(cursor) != nil {
		httpjson.Fail(w, httpjson.BadRequest("cursor: %q is not a cursor this list returned", cursor))
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
			page.Items = append(page.Items, p.view(c, st, ""))
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
		httpjson.WriteJSON(w, http.StatusOK, p.view(c, st, ""))
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
	var generated string
	c, _, err := streams.Update(ctx, p.sourcesKV, id, func(cur *sourceConfig) (*sourceConfig, error) {
		if cur == nil {
			return nil, fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound)
		}
		next := *cur
		var err error
		if generated, err = p.apply(&next, &req); err != nil {
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
	httpjson.WriteJSON(w, http.StatusOK, p.view(c, st, generated))
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
	p.mu.Lock()
	delete(p.pushes, id)
	p.mu.Unlock()
	p.log.Info("source deleted", "source", id)
	w.WriteHeader(http.StatusNoContent)
}

// rotateRequest is the optional body of POST /v1/sources/{id}/rotate-secret:
// the provider's new secret, when it chooses one; without it one is
// generated.
type rotateRequest struct {
	Secret *string `json:"secret"`
}

// handleRotate makes a new inbound secret current, shown once in the
// answer; the secrets it replaces keep verifying pushes for SecretOverlap,
// so that the provider's settings can be changed afterwards.
func (p *Poller) handleRotate(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	var req rotateRequest
	if err := decodeOptional(w, r, &req); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ctx := r.Context()
	var secret string
	c, _, err := streams.Update(ctx, p.sourcesKV, id, func(cur *sourceConfig) (*sourceConfig, error) {
		switch {
		case cur == nil:
			return nil, fmt.Errorf("source %q: %w", id, httpjson.ErrNotFound)
		case cur.Inbound == nil:
			return nil, fmt.Errorf("source %q has no inbound settings, so no secret to rotate: %w", id, httpjson.ErrConflict)
		}
		format, err := inbound.ParseFormat(cur.Inbound.Format)
		if err != nil {
			return nil, fmt.Errorf("inbound.format: %w", err)
		}
		switch {
		case req.Secret == nil:
			if secret, err = inbound.GenerateSecret(format); err != nil {
				return nil, err
			}
		case *req.Secret == "":
			return nil, httpjson.BadRequest("secret: must not be empty; leave it out to have one generated")
		default:
			if err := inbound.CheckSecret(format, *req.Secret); err != nil {
				return nil, httpjson.BadRequest("secret: %s", err)
			}
			secret = *req.Secret
		}
		next := *cur
		ic := *cur.Inbound
		now := p.cfg.Now().UTC()
		ic.rotate(secret, now, p.cfg.SecretOverlap)
		next.Inbound, next.UpdatedAt = &ic, now
		return &next, nil
	})
	if err != nil {
		var he *httpjson.Error
		if errors.As(err, &he) || errors.Is(err, httpjson.ErrNotFound) || errors.Is(err, httpjson.ErrConflict) {
			httpjson.Fail(w, err)
		} else {
			httpjson.Fail(w, unavailable(err))
		}
		return
	}
	st, _, _, err := streams.Get[sourceState](ctx, p.stateKV, id)
	if err != nil {
		p.log.Warn("read source state", "source", id, "err", err)
	}
	p.log.Info("source inbound secret rotated", "source", id, "overlap", p.cfg.SecretOverlap)
	httpjson.WriteJSON(w, http.StatusOK, p.view(c, st, secret))
}

// decodeOptional is httpjson.Decode for a body that may be empty.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpjson.DefaultBodyLimit))
	if err != nil {
		return httpjson.DecodeError(err, httpjson.DefaultBodyLimit)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpjson.DecodeError(err, httpjson.DefaultBodyLimit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return httpjson.BadRequest("body: must hold one JSON object and nothing after it")
	}
	return nil
}
