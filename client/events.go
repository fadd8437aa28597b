package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Event is an event to publish: POST /v1/events. Type and Data are
// required; an empty ID is generated (give one: it is the idempotency key),
// an empty Source is "default", a zero Time is now.
type Event struct {
	ID     string          `json:"id,omitempty"`
	Type   string          `json:"type"`
	Source string          `json:"source,omitempty"`
	Time   time.Time       `json:"time,omitzero"`
	Data   json.RawMessage `json:"data"`
	// OrderingKey orders the events that share it on an ordered endpoint.
	OrderingKey string `json:"ordering_key,omitempty"`
}

// PublishResult is the 202 answer of a publish: the event's id, and whether
// the id was already stored inside the duplicate window (then nothing was
// stored again).
type PublishResult struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// Publish stores an event: it returns once JetStream acknowledged it. A 503
// (*Error with RetryAfter) stored nothing: publish again with the same id.
func (c *Client) Publish(ctx context.Context, ev Event) (*PublishResult, error) {
	out := new(PublishResult)
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/events", body: ev}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MaxBatchEvents is the most events one PublishBatch takes.
const MaxBatchEvents = 1000

// BatchResult is one event's result in a batch, in the request's order:
// Duplicate set when it was stored (or already was), Error when it was not.
type BatchResult struct {
	ID        string `json:"id"`
	Duplicate *bool  `json:"duplicate,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Stored reports whether the event is stored.
func (r BatchResult) Stored() bool { return r.Error == "" && r.Duplicate != nil }

// PublishBatch stores up to MaxBatchEvents events: POST /v1/events/batch.
// Every event is validated first: an invalid one is a 400 *Error naming it
// (events[3].type: …) and nothing is stored. When NATS took only part of
// the batch, the results (each event's, stored or not) come with a 503
// *Error; sending the whole batch again with the same ids is safe.
//
// With atomic, all are stored or none, contiguously and in order.
func (c *Client) PublishBatch(ctx context.Context, events []Event, atomic bool) ([]BatchResult, error) {
	var out struct {
		Results []BatchResult `json:"results"`
	}
	body := struct {
		Events []Event `json:"events"`
		Atomic bool    `json:"atomic,omitempty"`
	}{events, atomic}
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/events/batch", body: body}, &out)
	var ce *Error
	if errors.As(err, &ce) && ce.Status == http.StatusServiceUnavailable {
		_ = json.Unmarshal(ce.Body, &out)
	}
	return out.Results, err
}

// Delivery states of an EventStatus's deliveries.
const (
	DeliveryPending   = "pending"
	DeliveryRetrying  = "retrying"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
	DeliveryHeld      = "held"
)

// EventStatus is an event with its delivery to each subscribed endpoint:
// GET /v1/events/{id}.
type EventStatus struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// OrderingKey is empty when the event has none.
	OrderingKey string          `json:"ordering_key,omitempty"`
	Data        json.RawMessage `json:"data"`
	Deliveries  []Delivery      `json:"deliveries"`
}

// Delivery is one endpoint's delivery of an event. A pending delivery has
// only Endpoint and State.
type Delivery struct {
	Endpoint     string    `json:"endpoint"`
	State        string    `json:"state"`
	Generation   int       `json:"generation"`
	Attempts     int       `json:"attempts"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastStatus   int       `json:"last_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	DeadLetterID string    `json:"dead_letter_id,omitempty"`
}

// Event shows an event and its deliveries; a 404 *Error for an id not (or
// no longer) stored.
func (c *Client) Event(ctx context.Context, id string) (*EventStatus, error) {
	out := new(EventStatus)
	if err := c.get(ctx, "/v1/events/"+esc(id), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}
