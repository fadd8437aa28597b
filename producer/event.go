package producer

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// Event is an event as a publisher gives it. Every field but Type and Data
// may be left zero: ID is then generated, Source is "default" and Time is
// the time of publishing.
type Event struct {
	// ID is the publisher's idempotency key: a re-publish of the same id
	// inside the duplicate window is stored once.
	ID string
	// Type is dot-separated lower-case words, e.g. purchase_order.updated.
	Type string
	// Source is the connection or system the event came from, a NATS-subject
	// safe token.
	Source string
	// Time is when it happened; stored in UTC.
	Time time.Time
	// Data is a JSON object, stored and delivered byte for byte.
	Data json.RawMessage
	// OrderingKey, at most 128 bytes, makes an ordered endpoint receive
	// the events of one key one at a time, in the order they were stored
	// (an atomic batch's in its order). Empty: no key.
	OrderingKey string
	// TraceParent is a W3C traceparent that every webhook request of the
	// event's deliveries carries; when empty, the one in Publish's context
	// (ContextWithTraceParent), if any.
	TraceParent string
}

type traceParentKey struct{}

// ContextWithTraceParent returns ctx carrying a W3C traceparent: events
// published with it (and no TraceParent of their own) carry it to their
// webhook requests.
func ContextWithTraceParent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, traceparent)
}

func traceParentOf(ctx context.Context) string {
	tp, _ := ctx.Value(traceParentKey{}).(string)
	return tp
}

// Result is what the store answered.
type Result struct {
	// ID is the event id, generated when the publisher gave none.
	ID string
	// Seq is the event's EVENTS sequence; for a duplicate, the sequence of
	// the copy stored first.
	Seq uint64
	// Duplicate is true when the id was already stored inside the duplicate
	// window: nothing new was stored.
	Duplicate bool
}

// newEventID is the default Config.NewID: "evt_" + 26 characters of
// crypto-random lower-case base32 (128 bits).
func newEventID() string { return streams.NewID("evt_") }

// limits are what an incoming event is checked against and completed with.
type limits struct {
	maxData int
	maxBody int64
	// maxBatchBody bounds a whole POST /v1/events/batch body.
	maxBatchBody int64
	now          func() time.Time
	newID        func() string
}

// normalize completes ev (a generated id, the default source, now when it
// has no time, UTC) and validates the whole event, naming the first bad
// field in an error that wraps streams.ErrInvalidEvent.
func (l limits) normalize(ev Event) (streams.Event, error) {
	se := streams.Event{
		ID:          ev.ID,
		Type:        ev.Type,
		Source:      ev.Source,
		Time:        ev.Time.UTC(),
		Data:        []byte(ev.Data),
		TraceParent: ev.TraceParent,
		OrderingKey: ev.OrderingKey,
	}
	if se.ID == "" {
		se.ID = l.newID()
	}
	if se.Source == "" {
		se.Source = streams.DefaultSource
	}
	if se.Time.IsZero() {
		se.Time = l.now().UTC()
	}
	if err := se.Validate(l.maxData); err != nil {
		return streams.Event{}, err
	}
	return se, nil
}
