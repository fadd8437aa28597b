package endpoints

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
)

// Routes are the /v1/endpoints routes.
func (r *Registry) Routes() []httpjson.Route {
	q := httpjson.Query
	page := httpjson.PageParams
	return []httpjson.Route{
		{Method: http.MethodPost, Pattern: "/v1/endpoints", Handler: q(r.handleCreate)},
		{Method: http.MethodGet, Pattern: "/v1/endpoints", Handler: q(r.handleList, page...)},
		{Method: http.MethodGet, Pattern: "/v1/endpoints/{id}", Handler: q(r.handleShow)},
		{Method: http.MethodPatch, Pattern: "/v1/endpoints/{id}", Handler: q(r.handleUpdate)},
		{Method: http.MethodDelete, Pattern: "/v1/endpoints/{id}", Handler: q(r.handleDelete)},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/enable", Handler: q(r.handleSetEnabled(true))},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/disable", Handler: q(r.handleSetEnabled(false))},
		{Method: http.MethodPost, Pattern: "/v1/endpoints/{id}/rotate-secret", Handler: q(r.handleRotateSecret)},
		{Method: http.MethodGet, Pattern: "/v1/endpoints/{id}/attempts", Handler: q(r.handleAttempts, page...)},
	}
}

// endpointJSON is an endpoint as the API shows it. Secret is set only in the
// answers of create and rotate-secret. URL is always shown redacted
// (netguard.RedactURL: user name, password and query values hidden), in the
// answer to create too: credentials in a URL are write-only like the
// secret, and API answers end up in logs, terminals and dashboards.
type endpointJSON struct {
	ID           string    `json:"id"`
	URL          string    `json:"url"`
	EventTypes   []string  `json:"event_types"`
	Description  string    `json:"description"`
	RateLimit    float64   `json:"rate_limit"`
	Concurrency  int       `json:"concurrency"`
	Ordered      bool      `json:"ordered"`
	Partitions   int       `json:"partitions,omitempty"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	StatusSince  time.Time `json:"status_since"`
	// Backlog is the endpoint's deliveries not yet settled (unread,
	// waiting for a retry, or in flight), from its consumer; shown by
	// show and list.
	Backlog   *uint64   `json:"backlog,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Secret    string    `json:"secret,omitempty"`
}

func view(ep *streams.Endpoint, h *streams.Health) endpointJSON {
	types := ep.EventTypes
	if types == nil {
		types = []string{}
	}
	return endpointJSON{
		ID:           ep.ID,
		URL:          netguard.RedactURL(ep.URL),
		EventTypes:   types,
		Description:  ep.Description,
		RateLimit:    ep.RateLimit,
		Concurrency:  ep.Concurrency,
		Ordered:      ep.Ordered,
		Partitions:   ep.Partitions,
		Status:       h.Status,
		StatusReason: h.Reason,
		StatusSince:  h.Since.UTC(),
		CreatedAt:    ep.CreatedAt.UTC(),
		UpdatedAt:    ep.UpdatedAt.UTC(),
	}
}

type createBody struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Secret      string   `json:"secret"`
	Description string   `json:"description"`
	RateLimit   float64  `json:"rate_limit"`
	Concurrency int      `json:"concurrency"`
	Ordered     bool     `json:"ordered"`
	Partitions  int      `json:"partitions"`
}

// patchBody takes any subset of the changeable fields. Secret is here only
// to answer it with a pointer to rotate-secret rather than "unknown field".
type patchBody struct {
	URL         *string         `json:"url"`
	EventTypes  *[]string       `json:"event_types"`
	Description *string         `json:"description"`
	RateLimit   *float64        `json:"rate_limit"`
	Concurrency *int            `json:"concurrency"`
	Ordered     *bool           `json:"ordered"`
	Partitions  *int            `json:"partitions"`
	Secret      json.RawMessage `json:"secret"`
}

func (r *Registry) handleCreate(w http.ResponseWriter, req *http.Request) {
	var b createBody
	if err := httpjson.Decode(w, req, 0, &b); err != nil {
		httpjson.Fail(w, err)
		return
	}
	ep, err := r.Create(req.Context(), CreateInput(b))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	v := view(ep, streams.NewHealth(ep.ID, ep.CreatedAt))
	v.Secret = ep.Secrets[0].Key
	httpjson.WriteJSON(w, http.StatusCreated, v)
}

func (r *Registry) handleList(w http.ResponseWriter, req *http.Request) {
	limit, cursor, err := httpjson.ParsePage(req)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	if cursor != "" && !validID(cursor) {
		// A cursor is the last endpoint id of a page: anything else was not
		// returned by this list, and would silently start it elsewhere.
		httpjson.Fail(w, httpjson.BadRequest("cursor: %q is not a cursor this list returned", cursor))
		return
	}
	page, next, err := r.list(req.Context(), limit, cursor)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	backlogs := r.backlogs(req.Context())
	items := make([]endpointJSON, 0, len(page))
	for _, l := range page {
		v := view(l.ep, l.h)
		if n, ok := backlogs[l.ep.ID]; ok || backlogs != nil {
			v.Backlog = &n
		}
		items = append(items, v)
	}
	httpjson.WriteJSON(w, http.StatusOK, httpjson.Page[endpointJSON]{Items: items, NextCursor: next})
}

func (r *Registry) handleShow(w http.ResponseWriter, req *http.Request) {
	ep, h, err := r.Get(req.Context(), req.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	v := view(ep, h)
	v.Backlog = r.backlog(req.Context(), ep)
	httpjson.WriteJSON(w, http.StatusOK, v)
}

// backlog reads one endpoint's backlog from its consumer (an ordered
// endpoint's: from its lanes' consumers, summed): nil when it cannot be
// read, 0 when the endpoint has no consumer yet.
func (r *Registry) backlog(ctx context.Context, ep *streams.Endpoint) *uint64 {
	names := []string{streams.DeliveryConsumer(ep.ID)}
	if ep.Ordered {
		names = names[:0]
		for lane := range ep.Lanes() {
			names = append(names, streams.LaneConsumer(ep.ID, lane))
		}
	}
	var n uint64
	for _, name := range names {
		c, err := r.cfg.JS.Consumer(ctx, streams.StreamDeliveries, name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
		case err != nil:
			return nil
		default:
			ci := c.CachedInfo()
			n += ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	return &n
}

// backlogs reads every endpoint's backlog in one listing of the consumers
// (a few paged requests for thousands), or nil when it cannot.
func (r *Registry) backlogs(ctx context.Context) map[string]uint64 {
	s, err := r.cfg.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		// An endpoint's consumer or one of an ordered endpoint's lanes'
		// (summed): its filter names the endpoint.
		if strings.HasPrefix(ci.Name, streams.DeliveryConsumer("")) && strings.HasPrefix(ci.Config.FilterSubject, streams.SubjectDeliveries+".") {
			out[streams.EndpointOfSubject(ci.Config.FilterSubject)] += ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	if list.Err() != nil {
		return nil
	}
	return out
}

func (r *Registry) handleUpdate(w http.ResponseWriter, req *http.Request) {
	var b patchBody
	if err := httpjson.Decode(w, req, 0, &b); err != nil {
		httpjson.Fail(w, err)
		return
	}
	if len(b.Secret) > 0 {
		httpjson.Fail(w, httpjson.BadRequest("secret: use rotate-secret"))
		return
	}
	ep, err := r.Update(req.Context(), req.PathValue("id"), UpdateInput{
		URL: b.URL, EventTypes: b.EventTypes, Description: b.Description, RateLimit: b.RateLimit, Concurrency: b.Concurrency,
		Ordered: b.Ordered, Partitions: b.Partitions,
	})
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	r.writeEndpoint(w, req, ep, "")
}

func (r *Registry) handleDelete(w http.ResponseWriter, req *http.Request) {
	if err := r.Delete(req.Context(), req.PathValue("id")); err != nil {
		httpjson.Fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *Registry) handleSetEnabled(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		h, err := r.SetEnabled(req.Context(), id, enabled)
		if err != nil {
			httpjson.Fail(w, err)
			return
		}
		ep, err := r.endpoint(req.Context(), id)
		if err != nil {
			httpjson.Fail(w, err)
			return
		}
		httpjson.WriteJSON(w, http.StatusOK, view(ep, h))
	}
}

func (r *Registry) handleRotateSecret(w http.ResponseWriter, req *http.Request) {
	ep, err := r.rotate(req.Context(), req.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	r.writeEndpoint(w, req, ep, ep.Secrets[0].Key)
}

// writeEndpoint answers ep with its current health, and secret if given.
func (r *Registry) writeEndpoint(w http.ResponseWriter, req *http.Request, ep *streams.Endpoint, secret string) {
	h, err := r.healthOf(req.Context(), ep)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	v := view(ep, h)
	v.Secret = secret
	httpjson.WriteJSON(w, http.StatusOK, v)
}

func (r *Registry) handleAttempts(w http.ResponseWriter, req *http.Request) {
	limit, cursor, err := httpjson.ParsePage(req)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	before, err := parseSeqCursor(cursor)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	items, next, err := r.attemptsPage(req.Context(), req.PathValue("id"), limit, before)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	page := httpjson.Page[attemptJSON]{Items: items}
	if next.seq != 0 {
		page.NextCursor = next.cursor()
	}
	httpjson.WriteJSON(w, http.StatusOK, page)
}
