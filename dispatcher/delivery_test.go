package dispatcher_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// Every endpoint receives every event its filters match exactly once, signed
// so that a Standard Webhooks verifier accepts it, and nothing else.
func TestFanOutDeliversMatchingEventsOnceSigned(t *testing.T) {
	t.Parallel()
	// Once means once without faults: with fastConfig's 2 s AckWait, a
	// loaded machine (the whole suite under -race on 2 cores) let an
	// event or a delivery outlast it and be handed out again, which is
	// at least once, as designed, and not what this test is about.
	cfg := fastConfig()
	cfg.AckWait = 30 * time.Second
	b := setup(t, cfg)
	orders, all, exact := newReceiver(t), newReceiver(t), newReceiver(t)
	orders.secret = b.addEndpoint("orders", orders.srv.URL, "order.*")
	all.secret = b.addEndpoint("all", all.srv.URL, "*")
	exact.secret = b.addEndpoint("exact", exact.srv.URL, "invoice.paid")

	types := []string{"order.created", "order.updated", "invoice.paid", "invoice.sent"}
	const n = 200
	want := map[string]map[string]bool{"orders": {}, "all": {}, "exact": {}}
	for i := range n {
		id := fmt.Sprintf("evt-%d", i)
		typ := types[i%len(types)]
		b.publish(id, typ)
		if i%10 == 0 {
			b.publish(id, typ) // a re-publish: stored once, delivered once
		}
		want["all"][id] = true
		if typ == "invoice.paid" {
			want["exact"][id] = true
		}
		if typ[:6] == "order." {
			want["orders"][id] = true
		}
	}
	recv := map[string]*receiver{"orders": orders, "all": all, "exact": exact}
	for name, r := range recv {
		waitFor(t, name+" to receive its events", func() bool { return r.total() >= len(want[name]) })
	}
	// Let anything extra arrive before judging "nothing else".
	b.publish("sentinel", "invoice.paid")
	waitFor(t, "the sentinel", func() bool { return exact.count("sentinel") == 1 && all.count("sentinel") == 1 })
	for name, r := range recv {
		r.mu.Lock()
		for id, c := range r.got {
			if id == "sentinel" {
				continue
			}
			if !want[name][id] {
				t.Errorf("%s received %s, which its filter does not match", name, id)
			}
			if c != 1 {
				t.Errorf("%s received %s %d times", name, id, c)
			}
		}
		got := len(r.got)
		if r.got["sentinel"] > 0 {
			got--
		}
		if got != len(want[name]) {
			t.Errorf("%s received %d distinct events, want %d", name, got, len(want[name]))
		}
		if r.bad != 0 {
			t.Errorf("%s: %d signatures failed verification", name, r.bad)
		}
		if name != "orders" {
			body := r.bodies["sentinel"]
			if body["id"] != "sentinel" || body["type"] != "invoice.paid" || body["source"] != "test" || body["timestamp"] == nil {
				t.Errorf("%s: body = %v", name, body)
			}
		}
		r.mu.Unlock()
	}
}

// An endpoint that fails 3 times gets the event on attempt 4, and the
// delays asked of JetStream follow the schedule: initial, ×2, ×4.
func TestRetriesFollowTheSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	r.setRespond(func(_ string, n int) (int, http.Header) {
		if n <= 3 {
			return 500, nil
		}
		return 204, nil
	})
	b.addEndpoint("ep", r.srv.URL, "*")
	b.publish("e1", "a.b")
	waitFor(t, "delivery on attempt 4", func() bool { return r.count("e1") == 4 && len(b.outcomesFor("e1")) == 4 })
	out := b.outcomesFor("e1")
	wantDelays := []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}
	for i, d := range wantDelays {
		if out[i].Attempt != i+1 || out[i].RetryIn != d || out[i].StatusCode != 500 {
			t.Errorf("attempt %d: %+v, want a NAK delay of %s", i+1, out[i], d)
		}
	}
	if !out[3].Delivered || out[3].Attempt != 4 {
		t.Errorf("attempt 4: %+v", out[3])
	}
	// Once delivered, nothing of the delivery is left: its failure state is
	// purged and the work queue dropped it; the attempt log has all four.
	waitFor(t, "the failure state purged", func() bool { return b.deliveryState("e1", "ep") == nil })
	waitFor(t, "DELIVERIES empty", func() bool { return b.deliveriesLeft("ep") == 0 })
	waitFor(t, "four attempts logged", func() bool { return len(b.attempts("ep")) == 4 })
}

func TestRetryDelayScheduleAndJitter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 30 * time.Second}, {2, 0.5, time.Minute}, {3, 0.5, 2 * time.Minute},
		{10, 0.5, 4 * time.Hour}, {60, 0.5, 4 * time.Hour},
		{1, 0, 24 * time.Second}, {1, 0.999999, 36 * time.Second},
	}
	for _, c := range cases {
		got := dispatcherRetryDelay(c.n, c.r)
		if diff := got - c.want; diff < -time.Millisecond || diff > time.Millisecond {
			t.Errorf("delay(%d, r=%v) = %s, want %s", c.n, c.r, got, c.want)
		}
	}
}

// A delivery that never succeeds is dead-lettered exactly once, at its
// deadline, with its attempts recorded; the last attempt is made at the
// deadline, not after it.
func TestNeverSucceedingDeliveryIsDeadLetteredAtTheDeadline(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.RetryInitial = 50 * time.Millisecond
	cfg.RetryMaxInterval = 100 * time.Millisecond
	cfg.RetryMaxAge = 700 * time.Millisecond
	cfg.FailingAfter = 1000 // keep health out of it
	b := setup(t, cfg)
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) { return 503, nil })
	b.addEndpoint("ep", r.srv.URL, "*")
	b.publish("doomed", "a.b")
	waitFor(t, "a dead letter and its outcome", func() bool {
		out := b.outcomesFor("doomed")
		return len(b.deadLetters("ep")) == 1 && len(out) > 0 && out[len(out)-1].DeadLetter != ""
	})
	recs := b.deadLetters("ep")
	rec := recs[0]
	if rec.Reason != streams.ReasonExpired || rec.Event.ID != "doomed" || rec.EndpointID != "ep" || rec.URL != r.srv.URL {
		t.Fatalf("record = %+v", rec)
	}
	attempts := r.count("doomed")
	if rec.AttemptCount != attempts || len(rec.Attempts) != min(attempts, 25) || rec.Attempts[0].StatusCode != 503 {
		t.Fatalf("record has %d attempts (%d kept), receiver saw %d", rec.AttemptCount, len(rec.Attempts), attempts)
	}
	out := b.outcomesFor("doomed")
	last := out[len(out)-1]
	if last.DeadLetter != streams.ReasonExpired || last.RetryIn != 0 {
		t.Fatalf("last outcome = %+v", last)
	}
	// No retry was asked for past the deadline, and the delivery died only
	// once the deadline had come.
	for _, o := range out[:len(out)-1] {
		if o.RetryIn <= 0 || o.RetryIn > 100*time.Millisecond || o.Time.Add(o.RetryIn).After(o.Deadline) {
			t.Fatalf("attempt %d asked for a retry in %s, past its deadline or the cap: %+v", o.Attempt, o.RetryIn, o)
		}
	}
	// No send at or after the deadline; the final one was asked for just
	// before it (or, when its redelivery came late, none was made then and
	// the delivery died at the deadline).
	for _, o := range out {
		if o.Attempt > 0 && !o.Time.Before(o.Deadline) {
			t.Fatalf("attempt %d sent at %s, not before the deadline %s", o.Attempt, o.Time, o.Deadline)
		}
	}
	// The delivery died for a reason the schedule can name, judged on the
	// dispatcher's clock rather than on how late a loaded machine
	// redelivered: either its last send left no room for a retry before the
	// final lead, or it came back at or after the deadline and was not sent.
	lead := min(time.Second, cfg.RetryMaxAge/20) // the dispatcher's final lead
	switch {
	case last.Attempt > 0 && last.Time.Add(max(cfg.RetryMinDelay, time.Nanosecond)).Before(last.Deadline.Add(-lead)):
		t.Fatalf("the send at %s dead-lettered with room for a retry before %s", last.Time, last.Deadline.Add(-lead))
	case last.Attempt == 0 && last.Time.Before(last.Deadline):
		t.Fatalf("dead-lettered unsent at %s, before the deadline %s", last.Time, last.Deadline)
	}
	st, _, _, _ := streams.Get[streams.DLQState](t.Context(), b.kv(streams.BucketDLQState), rec.ID)
	if st == nil || st.State != streams.DLQStateDead || st.Reason != streams.ReasonExpired {
		t.Fatalf("dlq state = %+v", st)
	}
	// Exactly once: nothing else is written later.
	b.publish("later", "a.b")
	waitFor(t, "the next event's first attempt", func() bool { return r.count("later") >= 1 })
	if n := len(b.deadLetters("ep")); n != 1 {
		t.Fatalf("%d dead letters for one delivery", n)
	}
}

// Retry-After on 429/503 decides the delay.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	r.setRespond(func(_ string, n int) (int, http.Header) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	b.addEndpoint("ep", r.srv.URL, "*")
	b.publish("e1", "a.b")
	waitFor(t, "delivery after Retry-After", func() bool { return r.count("e1") == 2 && len(b.outcomesFor("e1")) == 2 })
	if got := b.outcomesFor("e1")[0].RetryIn; got != time.Second {
		t.Fatalf("NAK delay = %s, want the 1s Retry-After", got)
	}
}

// 410 Gone disables the endpoint and dead-letters what was pending then;
// later deliveries are held, and delivered once it is enabled again.
func TestGoneDisablesAndDeadLettersPending(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 1000
	cfg.RetryInitial = 5 * time.Second // retries wait well past the 410
	cfg.RetryMaxInterval = 5 * time.Second
	b := setup(t, cfg)
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) { return 500, nil })
	b.addEndpoint("ep", r.srv.URL, "a.*")
	for i := range 5 {
		b.publish(fmt.Sprintf("e%d", i), "a.b")
	}
	waitFor(t, "5 first attempts", func() bool { return r.total() == 5 })
	// The next delivery meets a 410: every delivery stored until then is
	// dead-lettered as endpoint_gone, including the 5 waiting for a retry.
	r.setRespond(func(string, int) (int, http.Header) { return 410, nil })
	b.publish("gone", "a.b")
	waitFor(t, "6 endpoint_gone dead letters", func() bool { return len(b.deadLetters("ep")) == 6 })
	for _, rec := range b.deadLetters("ep") {
		if rec.Reason != streams.ReasonEndpointGone {
			t.Fatalf("reason = %s", rec.Reason)
		}
	}
	if h := b.health("ep"); h.Status != streams.StatusDisabled {
		t.Fatalf("status = %s", h.Status)
	}
	// Later deliveries are held, and delivered once it is enabled again.
	r.setRespond(func(string, int) (int, http.Header) { return 200, nil })
	b.publish("after", "a.b")
	b.setEnabled("ep", true)
	waitFor(t, "the held delivery after enable", func() bool { return r.count("after") == 1 })
	if n := len(b.deadLetters("ep")); n != 6 {
		t.Fatalf("%d dead letters, want 6", n)
	}
	if r.count("e0") != 1 {
		t.Fatalf("a dead-lettered delivery was attempted again: %d", r.count("e0"))
	}
}
