package streams_test

import (
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/hookstream/hookstream/streams"
)

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	d := &streams.Delivery{
		Event:      streams.Event{ID: "e1", Type: "a.b", Source: "s", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: []byte(`{"x":[1,2]}`), Target: "ep_x"},
		EndpointID: "ep_x", Generation: 2,
	}
	b, err := streams.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got streams.Delivery
	if err := streams.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.V != streams.DeliveryVersion || got.Event.V != streams.EventVersion {
		t.Fatalf("versions not set: %+v", got)
	}
	if !got.Event.Time.Equal(d.Event.Time) || string(got.Event.Data) != `{"x":[1,2]}` || got.MsgID() != "e1.ep_x.2" {
		t.Fatalf("round trip = %+v", got)
	}
}

func TestCodecRefusesUnknownVersion(t *testing.T) {
	t.Parallel()
	b, _ := msgpack.Marshal(map[string]any{"v": 99, "id": "x"})
	var ev streams.Event
	if err := streams.Unmarshal(b, &ev); !errors.Is(err, streams.ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
	b, _ = msgpack.Marshal(map[string]any{"id": "x"})
	if err := streams.Unmarshal(b, &ev); !errors.Is(err, streams.ErrVersion) {
		t.Fatalf("missing version: err = %v, want ErrVersion", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := streams.Event{ID: "id-1", Type: "purchase_order.updated", Source: "erp", Time: time.Now(), Data: []byte(`{}`)}
	cases := []struct {
		name  string
		edit  func(*streams.Event)
		field string
	}{
		{"ok", func(*streams.Event) {}, ""},
		{"bad type", func(e *streams.Event) { e.Type = "Order.Created" }, "type:"},
		{"empty type segment", func(e *streams.Event) { e.Type = "order..x" }, "type:"},
		{"long type", func(e *streams.Event) { e.Type = string(make([]byte, 129)) }, "type:"},
		{"bad source", func(e *streams.Event) { e.Source = "a.b" }, "source:"},
		{"id with space", func(e *streams.Event) { e.ID = "a b" }, "id:"},
		{"array data", func(e *streams.Event) { e.Data = []byte(`[1]`) }, "data:"},
		{"invalid json", func(e *streams.Event) { e.Data = []byte(`{"a":`) }, "data:"},
		{"too big", func(e *streams.Event) { e.Data = []byte(`{"a":"` + string(make([]byte, 200)) + `"}`) }, "data:"},
	}
	for _, c := range cases {
		e := ok
		c.edit(&e)
		err := e.Validate(100)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, streams.ErrInvalidEvent) || err.Error()[:len(c.field)] != c.field {
			t.Errorf("%s: err = %v, want one starting %q", c.name, err, c.field)
		}
	}
}

func TestMatchType(t *testing.T) {
	t.Parallel()
	ep := streams.Endpoint{ID: "ep1", EventTypes: []string{"order.*", "invoice.paid"}}
	for typ, want := range map[string]bool{"order.created": true, "order.x.y": true, "orders.created": false, "order": false, "invoice.paid": true, "invoice.sent": false} {
		if got := ep.Matches(&streams.Event{Type: typ}); got != want {
			t.Errorf("%s: %v", typ, got)
		}
	}
	if !(&streams.Endpoint{EventTypes: []string{"*"}}).Matches(&streams.Event{Type: "x"}) {
		t.Error("* does not match")
	}
	if (&streams.Endpoint{ID: "ep2", EventTypes: []string{"*"}}).Matches(&streams.Event{Type: "webhook.catchup", Target: "ep1"}) {
		t.Error("targeted event went to another endpoint")
	}
	if !(&streams.Endpoint{ID: "ep1"}).Matches(&streams.Event{Type: "webhook.catchup", Target: "ep1"}) {
		t.Error("targeted event missed its target")
	}
}

func FuzzUnmarshalEnvelope(f *testing.F) {
	d := &streams.Delivery{Event: streams.Event{ID: "e", Type: "a", Source: "s", Time: time.Unix(1, 0), Data: []byte(`{}`)}, EndpointID: "x"}
	b, _ := streams.Marshal(d)
	f.Add(b)
	dl := &streams.DeadLetter{ID: "x", Attempts: []streams.Attempt{{Error: "e"}}}
	b2, _ := streams.Marshal(dl)
	f.Add(b2)
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d streams.Delivery
		_ = streams.Unmarshal(b, &d)
		var ev streams.Event
		_ = streams.Unmarshal(b, &ev)
		var r streams.DeadLetter
		_ = streams.Unmarshal(b, &r)
		var h streams.Health
		_ = streams.Unmarshal(b, &h)
	})
}

func TestDeliveryStateKeepsFirstAndLastAttempts(t *testing.T) {
	t.Parallel()
	var s streams.DeliveryState
	for i := 1; i <= 40; i++ {
		s.AddAttempt(streams.Attempt{Attempt: i, ResponseBody: string(make([]byte, 5000))})
	}
	if s.Attempts != 40 || len(s.History) != 25 {
		t.Fatalf("attempts %d, history %d", s.Attempts, len(s.History))
	}
	if s.History[0].Attempt != 1 || s.History[4].Attempt != 5 || s.History[5].Attempt != 21 || s.History[24].Attempt != 40 {
		t.Fatalf("history kept attempts %d,%d,%d,%d", s.History[0].Attempt, s.History[4].Attempt, s.History[5].Attempt, s.History[24].Attempt)
	}
	if len(s.History[0].ResponseBody) > 1024 {
		t.Fatal("response body not bounded")
	}
}
