package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Sizes of the endpoint page.
const (
	attemptsPerPage = 50
	// maxHistory bounds the status changes looked up for one endpoint.
	maxHistory = 100
	// historyShown is how many of the newest status changes are shown.
	historyShown = 20
)

// endpointJSON is an endpoint as GET /v1/endpoints/{id} shows it.
type endpointJSON struct {
	ID           string    `json:"id"`
	URL          string    `json:"url"`
	EventTypes   []string  `json:"event_types"`
	Description  string    `json:"description"`
	RateLimit    float64   `json:"rate_limit"`
	Concurrency  int       `json:"concurrency"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	StatusSince  time.Time `json:"status_since"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Secret       string    `json:"secret,omitempty"`
	// Backlog is the deliveries pending for the endpoint, when the API
	// reports it; nil shows as unknown.
	Backlog *int64 `json:"backlog,omitempty"`
}

// attemptJSON is one attempt of GET /v1/endpoints/{id}/attempts.
type attemptJSON struct {
	EventID      string    `json:"event_id"`
	EventType    string    `json:"event_type"`
	EndpointID   string    `json:"endpoint_id"`
	Generation   int       `json:"generation"`
	Attempt      int       `json:"attempt"`
	Time         time.Time `json:"time"`
	Duration     string    `json:"duration"`
	StatusCode   int       `json:"status_code"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"response_body"`
	NextAttempt  time.Time `json:"next_attempt"`
}

// OK reports whether the attempt delivered (a 2xx answer).
func (a attemptJSON) OK() bool { return a.Error == "" && a.StatusCode >= 200 && a.StatusCode <= 299 }

type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// statusChange is one endpoint.status_changed event.
type statusChange struct {
	EventID string    `json:"-"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
}

type endpointView struct {
	base
	Endpoint endpointJSON
	// Secret is the new secret, right after a rotation; shown only then.
	Secret        string
	History       []statusChange
	HistoryNote   string
	Attempts      []attemptJSON
	AttemptsError string
	Cursor        string
	NextCursor    string
}

func endpointPath(id string) string { return "/v1/endpoints/" + url.PathEscape(id) }

func (d *Dashboard) endpoint(w http.ResponseWriter, r *http.Request) {
	d.showEndpoint(w, r, http.StatusOK, &endpointView{})
}

// showEndpoint renders the endpoint page of r's {id} into v, which may
// already hold a message or a new secret.
func (d *Dashboard) showEndpoint(w http.ResponseWriter, r *http.Request, status int, v *endpointView) {
	ctx := r.Context()
	id := r.PathValue("id")
	if err := d.api.get(ctx, endpointPath(id), nil, &v.Endpoint); err != nil {
		d.failAPI(w, r, err)
		return
	}
	v.Title = "Endpoint " + v.Endpoint.ID
	v.Nav = "overview"
	v.Cursor = r.URL.Query().Get("cursor")
	q := url.Values{"limit": {strconv.Itoa(attemptsPerPage)}}
	if v.Cursor != "" {
		q.Set("cursor", v.Cursor)
	}
	var attempts page[attemptJSON]
	if err := d.api.get(ctx, endpointPath(id)+"/attempts", q, &attempts); err != nil {
		v.AttemptsError = userMessage(err)
	}
	v.Attempts, v.NextCursor = attempts.Items, attempts.NextCursor
	v.History, v.HistoryNote = d.statusHistory(r, v.Endpoint)
	d.render(w, r, status, "endpoint", v)
}

// statusHistory reads an endpoint's endpoint.status_changed events by their
// deterministic ids, endpoint.status_changed:<id>:1, :2, … (DESIGN: "their
// ids are deterministic"), up to the first that is not stored, and returns
// the newest first.
func (d *Dashboard) statusHistory(r *http.Request, ep endpointJSON) ([]statusChange, string) {
	var out []statusChange
	for n := 1; n <= maxHistory; n++ {
		id := "endpoint.status_changed:" + ep.ID + ":" + strconv.Itoa(n)
		var ev struct {
			Data json.RawMessage `json:"data"`
		}
		err := d.api.get(r.Context(), eventPath(id), nil, &ev)
		if isNotFound(err) {
			break
		}
		if err != nil {
			return reverse(out), "The status history could not be read: " + userMessage(err)
		}
		var c statusChange
		if json.Unmarshal(ev.Data, &c) != nil {
			continue
		}
		c.EventID = id
		out = append(out, c)
	}
	out = reverse(out)
	note := ""
	switch {
	case len(out) == 0 && ep.StatusSince.After(ep.CreatedAt.Add(time.Second)):
		note = "Its earlier changes are no longer stored (they age out with the events)."
	case len(out) == 0:
		note = "No status change since it was created."
	case len(out) > historyShown:
		out = out[:historyShown]
	}
	return out, note
}

func reverse[T any](s []T) []T {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}

func (d *Dashboard) setEnabled(enabled bool) http.HandlerFunc {
	action, done := "disable", "disabled"
	if enabled {
		action, done = "enable", "enabled"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := d.api.post(r.Context(), endpointPath(id)+"/"+action, nil, nil); err != nil {
			if isNotFound(err) {
				d.failAPI(w, r, err)
				return
			}
			v := &endpointView{}
			v.Error = userMessage(err)
			d.showEndpoint(w, r, statusOf(err), v)
			return
		}
		http.Redirect(w, r, "/endpoints/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
	}
}

// rotateSecret answers with the endpoint page showing the new secret: it
// is shown this once (the page is not cached), never again.
func (d *Dashboard) rotateSecret(w http.ResponseWriter, r *http.Request) {
	var ep endpointJSON
	if err := d.api.post(r.Context(), endpointPath(r.PathValue("id"))+"/rotate-secret", nil, &ep); err != nil {
		if isNotFound(err) {
			d.failAPI(w, r, err)
			return
		}
		v := &endpointView{}
		v.Error = userMessage(err)
		d.showEndpoint(w, r, statusOf(err), v)
		return
	}
	v := &endpointView{Secret: ep.Secret}
	v.Flash = "Secret rotated. The previous secret keeps signing alongside the new one for the overlap (--secret-overlap)."
	d.showEndpoint(w, r, http.StatusOK, v)
}
