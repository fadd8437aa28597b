package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable wraps every publish failure that means "not stored, try
// again later": NATS unreachable, no JetStream answer, or a full stream. The
// HTTP API answers it with 503 and a Retry-After.
var ErrUnavailable = errors.New("event store unavailable")

// PublishResult is what JetStream answered to a publish.
type PublishResult struct {
	Seq       uint64
	Duplicate bool
}

// PublishEvent stores ev in EVENTS with Nats-Msg-Id = ev.ID, so that a
// re-publish inside the duplicate window is answered as a duplicate and
// stored once. It returns only once JetStream acknowledged the store. The
// caller validates ev first.
func PublishEvent(ctx context.Context, js jetstream.JetStream, ev *Event) (PublishResult, error) {
	b, err := Marshal(ev)
	if err != nil {
		return PublishResult{}, fmt.Errorf("encode event: %w", err)
	}
	ack, err := js.Publish(ctx, EventSubject(ev.Source, ev.Type), b,
		jetstream.WithMsgID(ev.ID))
	if err != nil {
		return PublishResult{}, PublishError(err)
	}
	return PublishResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishError marks the errors of a publish that mean "not stored,
// publish again later" with ErrUnavailable.
func PublishError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrConnectionReconnecting):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.As(err, &apiErr):
		// Any server-side refusal (stream full: maximum messages/bytes
		// exceeded, storage exhausted, no leader) is transient from the
		// publisher's point of view.
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
