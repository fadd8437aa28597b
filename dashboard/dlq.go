package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// deadLettersPerPage is the size of one DLQ page.
const deadLettersPerPage = 50

// recordJSON is a dead letter as GET /v1/dlq/{id} shows it.
type recordJSON struct {
	ID         string `json:"id"`
	Seq        uint64 `json:"seq"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	EndpointID string `json:"endpoint_id"`
	URL        string `json:"url"`
	Event      struct {
		ID     string          `json:"id"`
		Type   string          `json:"type"`
		Source string          `json:"source"`
		Time   time.Time       `json:"time"`
		Data   json.RawMessage `json:"data"`
	} `json:"event"`
	Generation       int           `json:"generation"`
	AttemptCount     int           `json:"attempt_count"`
	Attempts         []attemptJSON `json:"attempts"`
	FirstAttempt     time.Time     `json:"first_attempt"`
	LastAttempt      time.Time     `json:"last_attempt"`
	DeadAt           time.Time     `json:"dead_at"`
	ReplayGeneration int           `json:"replay_generation"`
}

// Last is the record's last attempt, nil when it has none (an endpoint
// deleted before any attempt).
func (r recordJSON) Last() *attemptJSON {
	if len(r.Attempts) == 0 {
		return nil
	}
	return &r.Attempts[len(r.Attempts)-1]
}

// jobJSON is a bulk replay job as GET /v1/dlq/replays/{job} shows it.
type jobJSON struct {
	Job       string    `json:"job"`
	State     string    `json:"state"`
	Matched   int       `json:"matched"`
	Replayed  int       `json:"replayed"`
	Skipped   int       `json:"skipped"`
	Failed    int       `json:"failed"`
	Filter    dlqFilter `json:"filter"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Error     string    `json:"error"`
}

// Done is how many records the job has handled.
func (j jobJSON) Done() int { return j.Replayed + j.Skipped + j.Failed }

// dlqFilter is the filter of GET /v1/dlq and of a bulk replay; Since and
// Until are RFC 3339 times in UTC.
type dlqFilter struct {
	Endpoint string `json:"endpoint,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Type     string `json:"type,omitempty"`
	State    string `json:"state,omitempty"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
}

// filterOf reads a filter from a form or query. Times come from the
// datetime-local inputs since_local/until_local when the browser sent them
// (taken as UTC: without JavaScript the page labels them so), otherwise
// from since/until in RFC 3339, which the script fills in from the viewer's
// local time and which the page's links carry.
func filterOf(get func(string) string) (dlqFilter, error) {
	f := dlqFilter{
		Endpoint: strings.TrimSpace(get("endpoint")), Reason: get("reason"), Type: strings.TrimSpace(get("type")),
		State: get("state"), Since: strings.TrimSpace(get("since")), Until: strings.TrimSpace(get("until")),
	}
	for _, t := range []struct {
		name string
		to   *string
	}{{"since", &f.Since}, {"until", &f.Until}} {
		local := strings.TrimSpace(get(t.name + "_local"))
		if local == "" {
			continue
		}
		var parsed time.Time
		var err error
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
			if parsed, err = time.Parse(layout, local); err == nil {
				break
			}
		}
		if err != nil {
			return f, fmt.Errorf("%s: %q is not a date and time such as 2025-01-02T15:04", t.name, local)
		}
		*t.to = parsed.UTC().Format(time.RFC3339)
	}
	return f, nil
}

func (f dlqFilter) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"endpoint": f.Endpoint, "reason": f.Reason, "type": f.Type,
		"state": f.State, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// Query is the filter as a query string for links ("" when empty).
func (f dlqFilter) Query() string {
	if q := f.values(); len(q) > 0 {
		return "?" + q.Encode()
	}
	return ""
}

// Empty reports whether the filter matches every record.
func (f dlqFilter) Empty() bool { return f == dlqFilter{} }

type dlqView struct {
	base
	Filter     dlqFilter
	Endpoints  []endpointJSON
	Items      []recordJSON
	Cursor     string
	NextCursor string
}

// CanReplayAll reports whether the filter can select dead records, which
// are all a bulk replay takes.
func (v *dlqView) CanReplayAll() bool { return v.Filter.State == "" || v.Filter.State == "dead" }

func (d *Dashboard) deadLetters(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	v := &dlqView{Cursor: q.Get("cursor")}
	v.Title, v.Nav = "Dead letters", "dlq"
	f, err := filterOf(q.Get)
	v.Filter = f
	status := http.StatusOK
	var eps page[endpointJSON]
	if err := d.api.get(ctx, "/v1/endpoints", url.Values{"limit": {"1000"}}, &eps); err == nil {
		v.Endpoints = eps.Items
	}
	if f.Endpoint != "" && !hasEndpoint(v.Endpoints, f.Endpoint) {
		// A deleted endpoint's dead letters stay: keep it selectable.
		v.Endpoints = append(v.Endpoints, endpointJSON{ID: f.Endpoint})
	}
	if err != nil {
		v.Error, status = sentence(err.Error()), http.StatusBadRequest
		d.render(w, r, status, "dlq", v)
		return
	}
	lq := f.values()
	lq.Set("limit", strconv.Itoa(deadLettersPerPage))
	if v.Cursor != "" {
		lq.Set("cursor", v.Cursor)
	}
	var p page[recordJSON]
	if err := d.api.get(ctx, "/v1/dlq", lq, &p); err != nil {
		v.Error, status = userMessage(err), statusOf(err)
	}
	v.Items, v.NextCursor = p.Items, p.NextCursor
	d.render(w, r, status, "dlq", v)
}

func hasEndpoint(eps []endpointJSON, id string) bool {
	for _, ep := range eps {
		if ep.ID == id {
			return true
		}
	}
	return false
}

func dlqPath(id string) string { return "/v1/dlq/" + url.PathEscape(id) }

type recordView struct {
	base
	Record recordJSON
}

func (d *Dashboard) deadLetter(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") == "json" {
		d.proxyJSON(w, r, dlqPath(r.PathValue("id")))
		return
	}
	d.showRecord(w, r, http.StatusOK, &recordView{})
}

func (d *Dashboard) showRecord(w http.ResponseWriter, r *http.Request, status int, v *recordView) {
	if err := d.api.get(r.Context(), dlqPath(r.PathValue("id")), nil, &v.Record); err != nil {
		d.failAPI(w, r, err)
		return
	}
	v.Title, v.Nav = "Dead letter "+v.Record.ID, "dlq"
	if v.Record.State == "replayed" {
		v.Refresh = 2
	}
	d.render(w, r, status, "record", v)
}

func (d *Dashboard) replay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := d.api.post(r.Context(), dlqPath(id)+"/replay", nil, nil); err != nil {
		if isNotFound(err) {
			d.failAPI(w, r, err)
			return
		}
		v := &recordView{}
		v.Error = userMessage(err)
		d.showRecord(w, r, statusOf(err), v)
		return
	}
	http.Redirect(w, r, "/dlq/"+url.PathEscape(id)+"?done=replayed", http.StatusSeeOther)
}

// replayAll starts a bulk replay of the dead records the form's filter
// matches and shows its progress.
func (d *Dashboard) replayAll(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r.PostFormValue)
	if err == nil {
		f.State = "" // a job takes only dead records whatever the state
		var job struct {
			Job string `json:"job"`
		}
		if err = d.api.post(r.Context(), "/v1/dlq/replay", f, &job); err == nil {
			http.Redirect(w, r, "/dlq/replays/"+url.PathEscape(job.Job), http.StatusSeeOther)
			return
		}
		d.fail(w, r, statusOf(err), "The bulk replay was not started: "+userMessage(err))
		return
	}
	d.fail(w, r, http.StatusBadRequest, "The bulk replay was not started: "+sentence(err.Error()))
}

type jobView struct {
	base
	Job jobJSON
}

func (d *Dashboard) replayJob(w http.ResponseWriter, r *http.Request) {
	path := "/v1/dlq/replays/" + url.PathEscape(r.PathValue("job"))
	if r.URL.Query().Get("format") == "json" {
		d.proxyJSON(w, r, path)
		return
	}
	v := &jobView{}
	if err := d.api.get(r.Context(), path, nil, &v.Job); err != nil {
		d.failAPI(w, r, err)
		return
	}
	v.Title, v.Nav = "Bulk replay", "dlq"
	if v.Job.State == "running" {
		v.Refresh = 2
	}
	d.render(w, r, http.StatusOK, "job", v)
}

// proxyJSON answers with the API's JSON for path, for the page's script
// (which has the session cookie, not the token).
func (d *Dashboard) proxyJSON(w http.ResponseWriter, r *http.Request, path string) {
	var raw json.RawMessage
	w.Header().Set("Content-Type", "application/json")
	if err := d.api.get(r.Context(), path, nil, &raw); err != nil {
		w.WriteHeader(statusOf(err))
		_ = json.NewEncoder(w).Encode(map[string]string{"error": userMessage(err)})
		return
	}
	_, _ = w.Write(raw)
}
