package dashboard

import (
	"net/http"
	"net/url"
	"time"
)

// sourceJSON is a source as GET /v1/sources shows it.
type sourceJSON struct {
	ID             string     `json:"id"`
	ChangesURL     string     `json:"changes_url"`
	Interval       string     `json:"interval"`
	ExpectedWindow string     `json:"expected_window"`
	Status         string     `json:"status"`
	StatusSince    *time.Time `json:"status_since"`
	LastSuccess    *time.Time `json:"last_success"`
	LastError      string     `json:"last_error"`
	LastErrorAt    *time.Time `json:"last_error_at"`
	NextPoll       *time.Time `json:"next_poll"`
	Cursor         string     `json:"cursor"`
	Failures       int        `json:"failures"`
}

type sourcesView struct {
	base
	Sources    []sourceJSON
	Cursor     string
	NextCursor string
}

func (d *Dashboard) sources(w http.ResponseWriter, r *http.Request) {
	v := &sourcesView{Cursor: r.URL.Query().Get("cursor")}
	v.Title, v.Nav = "Sources", "sources"
	q := url.Values{"limit": {"100"}}
	if v.Cursor != "" {
		q.Set("cursor", v.Cursor)
	}
	var p page[sourceJSON]
	status := http.StatusOK
	if err := d.api.get(r.Context(), "/v1/sources", q, &p); err != nil {
		v.Error, status = userMessage(err), statusOf(err)
	}
	v.Sources, v.NextCursor = p.Items, p.NextCursor
	d.render(w, r, status, "sources", v)
}
