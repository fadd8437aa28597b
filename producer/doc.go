// Package producer owns hookstream's publish API: the Go client (Publish)
// and the HTTP routes for events, POST /v1/events and GET /v1/events/{id}.
// It validates an event against the limits, stores it in EVENTS and answers
// only once JetStream acknowledged the store (a refusal or an unreachable
// NATS is streams.ErrUnavailable, HTTP 503), writes the event's first index
// entry so that the event can be looked up at once, and shows an event with
// the state of its delivery to each endpoint. Fan-out and delivery belong to
// the dispatcher; this package only reads what it writes.
package producer
