package producer

import (
	"net/http"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// Routes are the event routes: POST /v1/events publishes an event and
// GET /v1/events/{id} shows it with its deliveries.
func (p *Producer) Routes() []httpjson.Route {
	return []httpjson.Route{
		{Method: http.MethodPost, Pattern: "/v1/events", Handler: httpjson.Query(p.handlePublish)},
		{Method: http.MethodPost, Pattern: "/v1/events/batch", Handler: httpjson.Query(p.handlePublishBatch)},
		{Method: http.MethodGet, Pattern: "/v1/events/{id}", Handler: httpjson.Query(p.handleGet)},
	}
}

// publishResponse is the answer of POST /v1/events.
type publishResponse struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// handlePublish answers 202 only once JetStream acknowledged the store; 400
// or 413 for bad input, naming the field or the limit; 503 with a
// Retry-After when nothing was stored.
func (p *Producer) handlePublish(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, p.lim.maxBody)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	ev, err := decodeEventRequest(body, p.lim)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	ev.TraceParent = requestTraceParent(r)
	res, err := p.store(r.Context(), &ev)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusAccepted, publishResponse{ID: res.ID, Duplicate: res.Duplicate})
}

func (p *Producer) refuse(w http.ResponseWriter, r *http.Request, err error) {
	p.metrics.invalid()
	p.log.DebugContext(r.Context(), "event refused", "err", err)
	httpjson.Fail(w, err)
}

// handleGet answers the event and its deliveries, 404 for an unknown id.
func (p *Producer) handleGet(w http.ResponseWriter, r *http.Request) {
	ev, err := p.lookup(r.Context(), r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, ev)
}

// requestTraceParent is the request's W3C traceparent header, or "" when it
// has none or one that is not valid (a trace is metadata: as the W3C
// recommends, a bad one is dropped, not the event).
func requestTraceParent(r *http.Request) string {
	tp := r.Header.Get("traceparent")
	if tp == "" || streams.ValidateTraceParent(tp) != nil {
		return ""
	}
	return tp
}
