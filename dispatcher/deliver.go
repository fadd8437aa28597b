package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Outcome is one attempt as the Observer sees it.
type Outcome struct {
	EndpointID string
	EventID    string
	Attempt    int
	StatusCode int
	Err        string
	// Delivered is true when the endpoint answered 2xx.
	Delivered bool
	// RetryIn is the NAK delay asked of JetStream; zero when no retry.
	RetryIn time.Duration
	// DeadLetter is the reason the delivery was dead-lettered, if it was.
	DeadLetter string
	// Time is when the attempt was made, by the dispatcher's clock, and
	// Deadline when the delivery's retries end.
	Time, Deadline time.Time
}

// deliver makes one attempt of m and settles it: ack on 2xx, NAK with the
// schedule's delay on failure, dead-letter at the deadline or on 410.
func (d *Dispatcher) deliver(ctx context.Context, w *worker, m jetstream.Msg, probe bool) {
	meta, err := m.Metadata()
	if err != nil {
		w.log.Error("delivery without metadata", "err", err)
		return
	}
	var dl streams.Delivery
	if err := streams.Unmarshal(m.Data(), &dl); err != nil {
		w.log.Error("undecodable delivery; terminated", "seq", meta.Sequence.Stream, "err", err)
		_ = m.TermWithReason("undecodable")
		return
	}
	w.taken(meta.Sequence.Stream)
	cfg := d.cfg
	now := cfg.Now()
	deadline := meta.Timestamp.Add(cfg.RetryMaxAge)
	attempt := int(meta.NumDelivered)
	log := w.log.With("event", dl.Event.ID, "attempt", attempt, "generation", dl.Generation)
	v := d.catalog.get(w.id)
	switch {
	case v == nil || v.ep == nil || v.ep.Deleted:
		d.deadLetter(ctx, m, &dl, v, streams.ReasonEndpointDeleted, nil, log)
		return
	case v.health != nil && v.health.GoneSeq >= meta.Sequence.Stream:
		d.deadLetter(ctx, m, &dl, v, streams.ReasonEndpointGone, nil, log)
		return
	case now.After(deadline.Add(cfg.AckWait)):
		// Held past its deadline (the endpoint was failing or disabled, or
		// no dispatcher ran): no attempt is made after the give-up age.
		d.deadLetter(ctx, m, &dl, v, streams.ReasonExpired, nil, log)
		return
	}
	res := d.sender.send(ctx, v.ep.URL, v.signer, &dl, now)
	if ctx.Err() != nil && !res.ok() {
		// Shutting down: leave it for redelivery rather than count a
		// failure the endpoint did not cause.
		_ = m.Nak()
		return
	}
	a := streams.Attempt{
		EventID: dl.Event.ID, EventType: dl.Event.Type, EndpointID: w.id, Generation: dl.Generation,
		Attempt: attempt, Time: now.UTC(), Duration: res.duration, StatusCode: res.status,
		Error: res.errorText(), ResponseBody: string(res.body),
	}
	out := Outcome{EndpointID: w.id, EventID: dl.Event.ID, Attempt: attempt, StatusCode: res.status, Err: a.Error, Time: now, Deadline: deadline}
	d.metrics.attempt(res, v.ep.ID)
	switch {
	case res.ok():
		if err := m.Ack(); err != nil {
			log.Warn("ack", "err", err)
		}
		out.Delivered = true
		d.recordAttempt(ctx, &dl, a, streams.DeliveryDelivered, "", false)
		if dl.DeadLetterID != "" {
			d.markReplayDelivered(ctx, dl.DeadLetterID)
		}
		// The view from before the send may predate a failure counted since.
		d.health.recordSuccess(ctx, w.id, d.catalog.get(w.id), now)
		log.Debug("delivered", "status", res.status, "duration", res.duration)
	case res.status == http.StatusGone:
		d.health.markGone(ctx, w.id, now)
		out.DeadLetter = streams.ReasonEndpointGone
		d.deadLetter(ctx, m, &dl, v, streams.ReasonEndpointGone, &a, log)
	default:
		delay := RetryDelay(cfg.RetryInitial, cfg.RetryMaxInterval, cfg.Jitter, attempt, cfg.Rand())
		if res.hasRetry {
			delay = res.retryAfter
		}
		delay, retry := schedule(now, deadline, delay)
		d.health.recordFailure(ctx, w.id, v, now, probe, dl.Event.Type == streams.TypeWebhookCatchup)
		if !retry {
			out.DeadLetter = streams.ReasonExpired
			d.deadLetter(ctx, m, &dl, v, streams.ReasonExpired, &a, log)
			break
		}
		a.NextAttempt = now.Add(delay).UTC()
		if err := d.recordAttempt(ctx, &dl, a, streams.DeliveryRetrying, "", true); err != nil {
			log.Warn("record attempt", "err", err)
		}
		if err := m.NakWithDelay(delay); err != nil {
			log.Warn("nak", "err", err)
		}
		w.notePending(meta.Sequence.Stream, deadline)
		out.RetryIn = delay
		log.Info("delivery failed; retrying", "status", res.status, "err", a.Error, "retry_in", delay)
	}
	if cfg.Observer != nil {
		cfg.Observer(out)
	}
}

// handleHeld settles a delivery taken from a held backlog without sending
// it: dead-lettered when its endpoint was deleted, answered 410 at or after
// it, or it passed its deadline; otherwise put back until its deadline.
func (d *Dispatcher) handleHeld(ctx context.Context, w *worker, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	var dl streams.Delivery
	if err := streams.Unmarshal(m.Data(), &dl); err != nil {
		_ = m.TermWithReason("undecodable")
		return
	}
	w.taken(meta.Sequence.Stream)
	log := w.log.With("event", dl.Event.ID, "generation", dl.Generation)
	v := d.catalog.get(w.id)
	now := d.cfg.Now()
	deadline := meta.Timestamp.Add(d.cfg.RetryMaxAge)
	switch {
	case v == nil || v.ep == nil || v.ep.Deleted:
		d.deadLetter(ctx, m, &dl, v, streams.ReasonEndpointDeleted, nil, log)
	case v.health != nil && v.health.GoneSeq >= meta.Sequence.Stream:
		d.deadLetter(ctx, m, &dl, v, streams.ReasonEndpointGone, nil, log)
	case !now.Before(deadline):
		d.deadLetter(ctx, m, &dl, v, streams.ReasonExpired, nil, log)
	default:
		_ = m.NakWithDelay(deadline.Sub(now))
		w.notePending(meta.Sequence.Stream, deadline)
	}
}

// recordAttempt appends a to the endpoint's attempt log and updates the
// delivery's state. A failure's state is written synchronously, since the
// dead-letter record is later built from its history; a success's is not
// waited for.
func (d *Dispatcher) recordAttempt(ctx context.Context, dl *streams.Delivery, a streams.Attempt, state, dlqID string, sync bool) error {
	ab, err := streams.Marshal(&a)
	if err == nil {
		_, err = d.js.PublishAsync(streams.AttemptSubject(a.EndpointID), ab)
	}
	if err != nil {
		d.log.Warn("attempt log", "endpoint", a.EndpointID, "event", a.EventID, "err", err)
	}
	key := streams.DeliveryKey(dl.Event.ID, dl.EndpointID)
	var st *streams.DeliveryState
	if sync {
		// A failure extends the history the dead-letter record may need.
		st, _, _, err = streams.Get[streams.DeliveryState](ctx, d.deliveryState, key)
	}
	if err != nil || st == nil || st.Generation != dl.Generation {
		st = &streams.DeliveryState{EventID: dl.Event.ID, EndpointID: dl.EndpointID, Generation: dl.Generation}
	}
	st.AddAttempt(a)
	// On the success path nothing was read: the count is the attempt number.
	st.Attempts = max(st.Attempts, a.Attempt)
	st.State, st.DeadLetterID, st.UpdatedAt = state, dlqID, d.cfg.Now().UTC()
	if state != streams.DeliveryRetrying {
		st.NextAttempt = time.Time{}
	}
	b, err := streams.Marshal(st)
	if err != nil {
		return err
	}
	if sync {
		_, err = d.deliveryState.Put(ctx, key, b)
		return err
	}
	_, err = d.js.PublishAsync("$KV."+streams.BucketDeliveryState+"."+key, b)
	return err
}

// deadLetter writes the delivery's dead-letter record, acknowledged by
// JetStream, and only then terminates the delivery. If the record cannot be
// written the delivery is put back to be tried again: no delivery is ever
// dropped silently.
func (d *Dispatcher) deadLetter(ctx context.Context, m jetstream.Msg, dl *streams.Delivery, v *endpointView, reason string, last *streams.Attempt, log *slog.Logger) {
	if err := d.writeDeadLetter(ctx, dl, v, reason, last); err != nil {
		log.Error("dead-letter write failed; delivery kept", "reason", reason, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	if err := m.TermWithReason(reason); err != nil {
		log.Warn("terminate", "err", err)
	}
	log.Warn("dead-lettered", "reason", reason)
}

func (d *Dispatcher) writeDeadLetter(ctx context.Context, dl *streams.Delivery, v *endpointView, reason string, last *streams.Attempt) error {
	id := streams.DeadLetterID(dl.MsgID())
	// Written already (a crash before the terminate, or a retry waiting at
	// a 410 that was dead-lettered ahead of its return): once is enough,
	// even past the stream's duplicate window.
	if _, err := d.dlqState.Get(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("dead letter state: %w", err)
	}
	now := d.cfg.Now().UTC()
	key := streams.DeliveryKey(dl.Event.ID, dl.EndpointID)
	st, _, _, err := streams.Get[streams.DeliveryState](ctx, d.deliveryState, key)
	if err != nil {
		return err
	}
	if st == nil || st.Generation != dl.Generation {
		st = &streams.DeliveryState{EventID: dl.Event.ID, EndpointID: dl.EndpointID, Generation: dl.Generation}
	}
	if last != nil {
		st.AddAttempt(*last)
	}
	rec := streams.DeadLetter{
		ID: id, Event: dl.Event, EndpointID: dl.EndpointID,
		Generation: dl.Generation, Reason: reason, Attempts: st.History, AttemptCount: st.Attempts,
		LastAttempt: st.LastAttempt, DeadAt: now,
	}
	if len(st.History) > 0 {
		rec.FirstAttempt = st.History[0].Time
	}
	if v != nil && v.ep != nil {
		rec.URL = redactURL(v.ep.URL)
	}
	b, err := streams.Marshal(&rec)
	if err != nil {
		return err
	}
	ack, err := d.js.Publish(ctx, streams.DLQSubject(dl.EndpointID), b,
		jetstream.WithMsgID(rec.ID), jetstream.WithExpectStream(streams.StreamDLQ))
	if err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	state := streams.DLQState{
		ID: rec.ID, State: streams.DLQStateDead, Seq: ack.Sequence, EndpointID: dl.EndpointID,
		EventID: dl.Event.ID, EventType: dl.Event.Type, Reason: reason, DeadAt: now, UpdatedAt: now,
	}
	sb, err := streams.Marshal(&state)
	if err != nil {
		return err
	}
	if _, err := d.dlqState.Create(ctx, rec.ID, sb); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("dead letter state: %w", err)
	}
	st.State, st.DeadLetterID, st.NextAttempt, st.UpdatedAt = streams.DeliveryDead, rec.ID, time.Time{}, now
	if _, err := streams.Put(ctx, d.deliveryState, key, st); err != nil {
		d.log.Warn("delivery state", "err", err)
	}
	if dl.Event.Type != streams.TypeWebhookCatchup && !ack.Duplicate {
		// A catch-up that itself fails never triggers another.
		d.health.addLost(ctx, dl.EndpointID)
	}
	d.metrics.deadLettered(reason)
	return nil
}

// markReplayDelivered sets a replayed record's state to delivered.
func (d *Dispatcher) markReplayDelivered(ctx context.Context, id string) {
	_, _, err := streams.Update(ctx, d.dlqState, id, func(cur *streams.DLQState) (*streams.DLQState, error) {
		if cur == nil || cur.State == streams.DLQStateDelivered {
			return nil, streams.ErrNoChange
		}
		cur.State, cur.UpdatedAt = streams.DLQStateDelivered, d.cfg.Now().UTC()
		return cur, nil
	})
	if err != nil && !errors.Is(err, streams.ErrNoChange) {
		d.log.Warn("mark replay delivered", "dead_letter", id, "err", err)
	}
}

// deadLetterUnacked writes records (for reason) for an endpoint's
// deliveries that wait for a retry (between the consumer's ack floor and
// last) and were neither delivered nor dead-lettered yet.
func (d *Dispatcher) deadLetterUnacked(ctx context.Context, id string, floor, last uint64, reason string) error {
	subj := streams.DeliverySubject(id)
	for seq := floor + 1; seq <= last; {
		raw, err := d.deliveries.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if raw.Sequence > last {
			return nil
		}
		seq = raw.Sequence + 1
		var dl streams.Delivery
		if err := streams.Unmarshal(raw.Data, &dl); err != nil {
			continue
		}
		st, _, _, err := streams.Get[streams.DeliveryState](ctx, d.deliveryState, streams.DeliveryKey(dl.Event.ID, id))
		if err != nil {
			return err
		}
		if st != nil && st.Generation == dl.Generation && (st.State == streams.DeliveryDelivered || st.State == streams.DeliveryDead) {
			continue
		}
		if err := d.writeDeadLetter(ctx, &dl, d.catalog.get(id), reason, nil); err != nil {
			return err
		}
	}
	return nil
}

// removeEndpoint deletes a drained, deleted endpoint's consumer, its
// deliveries and its keys.
func (d *Dispatcher) removeEndpoint(ctx context.Context, id string) error {
	if err := d.js.DeleteConsumer(ctx, streams.StreamDeliveries, streams.DeliveryConsumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	if err := d.deliveries.Purge(ctx, jetstream.WithPurgeSubject(streams.DeliverySubject(id))); err != nil {
		return err
	}
	if err := d.healthKV.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	if err := d.endpointsKV.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	d.log.Info("deleted endpoint removed", "endpoint", id)
	return nil
}

// redactURL hides a password in an endpoint URL: dead-letter records are
// shown to operators and any subscriber of dlq.>, and credentials are not.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
