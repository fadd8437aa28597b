package streams_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

func TestEnsureIsIdempotentAndDerivesDurations(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{RetryMaxAge: 2 * time.Second, DeliveriesMargin: time.Second, EventsMaxAge: 3 * time.Second, DedupWindow: time.Minute}
	env := streamstest.Start(t, streamstest.WithConfig(cfg))
	ctx := context.Background()
	if err := streams.Ensure(ctx, env.JS, cfg); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	s, err := env.JS.Stream(ctx, streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	// The duplicate window may not exceed MaxAge: it is capped, not refused.
	if got := s.CachedInfo().Config.Duplicates; got != 3*time.Second {
		t.Fatalf("EVENTS duplicates = %s, want capped at max age 3s", got)
	}
	d, err := env.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.CachedInfo().Config.MaxAge; got != 3*time.Second {
		t.Fatalf("DELIVERIES max age = %s, want retry max age + margin = 3s", got)
	}
	for _, b := range streams.BucketConfigs(cfg) {
		if _, err := env.JS.KeyValue(ctx, b.Bucket); err != nil {
			t.Fatalf("bucket %s: %v", b.Bucket, err)
		}
	}
}

func TestEnsureRefusesImmutableChange(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	ctx := context.Background()
	sc := streams.StreamConfigs(env.Config)[0]
	sc.Storage = jetstream.MemoryStorage
	if err := env.JS.DeleteStream(ctx, sc.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := env.JS.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	err := streams.Ensure(ctx, env.JS, env.Config)
	if !errors.Is(err, streams.ErrImmutable) {
		t.Fatalf("ensure over a memory-storage EVENTS: err = %v, want ErrImmutable", err)
	}
	err = streams.Ensure(ctx, env.JS, streams.Config{Replicas: 3})
	if err == nil {
		t.Fatal("ensure with 3 replicas on a single node succeeded")
	}
}

func TestEventsSurviveRestart(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	ev := &streams.Event{ID: "e1", Type: "order.created", Source: "default", Time: time.Now().UTC(), Data: []byte(`{"a":1}`)}
	res, err := streams.PublishEvent(context.Background(), env.JS, ev)
	if err != nil || res.Duplicate {
		t.Fatalf("publish: %+v %v", res, err)
	}
	env.Stop(t)
	env2 := streamstest.Start(t, streamstest.WithDir(env.Dir))
	res2, err := streams.PublishEvent(context.Background(), env2.JS, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Duplicate || res2.Seq != res.Seq {
		t.Fatalf("re-publish after restart = %+v, want duplicate of seq %d", res2, res.Seq)
	}
	raw, err := mustStream(t, env2, streams.StreamEvents).GetMsg(context.Background(), res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	var got streams.Event
	if err := streams.Unmarshal(raw.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "e1" || string(got.Data) != `{"a":1}` {
		t.Fatalf("stored event = %+v", got)
	}
}

func mustStream(t *testing.T, env *streamstest.Env, name string) jetstream.Stream {
	t.Helper()
	s, err := env.JS.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpdateCompareAndSet(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	ctx := context.Background()
	kv, err := env.JS.KeyValue(ctx, streams.BucketHealth)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 25
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				_, _, err := streams.Update(ctx, kv, "ep1", func(cur *streams.Health) (*streams.Health, error) {
					if cur == nil {
						cur = &streams.Health{EndpointID: "ep1"}
					}
					cur.Failures++
					return cur, nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	h, _, found, err := streams.Get[streams.Health](ctx, kv, "ep1")
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if h.Failures != workers*each {
		t.Fatalf("failures = %d, want %d: a compare-and-set lost an update", h.Failures, workers*each)
	}
	_, _, err = streams.Update(ctx, kv, "ep1", func(*streams.Health) (*streams.Health, error) { return nil, streams.ErrNoChange })
	if !errors.Is(err, streams.ErrNoChange) {
		t.Fatalf("err = %v", err)
	}
}

func TestHealthTransitionsOpenAndCloseGaps(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := streams.NewHealth("ep1", t0)
	if h.StatusEvent() != nil {
		t.Fatal("a new endpoint has an event to send")
	}
	if !h.Transition(streams.StatusFailing, "5 consecutive failures", t0.Add(time.Minute)) {
		t.Fatal("no transition")
	}
	if h.Transition(streams.StatusFailing, "again", t0.Add(2*time.Minute)) {
		t.Fatal("same status counted as a transition")
	}
	ev := h.StatusEvent()
	if ev == nil || ev.From != streams.StatusHealthy || ev.To != streams.StatusFailing || ev.Seq != 1 {
		t.Fatalf("status event = %+v", ev)
	}
	h.Notified = h.Transitions
	h.Lost = 3
	h.Transition(streams.StatusHealthy, "delivered", t0.Add(time.Hour))
	if h.Catchup == nil || h.Catchup.Lost != 3 || !h.Catchup.From.Equal(t0.Add(time.Minute)) || !h.Catchup.To.Equal(t0.Add(time.Hour)) || h.Catchup.Transition != 2 {
		t.Fatalf("catchup = %+v", h.Catchup)
	}
	if h.Lost != 0 || !h.UnhealthySince.IsZero() || h.Failures != 0 {
		t.Fatalf("gap not closed: %+v", h)
	}
	h.Catchup = nil
	h.Transition(streams.StatusDisabled, "operator", t0.Add(2*time.Hour))
	h.Transition(streams.StatusHealthy, "enabled", t0.Add(3*time.Hour))
	if h.Catchup != nil {
		t.Fatalf("a gap that lost and held nothing asks for a catch-up: %+v", h.Catchup)
	}
}

func TestEnsureRefusesToShrinkStoredSettings(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: 24 * time.Hour, DedupWindow: 10 * time.Minute}))
	ctx := context.Background()
	maxAge := func() time.Duration {
		s, err := env.JS.Stream(ctx, streams.StreamDeliveries)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.MaxAge
	}
	before := maxAge()

	// A role started with a smaller --retry-max-age must not shrink
	// DELIVERIES (the server would delete older deliveries at once).
	small := streams.Config{RetryMaxAge: time.Hour, DedupWindow: 10 * time.Minute}
	err := streams.Ensure(ctx, env.JS, small)
	if !errors.Is(err, streams.ErrShrink) {
		t.Fatalf("ensure with a smaller retry-max-age: err = %v, want ErrShrink", err)
	}
	if !strings.Contains(err.Error(), "--retry-max-age") || !strings.Contains(err.Error(), streams.StreamDeliveries) {
		t.Fatalf("error does not name the stream and the flag: %v", err)
	}
	if got := maxAge(); got != before {
		t.Fatalf("DELIVERIES max age changed from %s to %s by a refused ensure", before, got)
	}
	err = streams.Ensure(ctx, env.JS, streams.Config{RetryMaxAge: 24 * time.Hour, DedupWindow: time.Minute})
	if !errors.Is(err, streams.ErrShrink) || !strings.Contains(err.Error(), "--dedup-window") {
		t.Fatalf("ensure with a smaller dedup window: err = %v, want ErrShrink naming --dedup-window", err)
	}

	// Growing is always allowed, and --update-streams allows shrinking.
	if err := streams.Ensure(ctx, env.JS, streams.Config{RetryMaxAge: 48 * time.Hour, DedupWindow: 10 * time.Minute}); err != nil {
		t.Fatalf("ensure with a larger retry-max-age: %v", err)
	}
	if got := maxAge(); got <= before {
		t.Fatalf("DELIVERIES max age did not grow: %s", got)
	}
	small.UpdateStreams = true
	if err := streams.Ensure(ctx, env.JS, small); err != nil {
		t.Fatalf("ensure with UpdateStreams: %v", err)
	}
	if got, want := maxAge(), small.WithDefaults().DeliveriesMaxAge(); got != want {
		t.Fatalf("DELIVERIES max age = %s after an allowed shrink, want %s", got, want)
	}
}

func TestDeliveriesIsAWorkQueue(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	ctx := context.Background()
	s, err := env.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Retention; got != jetstream.WorkQueuePolicy {
		t.Fatalf("DELIVERIES retention = %s, want workqueue (a delivered delivery leaves the stream)", got)
	}
	// An older store with limits retention is refused with a way out.
	if err := env.JS.DeleteStream(ctx, streams.StreamDeliveries); err != nil {
		t.Fatal(err)
	}
	sc := streams.StreamConfigs(env.Config)[1]
	sc.Retention = jetstream.LimitsPolicy
	if _, err := env.JS.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	err = streams.Ensure(ctx, env.JS, env.Config)
	if !errors.Is(err, streams.ErrImmutable) || !strings.Contains(err.Error(), "nats stream rm") {
		t.Fatalf("ensure over a limits DELIVERIES: %v", err)
	}
}
