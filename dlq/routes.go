package dlq

import (
	"net/http"

	"github.com/hookstream/hookstream/internal/httpjson"
)

// Routes are the dead-letter routes, for the API server to mount.
func (s *Service) Routes() []httpjson.Route {
	q := httpjson.Query
	return []httpjson.Route{
		{Method: http.MethodGet, Pattern: "/v1/dlq", Handler: q(s.handleList, listParams...)},
		{Method: http.MethodGet, Pattern: "/v1/dlq/{id}", Handler: q(s.handleGet)},
		{Method: http.MethodDelete, Pattern: "/v1/dlq/{id}", Handler: q(s.handleDelete)},
		{Method: http.MethodPost, Pattern: "/v1/dlq/{id}/replay", Handler: q(s.handleReplay)},
		{Method: http.MethodPost, Pattern: "/v1/dlq/replay", Handler: q(s.handleBulkReplay)},
		{Method: http.MethodGet, Pattern: "/v1/dlq/replays/{job}", Handler: q(s.handleJob)},
	}
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q.Get)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	limit, cursor, err := httpjson.ParsePage(r)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	items, next, err := s.List(r.Context(), f, limit, cursor)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, httpjson.Page[Record]{Items: items, NextCursor: next})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	rec, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, rec)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.Delete(r.Context(), r.PathValue("id")); err != nil {
		httpjson.Fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleReplay(w http.ResponseWriter, r *http.Request) {
	rec, err := s.Replay(r.Context(), r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusAccepted, rec)
}

// bulkReplayAnswer is the 202 body of POST /v1/dlq/replay.
type bulkReplayAnswer struct {
	Job     string `json:"job"`
	Matched int    `json:"matched"`
}

func (s *Service) handleBulkReplay(w http.ResponseWriter, r *http.Request) {
	var body filterJSON
	if err := httpjson.Decode(w, r, 0, &body); err != nil {
		httpjson.Fail(w, err)
		return
	}
	fields := map[string]string{
		"endpoint": body.Endpoint, "reason": body.Reason, "type": body.Type,
		"since": body.Since, "until": body.Until, "state": body.State,
	}
	f, err := parseFilter(func(name string) string { return fields[name] })
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	j, err := s.createJob(r.Context(), f)
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusAccepted, bulkReplayAnswer{Job: j.ID, Matched: j.Matched})
}

func (s *Service) handleJob(w http.ResponseWriter, r *http.Request) {
	j, _, err := s.getJob(r.Context(), r.PathValue("job"))
	if err != nil {
		httpjson.Fail(w, err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, j.view())
}
