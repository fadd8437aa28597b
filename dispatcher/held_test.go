package dispatcher_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/streams"
)

// deliveriesLeft is how many messages DELIVERIES still holds for an
// endpoint (a work queue: only the unsettled ones).
func (b *bundle) deliveriesLeft(endpointID string) uint64 {
	return b.deliveriesOn(streams.DeliverySubject(endpointID))
}

// laneDeliveries is how many messages DELIVERIES holds in an ordered
// endpoint's lanes.
func (b *bundle) laneDeliveries(endpointID string) uint64 {
	return b.deliveriesOn(streams.DeliverySubject(endpointID) + ".>")
}

// deliveriesOn is how many messages DELIVERIES holds on filter.
func (b *bundle) deliveriesOn(filter string) uint64 {
	b.t.Helper()
	s, err := b.env.JS.Stream(context.Background(), streams.StreamDeliveries)
	if err != nil {
		b.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		b.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// Retries that wait in JetStream for an endpoint that is then held
// (disabled, or failing) are dead-lettered at their deadline even when the
// dispatcher that NAKed them restarted: the sweep reads JetStream's state,
// not a map in the old process's memory.
func TestHeldRetriesSurviveADispatcherRestart(t *testing.T) {
	t.Parallel()
	for _, held := range []string{"disabled", "failing"} {
		t.Run(held, func(t *testing.T) {
			t.Parallel()
			cfg := fastConfig()
			// Room for 20 first attempts on a loaded machine before the
			// final lead; the retry then waits until the deadline.
			cfg.RetryMaxAge = 8 * time.Second
			cfg.RetryInitial = 7 * time.Second
			cfg.RetryMaxInterval = time.Minute
			if held == "failing" {
				cfg.FailingAfter = 1 // failing at once; probes a minute apart
				cfg.RetryInitial = time.Minute
			} else {
				cfg.FailingAfter = 1000
			}
			b := setup(t, cfg)
			r := newReceiver(t)
			r.setRespond(func(string, int) (int, http.Header) { return 503, nil })
			b.addEndpoint("ep", r.srv.URL, "a.*")
			const n = 20
			for i := range n {
				b.publish(fmt.Sprintf("e%02d", i), "a.b")
			}
			if held == "failing" {
				// The first failure makes it failing; the others stay unread.
				waitFor(t, "failing", func() bool { h := b.health("ep"); return h != nil && h.Status == streams.StatusFailing })
			} else {
				waitFor(t, "20 first attempts, each NAKed for a retry", func() bool {
					m := 0
					for i := range n {
						if o := b.outcomesFor(fmt.Sprintf("e%02d", i)); len(o) == 1 && o[0].RetryIn > 0 {
							m++
						}
					}
					return m == n
				})
				b.setEnabled("ep", false)
			}
			// A new process takes over (a deploy, a crash): nothing of the
			// old one's memory is left.
			b.stop()
			b.start()
			waitFor(t, "every delivery dead-lettered at its deadline", func() bool { return len(b.deadLetters("ep")) == n })
			for _, rec := range b.deadLetters("ep") {
				if rec.Reason != streams.ReasonExpired {
					t.Fatalf("record %s: reason %s, want expired", rec.Event.ID, rec.Reason)
				}
			}
			waitFor(t, "DELIVERIES empty for the endpoint", func() bool { return b.deliveriesLeft("ep") == 0 })
		})
	}
}

// A delivery published for an endpoint whose key is gone (a fan-out or a
// replay in a process that had not seen the deletion, after the consumer was
// removed) is dead-lettered by the janitor, not left without a consumer.
func TestStrayDeliveryOfARemovedEndpointIsDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	dl := streams.Delivery{Event: streams.Event{ID: "late", Type: "a.b", Source: "test", Time: time.Now().UTC(), Data: []byte(`{}`)}, EndpointID: "removed"}
	data, err := streams.Marshal(&dl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(context.Background(), streams.DeliverySubject("removed"), data, jetstream.WithMsgID(dl.MsgID())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stray dead-lettered", func() bool { return len(b.deadLetters("removed")) == 1 })
	if rec := b.deadLetters("removed")[0]; rec.Reason != streams.ReasonEndpointDeleted || rec.Event.ID != "late" {
		t.Fatalf("record = %+v", rec)
	}
	waitFor(t, "the stray gone from DELIVERIES", func() bool { return b.deliveriesLeft("removed") == 0 })
}

// A 410 dead-letters the retries waiting at that moment, but not a delivery
// that was in flight then and succeeded: its record would say dead for a
// delivered event, and a bulk replay would send it twice.
func TestGoneSparesADeliveryInFlightThatSucceeds(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 1000
	cfg.DeliveryTimeout = 1500 * time.Millisecond
	cfg.MemberTTL = 4 * time.Second
	cfg.RetryInitial = time.Minute // "waiting" waits well past the 410
	cfg.RetryMaxInterval = time.Minute
	cfg.RetryMaxAge = time.Hour
	b := setup(t, cfg)
	r := newReceiver(t)
	release := make(chan struct{})
	var once sync.Once
	inFlight := make(chan struct{})
	r.setRespond(func(id string, _ int) (int, http.Header) {
		switch id {
		case "slow":
			once.Do(func() { close(inFlight) })
			<-release
			return 200, nil
		case "waiting":
			return 500, nil
		}
		return 410, nil
	})
	b.addEndpoint("ep", r.srv.URL, "a.*")
	b.publish("slow", "a.b")
	<-inFlight
	b.publish("waiting", "a.b")
	waitFor(t, "the retry NAKed", func() bool { o := b.outcomesFor("waiting"); return len(o) == 1 && o[0].RetryIn > 0 })
	b.publish("gone", "a.b")
	waitFor(t, "the 410's own dead letter", func() bool { return len(b.deadLetters("ep")) >= 1 })
	close(release)
	waitFor(t, "the slow delivery acked", func() bool { o := b.outcomesFor("slow"); return len(o) == 1 && o[0].Delivered })
	waitFor(t, "the waiting retry dead-lettered once sends in flight ended", func() bool {
		for _, rec := range b.deadLetters("ep") {
			if rec.Event.ID == "waiting" {
				return true
			}
		}
		return false
	})
	for _, rec := range b.deadLetters("ep") {
		if rec.Event.ID == "slow" {
			t.Fatalf("the delivered event has a dead-letter record: %+v", rec)
		}
		if rec.Reason != streams.ReasonEndpointGone {
			t.Fatalf("record %s: reason %s", rec.Event.ID, rec.Reason)
		}
	}
	if n := len(b.deadLetters("ep")); n != 2 {
		t.Fatalf("%d records, want 2 (gone, waiting)", n)
	}
	waitFor(t, "DELIVERIES empty", func() bool { return b.deliveriesLeft("ep") == 0 })
}

// An envelope version this build does not know is left for a newer
// dispatcher (NAKed, not terminated); bytes no version can read are set
// aside in the DLQ with their raw bytes, where an operator sees them.
func TestUnreadableDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	b.addEndpoint("ep", r.srv.URL, "a.*")
	ctx := context.Background()
	future := []byte("\x83\xa1v\x63\xa5event\x80\xabendpoint_id\xa2ep") // {"v": 99, "event": {}, "endpoint_id": "ep"}
	if _, err := b.env.JS.Publish(ctx, streams.DeliverySubject("ep"), future); err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(ctx, streams.DeliverySubject("ep"), []byte("\xc1 not msgpack")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the corrupt one set aside", func() bool { return len(b.deadLetters("ep")) == 1 })
	rec := b.deadLetters("ep")[0]
	if rec.Reason != streams.ReasonUndecodable || rec.Event.Type != streams.TypeUndecodable || !strings.Contains(string(rec.Event.Data), "raw_base64") {
		t.Fatalf("record = %+v (data %s)", rec, rec.Event.Data)
	}
	c, err := b.env.JS.Consumer(ctx, streams.StreamDeliveries, streams.DeliveryConsumer("ep"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the future version read and put back", func() bool {
		ci, err := c.Info(ctx)
		return err == nil && ci.NumAckPending == 1 && ci.Delivered.Stream >= 2
	})
	if left := b.deliveriesLeft("ep"); left != 1 {
		t.Fatalf("DELIVERIES holds %d for the endpoint, want the future-version one kept", left)
	}
	if r.total() != 0 {
		t.Fatalf("the receiver got %d requests", r.total())
	}
}

// Attempt numbers count sends: a delivery taken by a process that died
// before sending it comes back after AckWait as a redelivery, and its first
// send is still attempt 1.
func TestAttemptsCountSendsNotRedeliveries(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.AckWait = time.Second
	b := setup(t, cfg)
	b.stop()
	r := newReceiver(t)
	r.setRespond(func(_ string, n int) (int, http.Header) {
		if n == 1 {
			return 500, nil
		}
		return 200, nil
	})
	b.addEndpoint("ep", r.srv.URL, "a.*")
	ctx := context.Background()
	dl := streams.Delivery{Event: streams.Event{ID: "taken", Type: "a.b", Source: "test", Time: time.Now().UTC(), Data: []byte(`{}`)}, EndpointID: "ep"}
	data, err := streams.Marshal(&dl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(ctx, streams.DeliverySubject("ep"), data); err != nil {
		t.Fatal(err)
	}
	// A "crashed" process takes it and never answers.
	c, err := b.env.JS.CreateOrUpdateConsumer(ctx, streams.StreamDeliveries, dispatcherConsumerConfig(cfg, "ep"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != 1 {
		t.Fatalf("took %d deliveries, want 1", got)
	}
	b.start()
	waitFor(t, "delivered on the second send", func() bool { return r.count("taken") == 2 })
	waitFor(t, "two outcomes", func() bool { return len(b.outcomesFor("taken")) == 2 })
	out := b.outcomesFor("taken")
	if out[0].Attempt != 1 || out[1].Attempt != 2 || !out[1].Delivered {
		t.Fatalf("outcomes = %+v, want attempts 1 then 2 (the AckWait redelivery is not an attempt)", out)
	}
	// The retry asked after attempt 1 is the first step of the schedule.
	if want := dispatcher.RetryDelay(cfg.RetryInitial, cfg.RetryMaxInterval, 0, 1, 0.5); out[0].RetryIn != max(want, cfg.RetryMinDelay) {
		t.Fatalf("retry after attempt 1 = %s, want %s", out[0].RetryIn, want)
	}
}

// dispatcherConsumerConfig is the endpoint consumer as the dispatcher makes
// it (the settings that must match for the test to share it).
func dispatcherConsumerConfig(cfg dispatcher.Config, id string) jetstream.ConsumerConfig {
	cfg = cfg.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable: streams.DeliveryConsumer(id), Description: "deliveries to endpoint " + id,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait, MaxDeliver: -1,
		MaxAckPending: cfg.MaxAckPending, DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: streams.DeliverySubject(id), MaxWaiting: 512,
	}
}

// emfileResolver fails its first lookups as a host out of file descriptors
// does, then answers loopback.
type emfileResolver struct{ failures atomic.Int32 }

func (r *emfileResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if r.failures.Add(-1) >= 0 {
		return nil, &net.DNSError{Err: "socket: " + syscall.EMFILE.Error(), Name: host}
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// Running out of file descriptors is this process's failure, never the
// endpoint's: no attempt is counted, its health stays healthy, and the
// delivery goes once descriptors are back.
func TestOutOfDescriptorsNeverCountsAgainstTheEndpoint(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 2
	res := &emfileResolver{}
	res.failures.Store(5)
	cfg.Resolver = res
	cfg.RetryMinDelay = 5 * time.Millisecond
	b := setup(t, cfg)
	r := newReceiver(t)
	u, err := url.Parse(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b.addEndpoint("ep", "http://hooks.example.com:"+u.Port()+"/", "a.*")
	b.publish("e1", "a.b")
	waitFor(t, "delivered once descriptors are back", func() bool { return r.count("e1") == 1 && len(b.outcomesFor("e1")) == 1 })
	if o := b.outcomesFor("e1")[0]; o.Attempt != 1 || !o.Delivered {
		t.Fatalf("outcome = %+v, want delivered on attempt 1", o)
	}
	if h := b.health("ep"); h.Status != streams.StatusHealthy || h.Failures != 0 {
		t.Fatalf("health = %s with %d failures, want healthy and none", h.Status, h.Failures)
	}
	if res.failures.Load() >= 0 {
		t.Fatalf("the resolver's failures were not all met: %d left", res.failures.Load())
	}
}
