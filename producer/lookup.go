package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// lookupTimeout bounds one event lookup when the caller's context has no
// earlier deadline.
const lookupTimeout = 10 * time.Second

// Bounds of a lookup's reads.
const (
	// unfannedScan bounds how far a lookup reads the events the fan-out has
	// not reached yet (an event not yet in INDEX).
	unfannedScan = 20000
)

// eventView is the answer of GET /v1/events/{id}.
type eventView struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// OrderingKey is shown when the event has one.
	OrderingKey string          `json:"ordering_key,omitempty"`
	Data        json.RawMessage `json:"data"`
	Deliveries  []deliveryView  `json:"deliveries"`
}

// deliveryView is one endpoint's delivery of the event. A delivery with
// nothing more to say is only {"endpoint", "state"}: its detail is nil and
// encoding/json leaves its fields out.
type deliveryView struct {
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
	*deliveryDetail
}

type deliveryDetail struct {
	Generation   int       `json:"generation"`
	Attempts     int       `json:"attempts,omitempty"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastStatus   int       `json:"last_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	DeadLetterID string    `json:"dead_letter_id,omitempty"`
}

// handles are the streams and buckets a lookup reads, bound on first use.
type handles struct {
	events, deliveries  jetstream.Stream
	states, dlq, health jetstream.KeyValue
}

// bind looks them up once; a failed lookup is retried on the next call.
func (p *Producer) bind(ctx context.Context) (*handles, error) {
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if p.bound != nil {
		return p.bound, nil
	}
	h := &handles{}
	for name, dst := range map[string]*jetstream.Stream{streams.StreamEvents: &h.events, streams.StreamDeliveries: &h.deliveries} {
		s, err := p.js.Stream(ctx, name)
		if err != nil {
			return nil, unavailable("look up stream "+name, err)
		}
		*dst = s
	}
	for name, dst := range map[string]*jetstream.KeyValue{streams.BucketDeliveryState: &h.states, streams.BucketDLQState: &h.dlq, streams.BucketHealth: &h.health} {
		kv, err := p.js.KeyValue(ctx, name)
		if err != nil {
			return nil, unavailable("look up bucket "+name, err)
		}
		*dst = kv
	}
	p.bound = h
	return h, nil
}

// lookup finds an event by id with the state of its delivery to every
// endpoint the fan-out made one for. The event is found through INDEX (its
// hash bucket, read with a batched direct get: the index's memory does not
// grow with the events stored), or, before the fan-out reached it, among the
// events the fan-out has not taken yet (with no deliveries).
func (p *Producer) lookup(ctx context.Context, id string) (*eventView, error) {
	if streams.ValidateID(id) != nil {
		return nil, notFound(id) // no event can have that id
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	h, err := p.bind(ctx)
	if err != nil {
		return nil, err
	}
	idx, err := p.findIndex(ctx, id)
	if err != nil {
		return nil, err
	}
	var ev *streams.Event
	if idx == nil {
		if p.indexMissed != nil {
			p.indexMissed()
		}
		ev, err = p.findUnfanned(ctx, h, id)
		if err == nil && ev == nil {
			// The fan-out stores an event's entry before it acks the
			// event: one fanned out between the read of INDEX above and
			// the read of the ack floor is past that floor and in INDEX
			// now.
			idx, err = p.findIndex(ctx, id)
		}
		if err != nil {
			return nil, err
		}
	}
	if idx != nil {
		ev, err = p.eventAt(ctx, h, idx.Seq, id)
	}
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, notFound(id)
	}
	view := &eventView{
		ID: ev.ID, Type: ev.Type, Source: ev.Source, Time: ev.Time.UTC(), OrderingKey: ev.OrderingKey,
		Data: json.RawMessage(ev.Data), Deliveries: []deliveryView{},
	}
	if idx != nil {
		view.Deliveries = p.deliveryStates(ctx, h, ev, idx.Deliveries)
	}
	return view, nil
}

// findIndex returns the event's INDEX entry, or nil before its fan-out.
func (p *Producer) findIndex(ctx context.Context, id string) (*streams.EventIndex, error) {
	idx, err := streams.FindIndex(ctx, p.js, id)
	if err != nil {
		return nil, unavailable("read the event index", err)
	}
	return idx, nil
}

// findUnfanned looks for id among the events past the fan-out's ack floor
// (by their Nats-Msg-Id, the event id), at most unfannedScan of them: an
// event is in INDEX only once the fan-out ran, and GET must find it from
// its 202 on.
func (p *Producer) findUnfanned(ctx context.Context, h *handles, id string) (*streams.Event, error) {
	from := uint64(1)
	if c, err := p.js.Consumer(ctx, streams.StreamEvents, streams.ConsumerFanout); err == nil {
		if ci, err := c.Info(ctx); err == nil {
			from = ci.AckFloor.Stream + 1
		}
	}
	var found *streams.Event
	err := streams.ScanSubject(ctx, p.js, streams.StreamEvents, streams.SubjectEvents+".>", from, unfannedScan, func(m *jetstream.RawStreamMsg) bool {
		if m.Header.Get(jetstream.MsgIDHeader) != id {
			return true
		}
		var ev streams.Event
		if err := streams.Unmarshal(m.Data, &ev); err == nil && ev.ID == id {
			found = &ev
			return false
		}
		return true
	})
	if err != nil {
		return nil, unavailable("read events", err)
	}
	return found, nil
}

// eventAt reads the event stored at seq, or nil when it aged out of EVENTS
// (or the stream was purged and the sequence reused).
func (p *Producer) eventAt(ctx context.Context, h *handles, seq uint64, id string) (*streams.Event, error) {
	msg, err := h.events.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read the event", err)
	}
	var ev streams.Event
	if err := streams.Unmarshal(msg.Data, &ev); err != nil {
		return nil, fmt.Errorf("event %s: stored event at sequence %d: %w", id, seq, err)
	}
	if ev.ID != id {
		return nil, nil
	}
	return &ev, nil
}

func notFound(id string) error {
	return &httpjson.Error{Code: http.StatusNotFound, Msg: "event " + id + " not found"}
}

// unavailable marks a failed read of the store: the API answers 503 with a
// Retry-After.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", streams.ErrUnavailable, what, err)
}
