package dlq

import (
	"strings"
	"time"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// Filter selects dead-letter records. Every set field must match; the zero
// Filter matches every record.
type Filter struct {
	// Endpoint is an endpoint id.
	Endpoint string
	// Reason is expired, endpoint_gone or endpoint_deleted.
	Reason string
	// Type is an exact event type or a prefix such as "order.*".
	Type string
	// State is dead, replayed or delivered.
	State string
	// Since and Until bound dead_at: Since inclusive, Until exclusive.
	Since, Until time.Time
}

// filterParams are the names of a filter's fields, as query parameters of
// GET /v1/dlq and fields of the bulk replay body.
var filterParams = []string{"endpoint", "reason", "type", "since", "until", "state"}

// listParams are the query parameters GET /v1/dlq takes.
var listParams = append(append([]string{}, filterParams...), httpjson.PageParams...)

// filterJSON is a Filter as the bulk replay body and job progress show it.
type filterJSON struct {
	Endpoint string `json:"endpoint,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Type     string `json:"type,omitempty"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
	State    string `json:"state,omitempty"`
}

func (f Filter) toJSON() filterJSON {
	j := filterJSON{Endpoint: f.Endpoint, Reason: f.Reason, Type: f.Type, State: f.State}
	if !f.Since.IsZero() {
		j.Since = f.Since.UTC().Format(time.RFC3339Nano)
	}
	if !f.Until.IsZero() {
		j.Until = f.Until.UTC().Format(time.RFC3339Nano)
	}
	return j
}

// parseFilter reads a filter's fields by name (query parameters or the
// decoded body) and validates it; its errors are 400s naming the field.
func parseFilter(get func(name string) string) (Filter, error) {
	f := Filter{Endpoint: get("endpoint"), Reason: get("reason"), Type: get("type"), State: get("state")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		s := get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return Filter{}, httpjson.BadRequest("%s: must be an RFC 3339 time such as 2025-01-02T15:04:05Z, got %q", p.name, s)
		}
		*p.to = t.UTC()
	}
	return f, f.validate()
}

// validate checks every set field, naming the first bad one.
func (f Filter) validate() error {
	if f.Endpoint != "" && !validToken(f.Endpoint) {
		return httpjson.BadRequest("endpoint: %q is not an endpoint id", f.Endpoint)
	}
	switch f.Reason {
	case "", streams.ReasonExpired, streams.ReasonEndpointGone, streams.ReasonEndpointDeleted:
	default:
		return httpjson.BadRequest("reason: must be %s, %s or %s, got %q",
			streams.ReasonExpired, streams.ReasonEndpointGone, streams.ReasonEndpointDeleted, f.Reason)
	}
	if f.Type != "" {
		if err := streams.ValidateTypeFilter(f.Type); err != nil {
			return httpjson.BadRequest("type: must be an event type or a prefix such as order.*, got %q", f.Type)
		}
	}
	switch f.State {
	case "", streams.DLQStateDead, streams.DLQStateReplayed, streams.DLQStateDelivered:
	default:
		return httpjson.BadRequest("state: must be %s, %s or %s, got %q",
			streams.DLQStateDead, streams.DLQStateReplayed, streams.DLQStateDelivered, f.State)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return httpjson.BadRequest("until: must be after since")
	}
	return nil
}

// validToken reports whether s can be one NATS subject token (an endpoint
// id always is): no separators, wildcards, spaces or control characters.
func validToken(s string) bool {
	if len(s) > 256 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>'
	})
}

// matchFields reports whether a record's immutable fields match f (every
// field but State).
func (f Filter) matchFields(endpoint, reason, typ string, deadAt time.Time) bool {
	switch {
	case f.Endpoint != "" && endpoint != f.Endpoint:
		return false
	case f.Reason != "" && reason != f.Reason:
		return false
	case f.Type != "" && !streams.MatchType(f.Type, typ):
		return false
	case !f.Since.IsZero() && deadAt.Before(f.Since):
		return false
	case !f.Until.IsZero() && !deadAt.Before(f.Until):
		return false
	}
	return true
}

// matchState reports whether a record in state matches f.
func (f Filter) matchState(state string) bool { return f.State == "" || f.State == state }
