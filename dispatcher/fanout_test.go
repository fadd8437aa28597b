package dispatcher_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// An event the fan-out sees again (its first pass failed, crashed or timed
// out half-way) is not delivered again to an endpoint its INDEX entry names:
// deliveries carry no Nats-Msg-Id, so this check is what keeps a second
// pass from sending the webhook twice. The endpoint the entry does not name
// still gets its delivery.
func TestRedeliveredEventSkipsEndpointsItsIndexNames(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r1, r2 := newReceiver(t), newReceiver(t)
	for _, r := range []*receiver{r1, r2} {
		r.setRespond(func(string, int) (int, http.Header) { return 204, nil })
	}
	b.addEndpoint("ep1", r1.srv.URL, "a.*")
	b.addEndpoint("ep2", r2.srv.URL, "a.*")
	b.publish("first", "a.b")
	waitFor(t, "the first event delivered to both", func() bool { return r1.count("first") == 1 && r2.count("first") == 1 })
	b.stop()

	ctx := context.Background()
	b.publish("again", "a.b")
	// The first pass: it made ep1's delivery and its INDEX entry, then
	// died before its ack (the event comes back to the fan-out).
	entry := streams.EventIndex{EventID: "again", Seq: 2, FannedOutAt: time.Now().UTC(), Deliveries: []streams.IndexDelivery{{Endpoint: "ep1", Seq: 1 << 40}}}
	data, err := streams.Marshal(&entry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(ctx, streams.IndexSubject("again"), data); err != nil {
		t.Fatal(err)
	}
	fc, err := b.env.JS.Consumer(ctx, streams.StreamEvents, streams.ConsumerFanout)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := fc.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for m := range batch.Messages() {
		taken++
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	if taken != 1 {
		t.Fatalf("took %d events from the fan-out consumer, want 1", taken)
	}
	deliveries, err := b.env.JS.Stream(ctx, streams.StreamDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	before, err := deliveries.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	b.start()
	waitFor(t, "the event delivered to ep2", func() bool { return r2.count("again") == 1 })
	waitFor(t, "the fan-out settled the event", func() bool {
		info, err := fc.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	after, err := deliveries.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if made := after.State.LastSeq - before.State.LastSeq; made != 1 {
		t.Fatalf("the second pass stored %d deliveries, want 1 (ep2's only)", made)
	}
	if n := r1.count("again"); n != 0 {
		t.Fatalf("ep1 received the event %d times, want 0 (its delivery was made by the first pass)", n)
	}
}
