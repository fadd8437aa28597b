package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Dead-letter reasons.
const (
	ReasonExpired         = "expired"
	ReasonEndpointGone    = "endpoint_gone"
	ReasonEndpointDeleted = "endpoint_deleted"
	ReasonUndecodable     = "undecodable"
)

// Dead-letter states.
const (
	StateDead      = "dead"
	StateReplayed  = "replayed"
	StateDelivered = "delivered"
)

// DeadLetter is a dead-letter record as the API shows it.
type DeadLetter struct {
	ID         string `json:"id"`
	Seq        uint64 `json:"seq"` // its DLQ stream sequence
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
	// Generation is 0 for the original delivery, n for the n-th replay.
	Generation int `json:"generation"`
	// AttemptCount is every attempt's count; Attempts keeps the first 5 and
	// the last 20.
	AttemptCount     int                 `json:"attempt_count"`
	Attempts         []DeadLetterAttempt `json:"attempts"`
	FirstAttempt     time.Time           `json:"first_attempt,omitzero"`
	LastAttempt      time.Time           `json:"last_attempt,omitzero"`
	DeadAt           time.Time           `json:"dead_at"`
	ReplayGeneration int                 `json:"replay_generation"`
}

// DeadLetterAttempt is one attempt kept in a dead-letter record.
type DeadLetterAttempt struct {
	Attempt      int       `json:"attempt"`
	Time         time.Time `json:"time"`
	Duration     Duration  `json:"duration"`
	StatusCode   int       `json:"status_code"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"response_body"`
}

// DLQFilter selects dead letters; every field set must match. Type is an
// exact type or a prefix "order.*"; Since is inclusive, Until exclusive,
// both on the record's dead_at.
type DLQFilter struct {
	Endpoint string    `json:"endpoint,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Type     string    `json:"type,omitempty"`
	State    string    `json:"state,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"`
}

// Empty reports whether f matches every record.
func (f DLQFilter) Empty() bool { return f == DLQFilter{} }

func (f DLQFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"endpoint": f.Endpoint, "reason": f.Reason, "type": f.Type, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ListDeadLetters lists one page of the dead letters matching f, oldest
// first. The server reads a bounded stretch of the stream per request, so a
// sparse filter may answer few items, or none, with a NextCursor: All
// follows it.
func (c *Client) ListDeadLetters(ctx context.Context, f DLQFilter, opts ListOptions) (*Page[DeadLetter], error) {
	q := f.query()
	for k, v := range opts.query() {
		q[k] = v
	}
	out := new(Page[DeadLetter])
	if err := c.get(ctx, "/v1/dlq", q, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeadLetters is ListDeadLetters with f bound, for All:
// client.All(ctx, opts, c.DeadLetters(f)).
func (c *Client) DeadLetters(f DLQFilter) func(context.Context, ListOptions) (*Page[DeadLetter], error) {
	return func(ctx context.Context, opts ListOptions) (*Page[DeadLetter], error) {
		return c.ListDeadLetters(ctx, f, opts)
	}
}

// DeadLetter shows one record with its attempts.
func (c *Client) DeadLetter(ctx context.Context, id string) (*DeadLetter, error) {
	out := new(DeadLetter)
	if err := c.get(ctx, "/v1/dlq/"+esc(id), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteDeadLetter deletes one record.
func (c *Client) DeleteDeadLetter(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/dlq/" + esc(id)}, nil)
}

// ReplayDeadLetter publishes a new generation of the record's delivery (the
// same webhook-id, a fresh retry window) and answers the record, now
// replayed. A record already replayed is a 409 *Error.
func (c *Client) ReplayDeadLetter(ctx context.Context, id string) (*DeadLetter, error) {
	out := new(DeadLetter)
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/dlq/" + esc(id) + "/replay"}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReplayStarted is the 202 answer of a bulk replay.
type ReplayStarted struct {
	Job     string `json:"job"`
	Matched int    `json:"matched"`
}

// ReplayDeadLetters starts a bulk replay of the dead records matching f;
// follow it with ReplayJob.
func (c *Client) ReplayDeadLetters(ctx context.Context, f DLQFilter) (*ReplayStarted, error) {
	out := new(ReplayStarted)
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/dlq/replay", body: f}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Replay job states.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// ReplayJob is a bulk replay's progress.
type ReplayJob struct {
	Job      string `json:"job"`
	State    string `json:"state"`
	Matched  int    `json:"matched"`
	Replayed int    `json:"replayed"`
	Skipped  int    `json:"skipped"`
	Failed   int    `json:"failed"`
	Filter   struct {
		Endpoint string `json:"endpoint,omitempty"`
		Reason   string `json:"reason,omitempty"`
		Type     string `json:"type,omitempty"`
		Since    string `json:"since,omitempty"`
		Until    string `json:"until,omitempty"`
		State    string `json:"state,omitempty"`
	} `json:"filter"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Error     string    `json:"error,omitempty"`
}

// Finished reports whether the job has ended, done or failed.
func (j *ReplayJob) Finished() bool { return j.State != JobRunning }

// ReplayJob shows a bulk replay's progress.
func (c *Client) ReplayJob(ctx context.Context, job string) (*ReplayJob, error) {
	out := new(ReplayJob)
	if err := c.get(ctx, "/v1/dlq/replays/"+esc(job), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}
