package producer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

func (b *testBundle) kv(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := b.env.JS.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestGetEventFoundAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := "shop:order/42" // ':' and an escaped '/' in the path
	if r := b.post(t, `{"id": "`+id+`", "type": "order.created", "source": "shop", "time": "2024-05-01T10:00:00+02:00", "data": {"total": 99}}`); r.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", r.code, r.raw)
	}
	// No fan-out has run: the producer's own index entry finds the event.
	r := b.get(t, id)
	if r.code != http.StatusOK {
		t.Fatalf("GET = %d %s, want 200", r.code, r.raw)
	}
	var got struct {
		ID, Type, Source, Time string
		Data                   json.RawMessage
		Deliveries             []map[string]any
	}
	if err := json.Unmarshal(r.raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Type != "order.created" || got.Source != "shop" || got.Time != "2024-05-01T08:00:00Z" {
		t.Fatalf("GET = %s, want the event with its time in UTC", r.raw)
	}
	if string(got.Data) != `{"total":99}` {
		t.Fatalf("data = %s", got.Data)
	}
	if got.Deliveries == nil || len(got.Deliveries) != 0 {
		t.Fatalf("deliveries = %s, want [] before the fan-out", r.raw)
	}
}

func TestGetEventDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.p.Publish(ctx, producer.Event{ID: "order-7", Type: "order.created", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	// What the fan-out and the dispatchers would have written.
	cest := time.FixedZone("CEST", 2*3600)
	if _, err := streams.Put(ctx, b.kv(t, streams.BucketEventIndex), streams.IDToken("order-7"),
		&streams.EventIndex{EventID: "order-7", Seq: res.Seq, Endpoints: []string{"ep_b", "ep_a"}, FannedOutAt: fixedNow}); err != nil {
		t.Fatal(err)
	}
	states := b.kv(t, streams.BucketDeliveryState)
	for _, st := range []*streams.DeliveryState{
		{EventID: "order-7", EndpointID: "ep_a", State: streams.DeliveryDelivered, Attempts: 2,
			LastAttempt: time.Date(2025, 3, 4, 7, 0, 0, 0, cest), LastStatus: 200},
		// A replay to an endpoint the fan-out did not name.
		{EventID: "order-7", EndpointID: "ep_z", Generation: 1, State: streams.DeliveryRetrying, Attempts: 1,
			LastAttempt: fixedNow, LastStatus: 503, LastError: "HTTP 503", NextAttempt: fixedNow.Add(30 * time.Second), DeadLetterID: "dl_1"},
		// Another event's delivery: not shown.
		{EventID: "order-70", EndpointID: "ep_a", State: streams.DeliveryDead},
	} {
		if _, err := streams.Put(ctx, states, streams.DeliveryKey(st.EventID, st.EndpointID), st); err != nil {
			t.Fatal(err)
		}
	}

	r := b.get(t, "order-7")
	if r.code != http.StatusOK {
		t.Fatalf("GET = %d %s", r.code, r.raw)
	}
	var got struct {
		Deliveries []map[string]any `json:"deliveries"`
	}
	if err := json.Unmarshal(r.raw, &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"endpoint": "ep_b", "state": "pending"},
		{"endpoint": "ep_a", "state": "delivered", "generation": 0.0, "attempts": 2.0,
			"last_attempt": "2025-03-04T05:00:00Z", "last_status": 200.0},
		{"endpoint": "ep_z", "state": "retrying", "generation": 1.0, "attempts": 1.0,
			"last_attempt": "2025-03-04T05:06:07Z", "last_status": 503.0, "last_error": "HTTP 503",
			"next_attempt": "2025-03-04T05:06:37Z", "dead_letter_id": "dl_1"},
	}
	if !reflect.DeepEqual(got.Deliveries, want) {
		t.Fatalf("deliveries =\n%v\nwant\n%v", got.Deliveries, want)
	}
}

func TestGetUnknownEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"nope", "a:b", "with space"} {
		r := b.get(t, id)
		if r.code != http.StatusNotFound || r.body["error"] != "event "+id+" not found" {
			t.Fatalf("GET %q = %d %s, want 404 event %s not found", id, r.code, r.raw, id)
		}
	}
}

func TestIndexEntryNeverClobbersFanout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	index := b.kv(t, streams.BucketEventIndex)
	// The fan-out got there first (EVENTS is empty: the event will be seq 1).
	fanned := &streams.EventIndex{EventID: "raced", Seq: 1, Endpoints: []string{"ep_a"}}
	if _, err := streams.Put(ctx, index, streams.IDToken("raced"), fanned); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"raced", "plain"} {
		if _, err := b.p.Publish(ctx, producer.Event{ID: id, Type: "order.created", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// Stop waits for the index writes to be answered.
	if err := b.p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, found, err := streams.Get[streams.EventIndex](ctx, index, streams.IDToken("raced"))
	if err != nil || !found {
		t.Fatalf("index of raced: found %v, %v", found, err)
	}
	if !slices.Equal(got.Endpoints, []string{"ep_a"}) {
		t.Fatalf("index of raced = %+v: the producer's entry clobbered the fan-out's", got)
	}
	plain, _, found, err := streams.Get[streams.EventIndex](ctx, index, streams.IDToken("plain"))
	if err != nil || !found {
		t.Fatalf("index of plain: found %v, %v", found, err)
	}
	if plain.EventID != "plain" || plain.Seq != 2 || len(plain.Endpoints) != 0 {
		t.Fatalf("index of plain = %+v, want event plain at seq 2 with no endpoints yet", plain)
	}
	// After Stop, publishing still works; it just writes no index entry.
	res, err := b.p.Publish(ctx, producer.Event{ID: "after", Type: "order.created", Data: json.RawMessage(`{}`)})
	if err != nil || res.Seq != 3 {
		t.Fatalf("publish after Stop = %+v, %v", res, err)
	}
}
