package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
)

func statusChanges(t *testing.T, b *bundle, endpoint string) []streams.EndpointStatusChanged {
	t.Helper()
	var out []streams.EndpointStatusChanged
	for _, ev := range b.events(streams.TypeEndpointStatusChanged) {
		var c streams.EndpointStatusChanged
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			t.Fatal(err)
		}
		if c.Endpoint == endpoint {
			if want := streams.OwnEventID(streams.TypeEndpointStatusChanged, endpoint, c.Seq); ev.ID != want {
				t.Errorf("event id %q, want %q", ev.ID, want)
			}
			out = append(out, c)
		}
	}
	return out
}

// An endpoint flips to failing and back exactly once per outage, with one
// endpoint.status_changed each way; while it fails it is probed one request
// at a time, other endpoints are unaffected, and its backlog drains after
// it recovers.
func TestFailingEndpointIsProbedIsolatedAndRecovers(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 3
	cfg.RetryInitial = 50 * time.Millisecond
	cfg.RetryMaxInterval = 100 * time.Millisecond
	b := setup(t, cfg)
	dead, ok := newReceiver(t), newReceiver(t)
	var down atomic.Bool
	down.Store(true)
	var inflight, maxInflight atomic.Int32
	dead.setRespond(func(string, int) (int, http.Header) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		if down.Load() {
			return 503, nil
		}
		return 200, nil
	})
	b.addEndpoint("dead", dead.srv.URL, "dead.*")
	b.addEndpoint("ok", ok.srv.URL, "ok.*")
	for i := range 50 {
		b.publish(fmt.Sprintf("d%d", i), "dead.x")
	}
	waitFor(t, "the endpoint to be failing", func() bool { return b.health("dead").Status == streams.StatusFailing })
	// While it fails, the other endpoint's deliveries go through at once.
	for i := range 20 {
		b.publish(fmt.Sprintf("o%d", i), "ok.x")
	}
	waitFor(t, "the healthy endpoint's deliveries", func() bool { return ok.total() == 20 })
	// Probes: the backlog stays unread, attempts trickle one at a time.
	maxInflight.Store(0)
	before := dead.total()
	waitFor(t, "two probes", func() bool { return dead.total() >= before+2 })
	if m := maxInflight.Load(); m > 1 {
		t.Fatalf("%d requests in flight to a failing endpoint, want one probe at a time", m)
	}
	if attempted := dead.total(); attempted >= 50 {
		t.Fatalf("%d attempts while failing: the backlog was not held", attempted)
	}
	down.Store(false)
	waitFor(t, "the backlog to drain", func() bool {
		for i := range 50 {
			if dead.count(fmt.Sprintf("d%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "healthy again", func() bool { return b.health("dead").Status == streams.StatusHealthy })
	waitFor(t, "two status events", func() bool { return len(statusChanges(t, b, "dead")) == 2 })
	ch := statusChanges(t, b, "dead")
	if ch[0].From != streams.StatusHealthy || ch[0].To != streams.StatusFailing || ch[1].From != streams.StatusFailing || ch[1].To != streams.StatusHealthy {
		t.Fatalf("status changes = %+v", ch)
	}
	if n := len(statusChanges(t, b, "ok")); n != 0 {
		t.Fatalf("the healthy endpoint had %d status changes", n)
	}
	h := b.health("dead")
	if h.Notified != h.Transitions || h.Catchup == nil || !h.Catchup.From.Before(h.Catchup.To) {
		t.Fatalf("health after recovery = %+v", h)
	}
}

// A disabled endpoint's deliveries are held (not attempted) and delivered
// after enable.
func TestDisabledEndpointHoldsAndDeliversAfterEnable(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	b.addEndpoint("ep", r.srv.URL, "a.*")
	b.setEnabled("ep", false)
	waitFor(t, "the disabled status to reach the dispatcher", func() bool { return len(statusChanges(t, b, "ep")) == 1 })
	for i := range 10 {
		b.publish(fmt.Sprintf("e%d", i), "a.b")
	}
	waitFor(t, "the held deliveries to be stored", func() bool {
		s, _ := b.env.JS.Stream(context.Background(), streams.StreamDeliveries)
		info, _ := s.Info(context.Background())
		return info != nil && info.State.Msgs == 10
	})
	if n := r.total(); n != 0 {
		t.Fatalf("a disabled endpoint received %d requests", n)
	}
	waitFor(t, "the backlog marked held", func() bool { return b.health("ep").Held })
	b.setEnabled("ep", true)
	waitFor(t, "the held deliveries", func() bool { return r.total() == 10 })
	waitFor(t, "two status events", func() bool { return len(statusChanges(t, b, "ep")) == 2 })
	if h := b.health("ep"); h.Catchup == nil {
		t.Fatalf("no catch-up window after a held backlog: %+v", h)
	}
}

// Deleting an endpoint dead-letters its deliveries (endpoint_deleted), the
// waiting retries included, and removes its consumer and keys.
func TestDeletedEndpointDeadLettersItsDeliveries(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.RetryInitial = 5 * time.Second
	cfg.RetryMaxInterval = 5 * time.Second
	cfg.FailingAfter = 1000
	b := setup(t, cfg)
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) { return 500, nil })
	b.addEndpoint("ep", r.srv.URL, "a.*")
	for i := range 3 {
		b.publish(fmt.Sprintf("e%d", i), "a.b")
	}
	waitFor(t, "3 attempts", func() bool { return r.total() == 3 })
	ctx := context.Background()
	_, _, err := streams.Update(ctx, b.kv(streams.BucketEndpoints), "ep", func(ep *streams.Endpoint) (*streams.Endpoint, error) {
		ep.Deleted = true
		return ep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 endpoint_deleted dead letters", func() bool { return len(b.deadLetters("ep")) == 3 })
	for _, rec := range b.deadLetters("ep") {
		if rec.Reason != streams.ReasonEndpointDeleted {
			t.Fatalf("reason %s", rec.Reason)
		}
	}
	waitFor(t, "the endpoint's keys removed", func() bool {
		_, err := b.kv(streams.BucketEndpoints).Get(ctx, "ep")
		return err != nil
	})
	if _, err := b.env.JS.Consumer(ctx, streams.StreamDeliveries, streams.DeliveryConsumer("ep")); err == nil {
		t.Fatal("the deleted endpoint's consumer is still there")
	}
}

// A restart in the middle of a backoff loses nothing and keeps the
// schedule: the NAK delay is held by JetStream, not by the process.
func TestRestartMidBackoffLosesNothing(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.RetryInitial = 300 * time.Millisecond
	cfg.RetryMaxInterval = 300 * time.Millisecond
	b := setup(t, cfg)
	r := newReceiver(t)
	r.setRespond(func(_ string, n int) (int, http.Header) {
		if n == 1 {
			return 500, nil
		}
		return 200, nil
	})
	b.addEndpoint("ep", r.srv.URL, "*")
	b.publish("e1", "a.b")
	waitFor(t, "the first, failed attempt", func() bool { return len(b.outcomesFor("e1")) == 1 })
	b.stop()
	b.start()
	waitFor(t, "the retry after the restart", func() bool { return r.count("e1") == 2 && len(b.outcomesFor("e1")) == 2 })
	out := b.outcomesFor("e1")
	if out[0].RetryIn != 300*time.Millisecond || !out[len(out)-1].Delivered || out[len(out)-1].Attempt != 2 {
		t.Fatalf("outcomes = %+v", out)
	}
}

// A replayed delivery that succeeds marks its dead-letter record delivered.
func TestReplayedDeliveryMarksRecordDelivered(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	b.addEndpoint("ep", r.srv.URL, "*")
	ctx := context.Background()
	st := &streams.DLQState{ID: "dl_x", State: streams.DLQStateReplayed, EndpointID: "ep", EventID: "e1"}
	if _, err := streams.Put(ctx, b.kv(streams.BucketDLQState), "dl_x", st); err != nil {
		t.Fatal(err)
	}
	d := &streams.Delivery{Event: streams.Event{ID: "e1", Type: "a.b", Source: "s", Time: time.Now(), Data: []byte(`{}`)}, EndpointID: "ep", Generation: 1, DeadLetterID: "dl_x"}
	data, _ := streams.Marshal(d)
	if _, err := b.env.JS.Publish(ctx, streams.DeliverySubject("ep"), data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record to be delivered", func() bool {
		s, _, _, _ := streams.Get[streams.DLQState](ctx, b.kv(streams.BucketDLQState), "dl_x")
		return s != nil && s.State == streams.DLQStateDelivered
	})
	if r.count("e1") != 1 {
		t.Fatalf("count %d", r.count("e1"))
	}
}
