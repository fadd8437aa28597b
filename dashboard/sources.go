package dashboard

import (
	"net/http"
	"net/url"
	"time"
)

// sourceJSON is a source as GET /v1/sources shows it.
type sourceJSON struct {
	ID             string `json:"id"`
	ChangesURL     string `json:"changes_url"`
	Interval       string `json:"interval"`
	ExpectedWindow string `json:"expected_window"`
	Inbound        *struct {
		Format string `json:"format"`
	} `json:"inbound"`
	// IngestURL is the path providers push to; the page prefixes it with
	// the address the viewer reached the dashboard at.
	IngestURL        string     `json:"ingest_url"`
	Status           string     `json:"status"`
	StatusSince      *time.Time `json:"status_since"`
	LastPoll         *time.Time `json:"last_poll"`
	LastPush         *time.Time `json:"last_push"`
	LastPushInstance string     `json:"last_push_instance"`
	LastSuccess      *time.Time `json:"last_success"`
	LastError        string     `json:"last_error"`
	LastErrorAt      *time.Time `json:"last_error_at"`
	NextPoll         *time.Time `json:"next_poll"`
	Cursor           string     `json:"cursor"`
	Failures         int        `json:"failures"`
}

type sourcesView struct {
	base
	Sources    []sourceJSON
	Cursor     string
	NextCursor string
	// Origin is the scheme and host the viewer reached the dashboard at,
	// the likeliest public address of the API (it serves both): the ingest
	// URLs are shown under it, to be pasted into a provider's settings.
	Origin string
}

// origin is the scheme and host r came to, as the viewer's browser sees
// them (https behind a proxy that says so).
func origin(r *http.Request) string {
	scheme := "http"
	if overTLS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (d *Dashboard) sources(w http.ResponseWriter, r *http.Request) {
	v := &sourcesView{Cursor: r.URL.Query().Get("cursor"), Origin: origin(r)}
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
