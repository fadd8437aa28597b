package producer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// deliveryState derives one delivery's state from JetStream alone, never
// from a key written per delivery (the success path writes nothing):
//
//   - its dead-letter record's state, if it has one (dead, replayed and then
//     the replay's own fate, or delivered by a replay);
//   - else whether it is still in DELIVERIES, a work queue that keeps only
//     what is unsettled: if not, it was delivered;
//   - else its failure state, written when an attempt fails and purged when
//     the delivery ends (retrying, with the next attempt), or pending; held
//     while its endpoint is failing or disabled.
func (p *Producer) deliveryState(ctx context.Context, h *handles, ev *streams.Event, d streams.IndexDelivery) deliveryView {
	view := deliveryView{Endpoint: d.Endpoint}
	gen := 0
	if dst, err := p.dlqState(ctx, h, streams.DeadLetterID(streams.DeliveryMsgID(ev.ID, d.Endpoint, 0))); err != nil {
		view.State = streams.DeliveryPending
		return view
	} else if dst != nil {
		switch dst.State {
		case streams.DLQStateDead:
			view.State, view.deliveryDetail = streams.DeliveryDead, &deliveryDetail{DeadLetterID: dst.ID}
			return view
		case streams.DLQStateDelivered:
			view.State, view.deliveryDetail = streams.DeliveryDelivered, &deliveryDetail{Generation: dst.ReplayGeneration, DeadLetterID: dst.ID}
			return view
		}
		// Replayed: the replay's generation is what is in flight now; its
		// own record, if it failed again, says so.
		gen = dst.ReplayGeneration
		if again, err := p.dlqState(ctx, h, streams.DeadLetterID(streams.DeliveryMsgID(ev.ID, d.Endpoint, gen))); err == nil && again != nil {
			view.State, view.deliveryDetail = streams.DeliveryDead, &deliveryDetail{Generation: gen, DeadLetterID: again.ID}
			return view
		}
		view.deliveryDetail = &deliveryDetail{Generation: gen, DeadLetterID: dst.ID}
	}
	if gen == 0 {
		// The work queue keeps only what is unsettled: a delivery no longer
		// there, with no dead-letter record, was delivered (whatever failure
		// state a crash between its ack and the purge of that state left).
		if _, err := h.deliveries.GetMsg(ctx, d.Seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			view.State = streams.DeliveryDelivered
			return view
		}
	}
	held := p.held(ctx, h, d.Endpoint)
	view.State = streams.DeliveryPending
	if held {
		view.State = streams.DeliveryHeld
	}
	st, _, _, err := streams.Get[streams.DeliveryState](ctx, h.states, streams.DeliveryKey(ev.ID, d.Endpoint))
	if err == nil && st != nil && st.Generation == gen && st.State == streams.DeliveryRetrying {
		if !held {
			view.State = streams.DeliveryRetrying
		}
		view.deliveryDetail = &deliveryDetail{
			Generation: st.Generation, Attempts: st.Attempts, LastAttempt: utc(st.LastAttempt), LastStatus: st.LastStatus,
			LastError: st.LastError, NextAttempt: utc(st.NextAttempt), DeadLetterID: st.DeadLetterID,
		}
	}
	// A replay (gen > 0) not failed again is settled only when its record
	// says delivered, which it does as soon as it succeeds: pending until then.
	return view
}

func (p *Producer) dlqState(ctx context.Context, h *handles, id string) (*streams.DLQState, error) {
	st, _, _, err := streams.Get[streams.DLQState](ctx, h.dlq, id)
	return st, err
}

// held reports whether an endpoint's deliveries are held now (failing or
// disabled).
func (p *Producer) held(ctx context.Context, h *handles, endpoint string) bool {
	hs, _, _, err := streams.Get[streams.Health](ctx, h.health, endpoint)
	return err == nil && hs != nil && hs.Status != streams.StatusHealthy
}

// deliveryStates derives every delivery's state, the look-ups of all
// endpoints in flight together.
func (p *Producer) deliveryStates(ctx context.Context, h *handles, ev *streams.Event, ds []streams.IndexDelivery) []deliveryView {
	out := make([]deliveryView, len(ds))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, d := range ds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = p.deliveryState(ctx, h, ev, d)
		}()
	}
	wg.Wait()
	return out
}

// utc keeps a zero time zero (omitzero) and puts any other in UTC.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
