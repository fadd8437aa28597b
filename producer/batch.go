package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// MaxBatchEvents is the most events one batch may hold.
const MaxBatchEvents = 1000

// BatchResult is what the store answered for one event of a batch: its id
// and sequence, whether it was a duplicate, or the error that kept it from
// being stored (then nothing of it is stored: publish it again, with the
// same id).
type BatchResult struct {
	ID        string
	Seq       uint64
	Duplicate bool
	Err       error
}

// BatchOption configures PublishBatch.
type BatchOption func(*batchOptions)

type batchOptions struct {
	atomic bool
}

// PublishBatch validates every event first (an invalid one is an error
// naming it, events[i].field, wrapping streams.ErrInvalidEvent, and nothing
// is stored), then publishes them all with their publishes in flight
// together, and returns one result per event in their order. When NATS
// fails part-way the error wraps streams.ErrUnavailable and the results say
// which were stored; publishing the whole batch again with the same ids is
// always safe (the stored ones answer Duplicate).
func (p *Producer) PublishBatch(ctx context.Context, events []Event, opts ...BatchOption) ([]BatchResult, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("events: at least one event is required: %w", streams.ErrInvalidEvent)
	}
	if len(events) > MaxBatchEvents {
		return nil, fmt.Errorf("events: %d events is over the batch limit of %d: %w", len(events), MaxBatchEvents, streams.ErrInvalidEvent)
	}
	norm := make([]streams.Event, len(events))
	ctxTP := traceParentOf(ctx)
	for i, ev := range events {
		if ev.TraceParent == "" {
			ev.TraceParent = ctxTP
		}
		se, err := p.lim.normalize(ev)
		if err != nil {
			p.metrics.invalid()
			return nil, fmt.Errorf("events[%d].%w", i, err)
		}
		norm[i] = se
	}
	var o batchOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.atomic {
		if err := p.checkAtomic(norm); err != nil {
			p.metrics.invalid()
			return nil, err
		}
		return p.storeAtomic(ctx, norm)
	}
	return p.storeBatch(ctx, norm)
}

// storeBatch publishes complete, valid events asynchronously, all in flight
// together, and waits for every answer.
func (p *Producer) storeBatch(ctx context.Context, events []streams.Event) ([]BatchResult, error) {
	results := make([]BatchResult, len(events))
	futs := make([]jetstream.PubAckFuture, len(events))
	var failed int
	down := ""
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		// A reconnecting client would buffer the publishes and wait for
		// the whole timeout; the publisher is better told at once.
		down = "nats connection is " + nc.Status().String()
	}
	for i := range events {
		if down != "" {
			results[i].ID = events[i].ID
			results[i].Err = fmt.Errorf("%w: %s", streams.ErrUnavailable, down)
			continue
		}
		ev := &events[i]
		results[i].ID = ev.ID
		b, err := streams.Marshal(ev)
		if err == nil {
			futs[i], err = p.js.PublishAsync(streams.EventSubject(ev.Source, ev.Type), b,
				jetstream.WithMsgID(ev.ID))
		}
		if err != nil {
			results[i].Err = streams.PublishError(err)
		}
	}
	for i, f := range futs {
		if f == nil {
			failed++
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].Seq, results[i].Duplicate = ack.Sequence, ack.Duplicate
			if ack.Duplicate {
				p.metrics.duplicate()
			} else {
				p.metrics.stored()
			}
		case err := <-f.Err():
			results[i].Err = streams.PublishError(err)
			failed++
		case <-ctx.Done():
			results[i].Err = streams.PublishError(ctx.Err())
			failed++
		}
	}
	if failed > 0 {
		p.metrics.unavailable()
		first := ""
		for _, r := range results {
			if r.Err != nil {
				first = r.Err.Error()
				break
			}
		}
		p.log.WarnContext(ctx, "batch partly stored", "events", len(events), "not_stored", failed, "err", first)
		return results, fmt.Errorf("%w: %d of %d events not stored: %s", streams.ErrUnavailable, failed, len(events), first)
	}
	return results, nil
}

// batchRequest is the body of POST /v1/events/batch.
type batchRequest struct {
	Events []json.RawMessage `json:"events"`
	Atomic bool              `json:"atomic"`
}

// batchItem is one event's answer in a batch.
type batchItem struct {
	ID        string `json:"id"`
	Duplicate *bool  `json:"duplicate,omitempty"`
	Error     string `json:"error,omitempty"`
}

// decodeBatchRequest turns a POST /v1/events/batch body into complete, valid
// events, each checked as POST /v1/events checks one; the first bad one is a
// 400 naming it (events[3].type: …).
func decodeBatchRequest(body []byte, lim limits) ([]streams.Event, bool, error) {
	if int64(len(body)) > lim.maxBatchBody {
		return nil, false, tooLarge("body: %d bytes is over the batch body limit of %d bytes", len(body), lim.maxBatchBody)
	}
	var req batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, false, httpjson.DecodeError(err, lim.maxBatchBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false, httpjson.BadRequest("body: must hold one JSON object and nothing after it")
	}
	switch {
	case req.Events == nil:
		return nil, false, httpjson.BadRequest("events: required, a list of at most %d events", MaxBatchEvents)
	case len(req.Events) == 0:
		return nil, false, httpjson.BadRequest("events: at least one event is required")
	case len(req.Events) > MaxBatchEvents:
		return nil, false, httpjson.BadRequest("events: %d events is over the batch limit of %d", len(req.Events), MaxBatchEvents)
	}
	out := make([]streams.Event, len(req.Events))
	one := lim
	one.maxBody = lim.maxBatchBody
	for i, raw := range req.Events {
		ev, err := decodeEventRequest(raw, one)
		if err != nil {
			return nil, false, prefixError(fmt.Sprintf("events[%d].", i), err)
		}
		out[i] = ev
	}
	return out, req.Atomic, nil
}

// prefixError puts where in the batch an event's error is in front of its
// message, keeping its status.
func prefixError(prefix string, err error) error {
	var he *httpjson.Error
	if errors.As(err, &he) {
		return &httpjson.Error{Code: he.Code, Msg: prefix + he.Msg}
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// handlePublishBatch answers 202 with every event's result once all were
// stored; 400 (nothing stored) naming the first invalid event; 503 with the
// results when some could not be stored.
func (p *Producer) handlePublishBatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, p.lim.maxBatchBody)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	events, atomic, err := decodeBatchRequest(body, p.lim)
	if err != nil {
		p.refuse(w, r, err)
		return
	}
	if tp := requestTraceParent(r); tp != "" {
		for i := range events {
			events[i].TraceParent = tp
		}
	}
	var results []BatchResult
	if atomic {
		if err := p.checkAtomic(events); err != nil {
			p.refuse(w, r, err)
			return
		}
		results, err = p.storeAtomic(r.Context(), events)
		if errors.Is(err, streams.ErrInvalidEvent) {
			// Refused whole (an id stored by an earlier batch, or over the
			// server's limit): nothing was stored.
			p.refuse(w, r, err)
			return
		}
	} else {
		results, err = p.storeBatch(r.Context(), events)
	}
	items := make([]batchItem, len(results))
	for i, res := range results {
		items[i].ID = res.ID
		if res.Err != nil {
			items[i].Error = res.Err.Error()
		} else {
			dup := res.Duplicate
			items[i].Duplicate = &dup
		}
	}
	code := http.StatusAccepted
	if err != nil {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	httpjson.WriteJSON(w, code, map[string]any{"results": items})
}
