package client

import (
	"context"
	"encoding/json"
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
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"time"`
	Data       json.RawMessage `json:"data"`
	Deliveries []Delivery      `json:"deliveries"`
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
