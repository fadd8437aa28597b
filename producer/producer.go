package producer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Producer publishes events to EVENTS and serves the event routes. It is
// safe for concurrent use.
type Producer struct {
	js      jetstream.JetStream
	lim     limits
	log     *slog.Logger
	metrics *metrics

	bindMu sync.Mutex
	bound  *handles

	// indexMissed, in tests, runs when a lookup found no INDEX entry,
	// before it reads the fan-out's ack floor.
	indexMissed func()
}

// New checks cfg and builds a Producer. It makes no NATS request: streams
// and buckets are looked up on first use.
func New(cfg Config) (*Producer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Producer{
		js: cfg.JS,
		lim: limits{
			maxData:      cfg.MaxEventData,
			maxBody:      cfg.MaxBodyBytes,
			maxBatchBody: cfg.MaxBatchBodyBytes,
			now:          cfg.Now,
			newID:        cfg.NewID,
		},
		log:     cfg.Logger,
		metrics: m,
	}, nil
}

// Publish validates ev (streams.Event.Validate with the configured limits;
// the id is generated when empty, the source is "default" when empty, the
// time is now when zero and stored in UTC) and stores it in EVENTS with
// Nats-Msg-Id = id. It returns only once JetStream acknowledged the store;
// a re-publish of a stored id inside the duplicate window is answered with
// Duplicate set and stores nothing. Errors wrap streams.ErrInvalidEvent,
// naming the field, or streams.ErrUnavailable when nothing was stored (NATS
// unreachable, stream full): then publish again later with the same id.
func (p *Producer) Publish(ctx context.Context, ev Event) (Result, error) {
	if ev.TraceParent == "" {
		ev.TraceParent = traceParentOf(ctx)
	}
	se, err := p.lim.normalize(ev)
	if err != nil {
		p.metrics.invalid()
		p.log.DebugContext(ctx, "event refused", "event_id", ev.ID, "err", err)
		return Result{}, err
	}
	return p.store(ctx, &se)
}

// store publishes a complete, valid event. Nothing else is written: the
// fan-out writes the event's index entry, with its deliveries.
func (p *Producer) store(ctx context.Context, ev *streams.Event) (Result, error) {
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		// A reconnecting client would buffer the publish and wait for the
		// whole request timeout; the publisher is better told at once.
		p.metrics.unavailable()
		err := fmt.Errorf("%w: nats connection is %s", streams.ErrUnavailable, nc.Status())
		p.log.WarnContext(ctx, "event not stored", "event_id", ev.ID, "type", ev.Type, "source", ev.Source, "err", err)
		return Result{}, err
	}
	res, err := streams.PublishEvent(ctx, p.js, ev)
	if err != nil {
		p.metrics.unavailable()
		p.log.WarnContext(ctx, "event not stored", "event_id", ev.ID, "type", ev.Type, "source", ev.Source, "err", err)
		return Result{}, err
	}
	if res.Duplicate {
		p.metrics.duplicate()
		p.log.DebugContext(ctx, "event duplicate", "event_id", ev.ID, "seq", res.Seq)
	} else {
		p.metrics.stored()
		p.log.DebugContext(ctx, "event stored", "event_id", ev.ID, "seq", res.Seq, "type", ev.Type, "source", ev.Source)
	}
	return Result{ID: ev.ID, Seq: res.Seq, Duplicate: res.Duplicate}, nil
}

// Stop is part of the Start/Stop contract; a Producer holds nothing that
// needs stopping (a publish waits for its own acknowledgement). It is
// idempotent and safe on a Producer that never published.
func (p *Producer) Stop(ctx context.Context) error { return nil }
