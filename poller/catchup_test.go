package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// putDeadLetter stores a dead letter of event evID for endpoint ep.
func putDeadLetter(t *testing.T, env *streamstest.Env, ep, evID, typ string, generation int, deadAt time.Time) {
	t.Helper()
	msgID := streams.DeliveryMsgID(evID, ep, generation)
	dl := &streams.DeadLetter{
		ID:         streams.DeadLetterID(msgID),
		Event:      streams.Event{ID: evID, Type: typ, Source: "shop", Time: deadAt, Data: []byte(`{}`)},
		EndpointID: ep, Generation: generation, Reason: streams.ReasonExpired, DeadAt: deadAt,
	}
	b, err := streams.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.JS.Publish(context.Background(), streams.DLQSubject(ep), b); err != nil {
		t.Fatal(err)
	}
}

// gapHealth is the health of an endpoint that was failing from from to to,
// losing lost deliveries or, with held, holding a backlog.
func gapHealth(ep string, from, to time.Time, lost uint64, held bool) *streams.Health {
	h := streams.NewHealth(ep, from.Add(-time.Hour))
	h.Transition(streams.StatusFailing, "5 failures in a row", from)
	h.Lost, h.Held = lost, held
	h.Transition(streams.StatusHealthy, "probe succeeded", to)
	return h
}

func putHealth(t *testing.T, p *Poller, h *streams.Health) {
	t.Helper()
	if _, err := streams.Put(context.Background(), p.healthKV, h.EndpointID, h); err != nil {
		t.Fatal(err)
	}
}

// catchups are the webhook.catchup events stored for endpoint ep.
func catchups(t *testing.T, env *streamstest.Env, ep string) ([]streams.Event, []streams.WebhookCatchup) {
	t.Helper()
	var evs []streams.Event
	var data []streams.WebhookCatchup
	for _, ev := range readEvents(t, env, streams.EventSubject(streams.OwnSource, streams.TypeWebhookCatchup)) {
		var d streams.WebhookCatchup
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("decode %s: %v", ev.ID, err)
		}
		if d.Endpoint == ep {
			evs, data = append(evs, ev), append(data, d)
		}
	}
	return evs, data
}

func waitCatchupCleared(t *testing.T, p *Poller, ep string) {
	t.Helper()
	streamstest.WaitFor(t, waitLong, ep+"'s catch-up window cleared", func() bool {
		h, _, _, err := streams.Get[streams.Health](context.Background(), p.healthKV, ep)
		return err == nil && h != nil && h.Catchup == nil
	})
}

// An endpoint down past its retry window gets exactly one webhook.catchup
// when it returns, targeted at it and naming the events it missed.
func TestCatchupAfterAnEndpointGap(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	from := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	to := from.Add(30 * time.Minute)
	in := from.Add(10 * time.Minute)

	// acme: two events lost (one of them twice, after a failed replay), a
	// lost catch-up, and dead letters outside the window or of another
	// endpoint, which do not count.
	putDeadLetter(t, env, "acme", "shop:e0", "order.created", 0, from.Add(-time.Minute))
	putDeadLetter(t, env, "acme", "shop:e1", "order.created", 0, in)
	putDeadLetter(t, env, "acme", "shop:e2", "order.updated", 0, in.Add(time.Second))
	putDeadLetter(t, env, "acme", "shop:e2", "order.updated", 1, in.Add(2*time.Second))
	putDeadLetter(t, env, "acme", streams.OwnEventID(streams.TypeWebhookCatchup, "acme", 2), streams.TypeWebhookCatchup, 0, in)
	putDeadLetter(t, env, "other", "shop:e3", "order.created", 0, in)
	putDeadLetter(t, env, "acme", "shop:e4", "order.created", 0, to.Add(time.Minute))
	// bulk: more missed events than a catch-up names.
	for i := range 150 {
		putDeadLetter(t, env, "bulk", fmt.Sprintf("shop:b%03d", i), "order.created", 0, in)
	}
	// loop: the only loss was a catch-up; it triggers none.
	putDeadLetter(t, env, "loop", streams.OwnEventID(streams.TypeWebhookCatchup, "loop", 2), streams.TypeWebhookCatchup, 0, in)

	start(t, p)
	putHealth(t, p, gapHealth("acme", from, to, 4, false))
	putHealth(t, p, gapHealth("bulk", from, to, 150, false))
	putHealth(t, p, gapHealth("loop", from, to, 1, false))
	putHealth(t, p, gapHealth("held", from, to, 0, true))
	for _, ep := range []string{"acme", "bulk", "loop", "held"} {
		waitCatchupCleared(t, p, ep)
	}

	evs, data := catchups(t, env, "acme")
	if len(evs) != 1 {
		t.Fatalf("acme got %d webhook.catchup, want 1", len(evs))
	}
	if ev := evs[0]; ev.ID != "webhook.catchup:acme:2" || ev.Target != "acme" || ev.Source != streams.OwnSource || !ev.Time.Equal(to) {
		t.Errorf("acme catch-up = %+v, want id webhook.catchup:acme:2 targeted at acme", ev)
	}
	if d := data[0]; !slices.Equal(d.EventIDs, []string{"shop:e1", "shop:e2"}) || d.Missed != 2 || !d.From.Equal(from) || !d.To.Equal(to) || d.Seq != 2 {
		t.Errorf("acme catch-up data = %+v, want e1, e2 missed in [%s, %s]", d, from, to)
	}

	_, data = catchups(t, env, "bulk")
	if len(data) != 1 || data[0].Missed != 150 || len(data[0].EventIDs) != streams.MaxCatchupEventIDs || data[0].EventIDs[0] != "shop:b000" || data[0].EventIDs[99] != "shop:b099" {
		t.Errorf("bulk catch-ups = %d, want one naming the first 100 of 150", len(data))
	}
	if evs, _ := catchups(t, env, "loop"); len(evs) != 0 {
		t.Errorf("a lost catch-up triggered %d more", len(evs))
	}
	if evs, data := catchups(t, env, "held"); len(evs) != 1 || data[0].Missed != 0 || data[0].EventIDs == nil {
		t.Errorf("held backlog: catch-ups %+v, want one naming the window, missed 0 and event_ids []", data)
	}

	// The same window seen again (another poller, or a crash before it was
	// cleared) is published under the same id: still one.
	putHealth(t, p, gapHealth("acme", from, to, 4, false))
	waitCatchupCleared(t, p, "acme")
	if evs, _ := catchups(t, env, "acme"); len(evs) != 1 {
		t.Fatalf("acme got %d webhook.catchup after the window was seen twice, want 1", len(evs))
	}
}
