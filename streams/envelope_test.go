package streams_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/hookstream/hookstream/streams"
)

// reflEvent and reflDelivery carry the envelopes' msgpack tags without their
// hand-written codecs: msgpack encodes and decodes them by reflection, the
// way every stored envelope was written before, and the way the tags say.
type reflEvent struct {
	V           int       `msgpack:"v"`
	ID          string    `msgpack:"id"`
	Type        string    `msgpack:"type"`
	Source      string    `msgpack:"source"`
	Time        time.Time `msgpack:"time"`
	Data        []byte    `msgpack:"data"`
	Target      string    `msgpack:"target,omitempty"`
	OrderingKey string    `msgpack:"ordering_key,omitempty"`
	TraceParent string    `msgpack:"traceparent,omitempty"`
}

type reflDelivery struct {
	V            int       `msgpack:"v"`
	Event        reflEvent `msgpack:"event"`
	EndpointID   string    `msgpack:"endpoint_id"`
	Generation   int       `msgpack:"generation"`
	DeadLetterID string    `msgpack:"dead_letter_id,omitempty"`
	EventSeq     uint64    `msgpack:"event_seq,omitempty"`
}

func (e reflEvent) event() streams.Event { return streams.Event(e) }

func (d reflDelivery) delivery() streams.Delivery {
	return streams.Delivery{V: d.V, Event: d.Event.event(), EndpointID: d.EndpointID, Generation: d.Generation, DeadLetterID: d.DeadLetterID, EventSeq: d.EventSeq}
}

func envelopeEvents() []streams.Event {
	long := strings.Repeat("x", 70_000)
	return []streams.Event{
		{},
		{ID: "e1", Type: "a.b", Source: "s", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: []byte(`{"x":[1,2]}`)},
		{ID: "e2", Type: "purchase_order.updated", Source: "erp", Time: time.Unix(1, 0), Data: []byte{}, Target: "ep_1", OrderingKey: "po-7", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{ID: "é✓", Type: "t", Source: "s", Time: time.Unix(1<<40, 999_999_999), Data: []byte(strings.Repeat("d", 300)), OrderingKey: "k"},
		{ID: long, Type: long[:300], Source: long[:40], Time: time.Unix(-5, 0).UTC(), Data: []byte(long), TraceParent: "t"},
	}
}

// The hand-written encoders write exactly the bytes of the reflective
// encoding of the same tags.
func TestEnvelopeBytesMatchReflection(t *testing.T) {
	t.Parallel()
	for i, ev := range envelopeEvents() {
		got, err := streams.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := msgpack.Marshal(reflEvent(ev))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d: %x, reflection writes %x", i, got, want)
		}
		for _, d := range []streams.Delivery{
			{Event: ev, EndpointID: "ep"},
			{Event: ev, EndpointID: "ep_" + strings.Repeat("z", 40), Generation: 3, DeadLetterID: "dl_1", EventSeq: 1 << 50},
			{Event: ev, Generation: -1, EventSeq: 7},
		} {
			got, err := streams.Marshal(&d)
			if err != nil {
				t.Fatal(err)
			}
			want, err := msgpack.Marshal(reflDelivery{V: d.V, Event: reflEvent(d.Event), EndpointID: d.EndpointID, Generation: d.Generation, DeadLetterID: d.DeadLetterID, EventSeq: d.EventSeq})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("delivery of event %d: %x, reflection writes %x", i, got, want)
			}
		}
	}
	// A dead-letter record holds an Event by value and is encoded by
	// reflection around it: its bytes are unchanged too.
	dl := streams.DeadLetter{ID: "dl", Event: envelopeEvents()[2]}
	b, err := streams.Marshal(&dl)
	if err != nil {
		t.Fatal(err)
	}
	var back streams.DeadLetter
	if err := streams.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Event.Data, dl.Event.Data) || back.Event.TraceParent != dl.Event.TraceParent {
		t.Fatalf("dead letter round trip: %v, %+v", err, back.Event)
	}
}

// The hand-written decoders read what reflection reads: keys in any order,
// keys this build does not know (short or long), nil values.
func TestEnvelopeDecodesLikeReflection(t *testing.T) {
	t.Parallel()
	inputs := []any{
		map[string]any{"data": []byte("{}"), "type": "a.b", "zz": []int{1, 2}, "v": 1, "id": "x", strings.Repeat("k", 40): map[string]any{"a": 1}, "time": time.Unix(9, 8)},
		map[string]any{"v": 1, "id": nil, "type": nil, "data": nil, "target": "t", "ordering_key": "o", "traceparent": "p", "source": "s"},
		map[string]any{"v": 1, "event": map[string]any{"v": 1, "id": "e", "time": time.Unix(3, 0)}, "endpoint_id": "ep", "generation": 2, "event_seq": uint64(1) << 40, "dead_letter_id": "d", "other": "x"},
		map[string]any{"event": nil, "v": 1, "generation": int8(-3)},
		map[string]any{},
	}
	for i, in := range inputs {
		b, err := msgpack.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var re reflEvent
		var ev streams.Event
		if err := msgpack.Unmarshal(b, &re); err != nil {
			t.Fatalf("input %d: reflection: %v", i, err)
		}
		if err := msgpack.Unmarshal(b, &ev); err != nil {
			t.Fatalf("input %d: event: %v", i, err)
		}
		if !reflect.DeepEqual(ev, re.event()) {
			t.Fatalf("input %d: event %+v, reflection reads %+v", i, ev, re.event())
		}
		var rd reflDelivery
		var d streams.Delivery
		if err := msgpack.Unmarshal(b, &rd); err != nil {
			t.Fatalf("input %d: reflection: %v", i, err)
		}
		if err := msgpack.Unmarshal(b, &d); err != nil {
			t.Fatalf("input %d: delivery: %v", i, err)
		}
		if !reflect.DeepEqual(d, rd.delivery()) {
			t.Fatalf("input %d: delivery %+v, reflection reads %+v", i, d, rd.delivery())
		}
	}
	// Decoding into a used value leaves nothing of the old one.
	d := streams.Delivery{DeadLetterID: "old", Event: streams.Event{Target: "old"}}
	b, _ := msgpack.Marshal(map[string]any{"v": 1, "event": map[string]any{"id": "n"}})
	if err := msgpack.Unmarshal(b, &d); err != nil || d.DeadLetterID != "" || d.Event.Target != "" || d.Event.ID != "n" {
		t.Fatalf("reused delivery = %+v, %v", d, err)
	}
}

// Whatever the bytes, what the hand-written decoder reads reflection reads
// the same, and it never panics or allocates what a length only claims.
func FuzzEnvelopeDecodesLikeReflection(f *testing.F) {
	for _, ev := range envelopeEvents()[:4] {
		b, _ := streams.Marshal(&ev)
		f.Add(b)
		b, _ = streams.Marshal(&streams.Delivery{Event: ev, EndpointID: "ep", EventSeq: 4, DeadLetterID: "x"})
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa1, 'v', 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Reflection runs only on what Unmarshal read, its shape checked:
		// the library allocates a claimed length before reading it, and
		// its pooled decoders keep buffers grown toward such claims,
		// which would end the fuzzer, not the test.
		var ev streams.Event
		if decoded(streams.Unmarshal(b, &ev)) {
			var re reflEvent
			if err := reflUnmarshal(b, &re); err == nil && !reflect.DeepEqual(ev, re.event()) {
				t.Fatalf("event %+v, reflection reads %+v", ev, re.event())
			}
		}
		var d streams.Delivery
		if decoded(streams.Unmarshal(b, &d)) {
			var rd reflDelivery
			if err := reflUnmarshal(b, &rd); err == nil && !reflect.DeepEqual(d, rd.delivery()) {
				t.Fatalf("delivery %+v, reflection reads %+v", d, rd.delivery())
			}
		}
	})
}

// decoded reports whether Unmarshal read the message whole: it did when it
// refused only the version.
func decoded(err error) bool { return err == nil || errors.Is(err, streams.ErrVersion) }

// reflUnmarshal is msgpack.Unmarshal by reflection, whose panics (a nil
// where a time.Time is, for one) are errors.
func reflUnmarshal(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return msgpack.Unmarshal(b, v)
}

// A bin that claims more bytes than the message holds is refused without
// allocating the claim (the library's own []byte decoding would allocate
// 4 GiB here).
func TestEnvelopeRefusesAClaimedLengthItDoesNotHold(t *testing.T) {
	t.Parallel()
	b := []byte{0x82, 0xa1, 'v', 0x01, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0xff, 0xff, 0xff, 0xf0, 'x'}
	var ev streams.Event
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := streams.Unmarshal(b, &ev); err == nil {
		t.Fatal("a 4 GiB bin in 15 bytes decoded")
	}
	runtime.ReadMemStats(&after)
	// Other tests run alongside; a gigabyte is far above all of them.
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<30 {
		t.Fatalf("%d bytes allocated decoding 15 bytes", d)
	}
}

// BenchmarkEnvelope encodes and decodes a delivery of 256 bytes of data by
// the hand-written codec and, for comparison, by reflection over the same
// tags.
func BenchmarkEnvelope(b *testing.B) {
	ev := streams.Event{ID: "evt_0123456789abcdefghijklmnop", Type: "purchase_order.updated", Source: "erp", Time: time.Now(), Data: bytes.Repeat([]byte("x"), 256), TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	d := streams.Delivery{Event: ev, EndpointID: "ep_0123456789abcdefghijklmnop"}
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := streams.Marshal(&d)
			if err != nil {
				b.Fatal(err)
			}
			var got streams.Delivery
			if err := streams.Unmarshal(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		rd := reflDelivery{V: 1, Event: reflEvent(ev), EndpointID: d.EndpointID}
		rd.Event.V = 1
		for b.Loop() {
			data, err := msgpack.Marshal(&rd)
			if err != nil {
				b.Fatal(err)
			}
			var got reflDelivery
			if err := msgpack.Unmarshal(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A message of nested arrays is refused, not decoded: msgpack's decoder
// recurses per level, and 8 MiB of them overflowed the goroutine's stack,
// a crash no recover catches. Shallow nesting in a large message decodes.
func TestUnmarshalRefusesDeepNesting(t *testing.T) {
	t.Parallel()
	deep := append([]byte{0x81, 0xa1, 'z'}, bytes.Repeat([]byte{0x91}, 8<<20)...)
	for _, v := range []streams.Versioned{&streams.Delivery{}, &streams.DeadLetter{}, &streams.Health{}, &streams.Event{}} {
		err := streams.Unmarshal(deep, v)
		if err == nil || !strings.Contains(err.Error(), "nested more than") {
			t.Fatalf("%T: err = %v, want nesting refused", v, err)
		}
	}
	ev := streams.Event{ID: "big", Type: "a.b", Source: "s", Time: time.Unix(5, 0), Data: bytes.Repeat([]byte("x"), 200<<10)}
	d := streams.Delivery{Event: ev, EndpointID: "ep"}
	b, err := streams.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	var got streams.Delivery
	if err := streams.Unmarshal(b, &got); err != nil || len(got.Event.Data) != 200<<10 {
		t.Fatalf("a 200 KiB delivery: %v, %d bytes of data", err, len(got.Event.Data))
	}
	rec := streams.DeadLetter{ID: "dl", Event: ev, Attempts: []streams.Attempt{{Attempt: 1, ResponseBody: "x"}}}
	b, err = streams.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	var back streams.DeadLetter
	if err := streams.Unmarshal(b, &back); err != nil || len(back.Attempts) != 1 {
		t.Fatalf("a 200 KiB dead letter: %v, %+v", err, back.Attempts)
	}
}

// A record decoded by reflection whose array claims millions of elements
// in a few bytes is refused before msgpack allocates the claim (5 million
// attempts: about a gigabyte).
func TestUnmarshalRefusesAClaimedArrayItDoesNotHold(t *testing.T) {
	t.Parallel()
	b, err := msgpack.Marshal(map[string]any{"v": 1, "id": "dl"})
	if err != nil {
		t.Fatal(err)
	}
	// One more key, "attempts", whose array32 claims 5,000,000 elements.
	b[0]++
	b = append(b, 0xa8)
	b = append(b, "attempts"...)
	b = append(b, 0xdd, 0x00, 0x4c, 0x4b, 0x40, 0x80)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var rec streams.DeadLetter
	err = streams.Unmarshal(b, &rec)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "claims 5000000 values") {
		t.Fatalf("err = %v, want the claim refused", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
		t.Fatalf("%d bytes allocated decoding %d bytes", d, len(b))
	}
	// A record whose arrays hold what they claim decodes.
	ok := streams.DeadLetter{ID: "dl", Attempts: []streams.Attempt{{Attempt: 1}, {Attempt: 2}}}
	if b, err = streams.Marshal(&ok); err != nil {
		t.Fatal(err)
	}
	if err := streams.Unmarshal(b, &rec); err != nil || len(rec.Attempts) != 2 {
		t.Fatalf("a sound record: %v, %d attempts", err, len(rec.Attempts))
	}
}
