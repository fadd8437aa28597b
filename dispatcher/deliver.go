package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Outcome is one attempt as the Observer sees it.
type Outcome struct {
	EndpointID string
	EventID    string
	// Attempt is the number of this send (sends are counted, not
	// redeliveries); 0 when the delivery was dead-lettered without one.
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
	dl, ok := d.decode(ctx, w, m, meta)
	if !ok {
		return
	}
	cfg := d.cfg
	now := cfg.Now()
	deadline := meta.Timestamp.Add(cfg.RetryMaxAge)
	attempt := 0
	// The delivery's logger is built only when a line is written: the
	// success path writes none, and slog's With allocates.
	log := func() *slog.Logger {
		l := w.log.With("event", dl.Event.ID, "generation", dl.Generation)
		if attempt > 0 {
			l = l.With("attempt", attempt)
		}
		return l
	}
	v := d.catalog.get(w.id)
	if reason := heldReason(v, meta.Sequence.Stream, deadline, now); reason != "" {
		// Deleted, gone, or past its deadline (held while failing or
		// disabled, or no dispatcher ran): no attempt after the deadline.
		d.deadLetter(ctx, w.id, []*deadItem{{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, dl: dl, reason: reason}}, log())
		if cfg.Observer != nil {
			cfg.Observer(Outcome{EndpointID: w.id, EventID: dl.Event.ID, DeadLetter: reason, Time: now, Deadline: deadline})
		}
		return
	}
	// Attempts count sends: a redelivery after a NAK at shutdown, a held
	// fetch or an AckWait expiry is not one, so the number comes from the
	// delivery's state, which every recorded send updates.
	attempt = 1
	var st *streams.DeliveryState
	if meta.NumDelivered > 1 {
		st, _, _, err = streams.Get[streams.DeliveryState](ctx, d.deliveryState, streams.DeliveryKey(dl.Event.ID, w.id))
		if err != nil {
			log().Warn("delivery state; trying again later", "err", err)
			_ = m.NakWithDelay(cfg.RetryMinDelay)
			return
		}
		if st != nil && st.Generation == dl.Generation {
			attempt = st.Attempts + 1
		} else {
			st = nil
		}
	}
	res := d.sender.send(ctx, v.ep.URL, v.signer, dl, now)
	if ctx.Err() != nil && !res.ok() {
		// Shutting down: leave it for redelivery rather than count a
		// failure the endpoint did not cause.
		_ = m.Nak()
		return
	}
	if res.local() {
		// Our failure (out of descriptors, say), not the endpoint's: no
		// attempt is counted, its health and schedule are untouched, and
		// the delivery is tried again shortly.
		d.metrics.localFailure()
		log().Error("attempt not made: the failure is this process's, not the endpoint's", "err", res.errorText())
		_ = m.NakWithDelay(max(cfg.RetryMinDelay, time.Second))
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
			log().Warn("ack", "err", err)
		}
		out.Delivered = true
		d.metrics.delivered(w.id, meta.Timestamp, cfg.Now())
		// The success path writes nothing per delivery but the attempt
		// log (asynchronously, batched per endpoint); a delivery that had
		// failed has its state purged, so the bucket holds only unsettled
		// failures.
		d.attempts.success(&a)
		if st != nil {
			d.purgeState(dl.Event.ID, w.id)
		}
		if dl.DeadLetterID != "" {
			d.markReplayDelivered(ctx, dl.DeadLetterID)
		}
		// The view from before the send may predate a failure counted since.
		d.health.recordSuccess(ctx, w.id, d.catalog.get(w.id), now)
		if w.log.Enabled(ctx, slog.LevelDebug) {
			log().Debug("delivered", "status", res.status, "duration", res.duration)
		}
	case res.status == http.StatusGone:
		d.health.markGone(ctx, w.id, now)
		out.DeadLetter = streams.ReasonEndpointGone
		d.deadLetter(ctx, w.id, []*deadItem{{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, dl: dl, reason: streams.ReasonEndpointGone, last: &a, st: st}}, log())
	default:
		delay := RetryDelay(cfg.RetryInitial, cfg.RetryMaxInterval, cfg.Jitter, attempt, cfg.Rand())
		if res.hasRetry {
			delay = res.retryAfter
		}
		delay, retry := d.schedule(now, deadline, delay)
		d.health.recordFailure(ctx, w.id, v, now, probe, dl.Event.Type == streams.TypeWebhookCatchup)
		// Deleted or gone while this attempt was in flight: the sweep of
		// that moment leaves deliveries in flight to their sender.
		reason := heldReason(d.catalog.get(w.id), meta.Sequence.Stream, deadline, now)
		if reason == "" && !retry {
			reason = streams.ReasonExpired
		}
		if reason != "" {
			out.DeadLetter = reason
			d.deadLetter(ctx, w.id, []*deadItem{{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, dl: dl, reason: reason, last: &a, st: st}}, log())
			break
		}
		a.NextAttempt = now.Add(delay).UTC()
		if err := d.recordFailure(ctx, dl, a, st); err != nil {
			log().Warn("record attempt", "err", err)
		}
		if err := m.NakWithDelay(delay); err != nil {
			log().Warn("nak", "err", err)
		}
		out.RetryIn = delay
		log().Info("delivery failed; retrying", "status", res.status, "err", a.Error, "retry_in", delay)
	}
	if cfg.Observer != nil {
		cfg.Observer(out)
	}
}

// heldReason is why a delivery must be dead-lettered without a send, or ""
// when it may be sent: its endpoint was deleted, answered 410 at or after
// it, or its deadline has come.
func heldReason(v *endpointView, seq uint64, deadline, now time.Time) string {
	switch {
	case v == nil || v.ep == nil || v.ep.Deleted:
		return streams.ReasonEndpointDeleted
	case v.health != nil && v.health.GoneSeq >= seq:
		return streams.ReasonEndpointGone
	case !now.Before(deadline):
		return streams.ReasonExpired
	}
	return ""
}

// unknownVersionRetry is how long a delivery of an envelope version this
// build cannot read waits for a dispatcher that can (a rolling upgrade).
const unknownVersionRetry = time.Minute

// decode reads m's delivery. A version this build does not know is left for
// a peer that can read it (NAK with delay, a metric, a log line) until its
// deadline has passed; only then, or for bytes no version can read, is it set
// aside in a dead-letter record that keeps the raw bytes.
func (d *Dispatcher) decode(ctx context.Context, w *worker, m jetstream.Msg, meta *jetstream.MsgMetadata) (*streams.Delivery, bool) {
	var dl streams.Delivery
	err := streams.Unmarshal(m.Data(), &dl)
	if err == nil {
		return &dl, true
	}
	deadline := meta.Timestamp.Add(d.cfg.RetryMaxAge)
	if errors.Is(err, streams.ErrVersion) && d.cfg.Now().Before(deadline.Add(d.cfg.AckWait)) {
		d.metrics.unreadable("version")
		w.log.Warn("delivery of an envelope version this build cannot read; left for a newer dispatcher",
			"seq", meta.Sequence.Stream, "err", err, "retry_in", unknownVersionRetry)
		_ = m.NakWithDelay(min(unknownVersionRetry, max(d.cfg.RetryMinDelay, deadline.Sub(d.cfg.Now()))))
		return nil, false
	}
	d.metrics.unreadable("corrupt")
	w.log.Error("undecodable delivery; set aside in the DLQ", "seq", meta.Sequence.Stream, "err", err)
	d.deadLetter(ctx, w.id, []*deadItem{{msg: m, seq: meta.Sequence.Stream, stored: meta.Timestamp, raw: m.Data(), reason: streams.ReasonUndecodable}}, w.log)
	return nil, false
}

// logAttempt appends a failed (or final) attempt to the endpoint's attempt
// log (ATTEMPTS, bounded per endpoint), without waiting for it.
func (d *Dispatcher) logAttempt(a *streams.Attempt) { d.attempts.failure(a) }

// recordFailure logs a failed attempt and writes the delivery's state (st,
// when the caller read it), synchronously: the next attempt's number and
// the dead-letter record are built from it.
func (d *Dispatcher) recordFailure(ctx context.Context, dl *streams.Delivery, a streams.Attempt, st *streams.DeliveryState) error {
	d.logAttempt(&a)
	if st == nil {
		st = &streams.DeliveryState{EventID: dl.Event.ID, EndpointID: dl.EndpointID, Generation: dl.Generation}
	}
	st.AddAttempt(a)
	st.Attempts = max(st.Attempts, a.Attempt)
	st.State, st.UpdatedAt = streams.DeliveryRetrying, d.cfg.Now().UTC()
	_, err := streams.Put(ctx, d.deliveryState, streams.DeliveryKey(dl.Event.ID, dl.EndpointID), st)
	return err
}

// stateGoneTTL is how long the purge marker of a settled delivery's state
// stays: then the key leaves the bucket (and the server's memory) for good.
const stateGoneTTL = time.Second

// purgeState removes a settled delivery's state, without waiting.
func (d *Dispatcher) purgeState(eventID, endpointID string) {
	m := nats.NewMsg(kvSubject(streams.BucketDeliveryState, streams.DeliveryKey(eventID, endpointID)))
	m.Header.Set("KV-Operation", "PURGE")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := d.js.PublishMsgAsync(m, jetstream.WithMsgTTL(stateGoneTTL)); err != nil {
		d.log.Warn("purge delivery state", "endpoint", endpointID, "event", eventID, "err", err)
	}
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

// removeEndpoint deletes a drained, deleted endpoint's consumer and its
// keys. Its subject is not purged: a delivery that a process which had not
// seen the deletion published since is dead-lettered by the janitor, which
// takes every delivery whose endpoint key is gone.
func (d *Dispatcher) removeEndpoint(ctx context.Context, id string, partitions int) error {
	names := []string{streams.DeliveryConsumer(id)}
	for lane := range partitions {
		names = append(names, streams.LaneConsumer(id, lane))
	}
	for _, name := range names {
		if err := d.js.DeleteConsumer(ctx, streams.StreamDeliveries, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
	}
	// The endpoint's key first: once it is gone no worker starts for it
	// again (a health change seen later finds no endpoint).
	if err := d.endpointsKV.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	if err := d.healthKV.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	d.log.Info("deleted endpoint removed", "endpoint", id)
	return nil
}
