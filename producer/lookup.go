package producer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// lookupTimeout bounds one event lookup when the caller's context has no
// earlier deadline.
const lookupTimeout = 10 * time.Second

// eventView is the answer of GET /v1/events/{id}.
type eventView struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"time"`
	Data       json.RawMessage `json:"data"`
	Deliveries []deliveryView  `json:"deliveries"`
}

// deliveryView is one endpoint's delivery of the event. A delivery that has
// no state yet is only {"endpoint", "state": "pending"}: its detail is nil
// and encoding/json leaves its fields out.
type deliveryView struct {
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
	*deliveryDetail
}

type deliveryDetail struct {
	Generation   int       `json:"generation"`
	Attempts     int       `json:"attempts"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastStatus   int       `json:"last_status,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	DeadLetterID string    `json:"dead_letter_id,omitempty"`
}

// handles are the stream and buckets a lookup reads, bound on first use.
type handles struct {
	events jetstream.Stream
	index  jetstream.KeyValue
	states jetstream.KeyValue
}

// bind looks up EVENTS and the two buckets once; a failed lookup is retried
// on the next call.
func (p *Producer) bind(ctx context.Context) (*handles, error) {
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if p.bound != nil {
		return p.bound, nil
	}
	events, err := p.js.Stream(ctx, streams.StreamEvents)
	if err != nil {
		return nil, unavailable("look up stream "+streams.StreamEvents, err)
	}
	index, err := p.js.KeyValue(ctx, streams.BucketEventIndex)
	if err != nil {
		return nil, unavailable("look up bucket "+streams.BucketEventIndex, err)
	}
	states, err := p.js.KeyValue(ctx, streams.BucketDeliveryState)
	if err != nil {
		return nil, unavailable("look up bucket "+streams.BucketDeliveryState, err)
	}
	p.bound = &handles{events: events, index: index, states: states}
	return p.bound, nil
}

// lookup finds an event by id with the state of its delivery to every
// endpoint: those the fan-out named in the index (pending until their state
// is written) and any other endpoint the event was replayed to.
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
	entry, err := h.index.Get(ctx, streams.IDToken(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) && p.index.settle(ctx) {
		entry, err = h.index.Get(ctx, streams.IDToken(id))
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, unavailable("read the event index", err)
	}
	var idx streams.EventIndex
	if err := streams.Unmarshal(entry.Value(), &idx); err != nil {
		return nil, fmt.Errorf("event %s: index entry: %w", id, err)
	}
	msg, err := h.events.GetMsg(ctx, idx.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, notFound(id) // aged out of EVENTS before its index entry
	}
	if err != nil {
		return nil, unavailable("read the event", err)
	}
	var ev streams.Event
	if err := streams.Unmarshal(msg.Data, &ev); err != nil {
		return nil, fmt.Errorf("event %s: stored event at sequence %d: %w", id, idx.Seq, err)
	}
	if ev.ID != id {
		return nil, notFound(id) // the index outlived a purged stream
	}
	states, err := p.deliveryStates(ctx, h.states, id)
	if err != nil {
		return nil, err
	}
	return &eventView{
		ID:         ev.ID,
		Type:       ev.Type,
		Source:     ev.Source,
		Time:       ev.Time.UTC(),
		Data:       json.RawMessage(ev.Data),
		Deliveries: deliveries(idx.Endpoints, states),
	}, nil
}

// deliveryStates reads every delivery state of an event, keyed by endpoint
// id, in one pass over the keys IDToken(id).*.
func (p *Producer) deliveryStates(ctx context.Context, kv jetstream.KeyValue, id string) (map[string]*streams.DeliveryState, error) {
	prefix := streams.IDToken(id) + "."
	w, err := kv.WatchFiltered(ctx, []string{prefix + "*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, unavailable("read delivery states", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]*streams.DeliveryState{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, unavailable("read delivery states", errors.New("watch closed"))
			}
			if e == nil { // every current value was delivered
				return out, nil
			}
			var st streams.DeliveryState
			if err := streams.Unmarshal(e.Value(), &st); err != nil {
				// One unreadable state must not hide the event.
				p.log.WarnContext(ctx, "delivery state unreadable", "event_id", id, "key", e.Key(), "err", err)
				continue
			}
			out[strings.TrimPrefix(e.Key(), prefix)] = &st
		case <-ctx.Done():
			return nil, unavailable("read delivery states", ctx.Err())
		}
	}
}

// deliveries lists the endpoints of the index in its order, then every
// other endpoint that has a state (a replay), by id.
func deliveries(endpoints []string, states map[string]*streams.DeliveryState) []deliveryView {
	out := make([]deliveryView, 0, max(len(endpoints), len(states)))
	seen := make(map[string]bool, len(endpoints))
	for _, ep := range endpoints {
		if seen[ep] {
			continue
		}
		seen[ep] = true
		out = append(out, deliveryOf(ep, states[ep]))
	}
	extra := len(out)
	for ep, st := range states {
		if !seen[ep] {
			out = append(out, deliveryOf(ep, st))
		}
	}
	slices.SortFunc(out[extra:], func(a, b deliveryView) int { return cmp.Compare(a.Endpoint, b.Endpoint) })
	return out
}

func deliveryOf(endpoint string, st *streams.DeliveryState) deliveryView {
	if st == nil {
		return deliveryView{Endpoint: endpoint, State: streams.DeliveryPending}
	}
	return deliveryView{
		Endpoint: endpoint,
		State:    st.State,
		deliveryDetail: &deliveryDetail{
			Generation:   st.Generation,
			Attempts:     st.Attempts,
			LastAttempt:  utc(st.LastAttempt),
			LastStatus:   st.LastStatus,
			LastError:    st.LastError,
			NextAttempt:  utc(st.NextAttempt),
			DeadLetterID: st.DeadLetterID,
		},
	}
}

// utc keeps a zero time zero (omitzero) and puts any other in UTC.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func notFound(id string) error {
	return &httpjson.Error{Code: http.StatusNotFound, Msg: "event " + id + " not found"}
}

// unavailable marks a failed read of the store: the API answers 503 with a
// Retry-After.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", streams.ErrUnavailable, what, err)
}
