package producer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sync"
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
	// No fan-out has run: the event is found among those it has not taken.
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

// Each delivery's state is derived from JetStream alone: the INDEX entry
// the fan-out wrote (with each delivery's DELIVERIES sequence), whether the
// delivery is still in the work-queue DELIVERIES, its failure state, its
// dead-letter record's state and its endpoint's health. No key is written
// per successful delivery.
func TestGetEventDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.p.Publish(ctx, producer.Event{ID: "order-7", Type: "order.created", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	// What the fan-out would have stored: one delivery per endpoint; the
	// delivered one already left the work queue.
	deliver := func(ep string) uint64 {
		d := streams.Delivery{Event: streams.Event{ID: "order-7", Type: "order.created", Source: "default", Time: fixedNow, Data: []byte(`{}`)}, EndpointID: ep}
		data, err := streams.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := b.env.JS.Publish(ctx, streams.DeliverySubject(ep), data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	idx := streams.EventIndex{EventID: "order-7", Seq: res.Seq, FannedOutAt: fixedNow}
	for _, ep := range []string{"ep_pending", "ep_retrying", "ep_held", "ep_replayed"} {
		idx.Deliveries = append(idx.Deliveries, streams.IndexDelivery{Endpoint: ep, Seq: deliver(ep)})
	}
	idx.Deliveries = append(idx.Deliveries,
		streams.IndexDelivery{Endpoint: "ep_delivered", Seq: 999999},
		// Delivered, its failure state not yet purged (a crash between the
		// ack and the purge): the work queue says delivered.
		streams.IndexDelivery{Endpoint: "ep_stale", Seq: 999997},
		streams.IndexDelivery{Endpoint: "ep_dead", Seq: 999998})
	data, err := streams.Marshal(&idx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(ctx, streams.IndexSubject("order-7"), data); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Put(ctx, b.kv(t, streams.BucketDeliveryState), streams.DeliveryKey("order-7", "ep_retrying"), &streams.DeliveryState{
		EventID: "order-7", EndpointID: "ep_retrying", State: streams.DeliveryRetrying, Attempts: 2,
		LastAttempt: fixedNow, LastStatus: 503, LastError: "http status 503", NextAttempt: fixedNow.Add(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Put(ctx, b.kv(t, streams.BucketDeliveryState), streams.DeliveryKey("order-7", "ep_stale"), &streams.DeliveryState{
		EventID: "order-7", EndpointID: "ep_stale", State: streams.DeliveryRetrying, Attempts: 1, LastStatus: 500,
	}); err != nil {
		t.Fatal(err)
	}
	held := streams.NewHealth("ep_held", fixedNow)
	held.Transition(streams.StatusDisabled, "disabled by operator", fixedNow)
	if _, err := streams.Put(ctx, b.kv(t, streams.BucketHealth), "ep_held", held); err != nil {
		t.Fatal(err)
	}
	dlq := b.kv(t, streams.BucketDLQState)
	deadID := streams.DeadLetterID(streams.DeliveryMsgID("order-7", "ep_dead", 0))
	replayedID := streams.DeadLetterID(streams.DeliveryMsgID("order-7", "ep_replayed", 0))
	for _, st := range []*streams.DLQState{
		{ID: deadID, State: streams.DLQStateDead, EndpointID: "ep_dead", EventID: "order-7"},
		{ID: replayedID, State: streams.DLQStateReplayed, EndpointID: "ep_replayed", EventID: "order-7", ReplayGeneration: 1},
	} {
		if _, err := streams.Put(ctx, dlq, st.ID, st); err != nil {
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
		{"endpoint": "ep_pending", "state": "pending"},
		{"endpoint": "ep_retrying", "state": "retrying", "generation": 0.0, "attempts": 2.0,
			"last_attempt": "2025-03-04T05:06:07Z", "last_status": 503.0, "last_error": "http status 503",
			"next_attempt": "2025-03-04T05:07:07Z"},
		{"endpoint": "ep_held", "state": "held"},
		{"endpoint": "ep_replayed", "state": "pending", "generation": 1.0, "dead_letter_id": replayedID},
		{"endpoint": "ep_delivered", "state": "delivered"},
		{"endpoint": "ep_stale", "state": "delivered"},
		{"endpoint": "ep_dead", "state": "dead", "generation": 0.0, "dead_letter_id": deadID},
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

// An event fanned out while GET looks for it (after its read of INDEX found
// nothing, before its read of the fan-out's ack floor) is found, with its
// deliveries, not answered 404: the fan-out stores the entry before it
// acks, so the entry is there once the floor has passed the event.
func TestGetEventFannedOutMidLookup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.p.Publish(ctx, producer.Event{ID: "order-9", Type: "order.created", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	fan, err := b.env.JS.CreateOrUpdateConsumer(ctx, streams.StreamEvents, jetstream.ConsumerConfig{
		Durable: streams.ConsumerFanout, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: streams.SubjectEvents + ".>",
	})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	fanOut := func() {
		// What the fan-out does: the entry first, then the ack.
		idx := streams.EventIndex{EventID: "order-9", Seq: res.Seq, FannedOutAt: fixedNow,
			Deliveries: []streams.IndexDelivery{{Endpoint: "ep_done", Seq: 999999}}}
		data, err := streams.Marshal(&idx)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := b.env.JS.Publish(ctx, streams.IndexSubject("order-9"), data); err != nil {
			t.Error(err)
			return
		}
		batch, err := fan.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Error(err)
			return
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Error(err)
			}
		}
	}
	producer.SetIndexMissedHook(b.p, func() { once.Do(fanOut) })
	r := b.get(t, "order-9")
	if r.code != http.StatusOK {
		t.Fatalf("GET = %d %s, want 200", r.code, r.raw)
	}
	var got struct {
		Deliveries []map[string]any `json:"deliveries"`
	}
	if err := json.Unmarshal(r.raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Deliveries) != 1 || got.Deliveries[0]["endpoint"] != "ep_done" || got.Deliveries[0]["state"] != "delivered" {
		t.Fatalf("deliveries = %s, want ep_done delivered", r.raw)
	}
	ci, err := fan.Info(ctx)
	if err != nil || ci.AckFloor.Stream < res.Seq {
		t.Fatalf("the fan-out's ack floor %+v (%v) did not pass the event at %d: the race was not made", ci.AckFloor, err, res.Seq)
	}
}
