package streams

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A server older than 2.12 drops allow_atomic from the configuration it
// answers: Ensure reports it at start, naming the stream.
func TestCheckFeaturesRefusesServerWithoutAtomicPublish(t *testing.T) {
	want := jetstream.StreamConfig{Name: StreamEvents, AllowAtomicPublish: true}
	err := checkFeatures(want, jetstream.StreamConfig{Name: StreamEvents})
	if !errors.Is(err, ErrNoAtomicPublish) || !strings.Contains(err.Error(), StreamEvents) || !strings.Contains(err.Error(), "2.12") {
		t.Fatalf("checkFeatures = %v, want ErrNoAtomicPublish naming EVENTS and the version needed", err)
	}
	if err := checkFeatures(want, want); err != nil {
		t.Fatalf("checkFeatures of a server that kept it = %v", err)
	}
}

func TestOrderingKeyInWebhookBodyAndValidation(t *testing.T) {
	ev := Event{ID: "e1", Type: "po.line", Source: "erp", Time: time.Unix(0, 0), Data: []byte(`{}`), OrderingKey: "po-7"}
	b, err := ev.WebhookBody()
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil || body["ordering_key"] != "po-7" {
		t.Fatalf("body %s, want ordering_key po-7", b)
	}
	ev.OrderingKey = ""
	if b, _ := ev.WebhookBody(); strings.Contains(string(b), "ordering_key") {
		t.Fatalf("body %s has an ordering_key for an event without one", b)
	}
	if ev.LaneKey() != "e1" {
		t.Fatalf("LaneKey without a key = %q, want the id", ev.LaneKey())
	}
	ev.OrderingKey = strings.Repeat("k", MaxOrderingKeyLength+1)
	if err := ev.Validate(1 << 20); !errors.Is(err, ErrInvalidEvent) || !strings.HasPrefix(err.Error(), "ordering_key:") {
		t.Fatalf("Validate with a long key = %v", err)
	}
}

func TestLaneSubjects(t *testing.T) {
	if got := LaneSubject("ep_x", 3); got != "deliveries.ep_x.3" {
		t.Fatalf("LaneSubject = %q", got)
	}
	for _, s := range []string{"deliveries.ep_x.3", "deliveries.ep_x"} {
		if got := EndpointOfSubject(s); got != "ep_x" {
			t.Fatalf("EndpointOfSubject(%q) = %q", s, got)
		}
	}
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		l := LaneOf(strings.Repeat("k", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26)), 16)
		if l < 0 || l >= 16 {
			t.Fatalf("lane %d out of range", l)
		}
		seen[l] = true
	}
	if len(seen) != 16 {
		t.Fatalf("1000 keys reached %d of 16 lanes", len(seen))
	}
}
