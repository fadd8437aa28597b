package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// notifier publishes endpoint.status_changed from the health records'
// outbox: a transition is written first and published after, with an id
// made of the endpoint and the transition count, so a crash between the two
// neither loses the event nor sends it under two ids.
type notifier struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	log *slog.Logger
}

// publish sends h's pending status event, if any, and marks it sent.
func (n *notifier) publish(ctx context.Context, h *streams.Health) {
	ev := h.StatusEvent()
	if ev == nil {
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	e := &streams.Event{
		ID:     streams.OwnEventID(streams.TypeEndpointStatusChanged, h.EndpointID, ev.Seq),
		Type:   streams.TypeEndpointStatusChanged,
		Source: streams.OwnSource,
		Time:   ev.Since,
		Data:   data,
	}
	if _, err := streams.PublishEvent(ctx, n.js, e); err != nil {
		n.log.Warn("publish endpoint.status_changed", "endpoint", h.EndpointID, "err", err)
		return
	}
	_, _, err = streams.Update(ctx, n.kv, h.EndpointID, func(cur *streams.Health) (*streams.Health, error) {
		if cur == nil || cur.Notified >= ev.Seq {
			return nil, streams.ErrNoChange
		}
		cur.Notified = ev.Seq
		return cur, nil
	})
	if err != nil && !errors.Is(err, streams.ErrNoChange) {
		n.log.Warn("mark status event sent", "endpoint", h.EndpointID, "err", err)
	}
}
