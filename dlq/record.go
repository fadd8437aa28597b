package dlq

import (
	"encoding/json"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// Record is a dead-letter record as the API shows it (see the package
// documentation for its JSON form).
type Record struct {
	ID               string          `json:"id"`
	Seq              uint64          `json:"seq"`
	State            string          `json:"state"`
	Reason           string          `json:"reason"`
	EndpointID       string          `json:"endpoint_id"`
	URL              string          `json:"url"`
	Event            RecordEvent     `json:"event"`
	Generation       int             `json:"generation"`
	AttemptCount     int             `json:"attempt_count"`
	Attempts         []RecordAttempt `json:"attempts"`
	FirstAttempt     time.Time       `json:"first_attempt,omitzero"`
	LastAttempt      time.Time       `json:"last_attempt,omitzero"`
	DeadAt           time.Time       `json:"dead_at"`
	ReplayGeneration int             `json:"replay_generation"`
}

// RecordEvent is the event of a Record.
type RecordEvent struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Source string          `json:"source"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
}

// RecordAttempt is one attempt of a Record.
type RecordAttempt struct {
	Attempt int       `json:"attempt"`
	Time    time.Time `json:"time"`
	// Duration is a Go duration string ("1.2s").
	Duration     string `json:"duration"`
	StatusCode   int    `json:"status_code"`
	Error        string `json:"error"`
	ResponseBody string `json:"response_body"`
}

// newRecord is the JSON form of dl, stored at DLQ sequence seq, with its
// state st (nil when the state key is missing: the record is dead). It
// accepts any decoded record, however malformed: its result always encodes.
func newRecord(dl *streams.DeadLetter, st *streams.DLQState, seq uint64) Record {
	r := Record{
		ID:         dl.ID,
		Seq:        seq,
		State:      streams.DLQStateDead,
		Reason:     dl.Reason,
		EndpointID: dl.EndpointID,
		URL:        dl.URL,
		Event: RecordEvent{
			ID:     dl.Event.ID,
			Type:   dl.Event.Type,
			Source: dl.Event.Source,
			Time:   jsonTime(dl.Event.Time),
			Data:   jsonData(dl.Event.Data),
		},
		Generation:   dl.Generation,
		AttemptCount: dl.AttemptCount,
		Attempts:     make([]RecordAttempt, 0, len(dl.Attempts)),
		FirstAttempt: jsonTime(dl.FirstAttempt),
		LastAttempt:  jsonTime(dl.LastAttempt),
		DeadAt:       jsonTime(dl.DeadAt),
	}
	if st != nil {
		r.State = st.State
		r.ReplayGeneration = st.ReplayGeneration
	}
	for _, a := range dl.Attempts {
		r.Attempts = append(r.Attempts, RecordAttempt{
			Attempt:      a.Attempt,
			Time:         jsonTime(a.Time),
			Duration:     a.Duration.String(),
			StatusCode:   a.StatusCode,
			Error:        a.Error,
			ResponseBody: a.ResponseBody,
		})
	}
	return r
}

// jsonTime is t in UTC, or the zero time when JSON cannot hold it (a year
// outside 0–9999, only ever from a corrupt record).
func jsonTime(t time.Time) time.Time {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}
	}
	return t
}

// jsonData is an event's data as JSON: as published when it is valid JSON
// (it always is: the producer checks it), else as a JSON string rather than
// a response that cannot be encoded.
func jsonData(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}
