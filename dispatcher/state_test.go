package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/hookstream/hookstream/streams"
)

// streamCounts is every stream's message count (KV buckets included).
func (b *bundle) streamCounts() map[string]uint64 {
	b.t.Helper()
	out := map[string]uint64{}
	for name := range b.env.JS.StreamNames(context.Background()).Name() {
		s, err := b.env.JS.Stream(context.Background(), name)
		if err != nil {
			b.t.Fatal(err)
		}
		out[name] = s.CachedInfo().State.Msgs
	}
	return out
}

// The success path writes nothing per delivery but the attempt log: after
// 1,000 successful deliveries the only streams that grew are EVENTS (the
// events), INDEX (one entry per event) and ATTEMPTS (bounded per endpoint,
// its successes stored in batches: every attempt logged, in fewer
// messages than deliveries); DELIVERIES is empty again and no key was
// written.
func TestSuccessPathWritesNothingPerDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) { return 204, nil })
	b.addEndpoint("ep", r.srv.URL, "a.*")
	before := b.streamCounts()
	const n = 1000
	for i := range n {
		b.publish(fmt.Sprintf("e%04d", i), "a.b")
	}
	waitFor(t, "every delivery made", func() bool { return r.total() >= n })
	waitFor(t, "DELIVERIES empty", func() bool { return b.deliveriesLeft("ep") == 0 })
	waitFor(t, "the attempt log written", func() bool { return len(b.attempts("ep")) >= n })
	after := b.streamCounts()
	grew := map[string]uint64{}
	for name, c := range after {
		if c > before[name] {
			grew[name] = c - before[name]
		}
	}
	if grew[streams.StreamEvents] != n || grew[streams.StreamIndex] != n {
		t.Fatalf("EVENTS and INDEX grew by %d and %d, want %d each", grew[streams.StreamEvents], grew[streams.StreamIndex], n)
	}
	if logged := len(b.attempts("ep")); logged != n || grew[streams.StreamAttempts] == 0 || grew[streams.StreamAttempts] >= n {
		t.Fatalf("ATTEMPTS grew by %d messages holding %d attempts, want %d attempts in fewer messages", grew[streams.StreamAttempts], logged, n)
	}
	if grew[streams.StreamDeliveries] != 0 || grew["KV_"+streams.BucketDeliveryState] != 0 || grew[streams.StreamDLQ] != 0 {
		t.Fatalf("the success path wrote deliveries, delivery state or dead letters: %v", grew)
	}
	// Nothing else grows with the deliveries (membership heartbeats and the
	// endpoint's slot record are written on their own schedule: a few).
	delete(grew, streams.StreamEvents)
	delete(grew, streams.StreamIndex)
	delete(grew, streams.StreamAttempts)
	for name, g := range grew {
		if g >= 10 {
			t.Fatalf("%s grew by %d over %d deliveries: written per delivery", name, g, n)
		}
	}
}
