package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// eventJSON is the answer of GET /v1/events/{id}.
type eventJSON struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"time"`
	Data       json.RawMessage `json:"data"`
	Deliveries []deliveryJSON  `json:"deliveries"`
}

// deliveryJSON is the event's delivery to one endpoint.
type deliveryJSON struct {
	Endpoint     string    `json:"endpoint"`
	State        string    `json:"state"`
	Generation   int       `json:"generation"`
	Attempts     int       `json:"attempts"`
	LastAttempt  time.Time `json:"last_attempt"`
	LastStatus   int       `json:"last_status"`
	LastError    string    `json:"last_error"`
	NextAttempt  time.Time `json:"next_attempt"`
	DeadLetterID string    `json:"dead_letter_id"`
}

func eventPath(id string) string { return "/v1/events/" + url.PathEscape(id) }

type eventView struct {
	base
	ID    string
	Event *eventJSON
}

// event looks an event up by the id in ?id=; without one it shows only
// the form.
func (d *Dashboard) event(w http.ResponseWriter, r *http.Request) {
	v := &eventView{ID: strings.TrimSpace(r.URL.Query().Get("id"))}
	v.Title, v.Nav = "Events", "events"
	status := http.StatusOK
	if v.ID != "" {
		v.Title = "Event " + v.ID
		var ev eventJSON
		switch err := d.api.get(r.Context(), eventPath(v.ID), nil, &ev); {
		case isNotFound(err):
			v.Error = "No event with id " + v.ID + " is stored. Events are kept for --events-max-age (7 days by default); ids are case-sensitive."
			status = http.StatusNotFound
		case err != nil:
			v.Error, status = userMessage(err), statusOf(err)
		default:
			v.Event = &ev
		}
	}
	d.render(w, r, status, "event", v)
}
