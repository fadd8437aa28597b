package bench_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/bench"
)

func TestEventDataCarriesSentTime(t *testing.T) {
	t.Parallel()
	sent := time.Unix(1_700_000_000, 123456789)
	for _, size := range []int{64, 256, 4096} {
		data := bench.EventData(sent, size)
		if !json.Valid(data) {
			t.Fatalf("size %d: not JSON: %s", size, data)
		}
		if len(data) != size {
			t.Errorf("size %d: %d bytes", size, len(data))
		}
		// What an endpoint gets: the data inside the webhook body.
		body := bench.WebhookBody(bench.Event{ID: "e-1", Type: "bench.x", Data: data}, "default", sent)
		got, ok := bench.SentTime(body)
		if !ok || !got.Equal(sent) {
			t.Errorf("size %d: SentTime = %v, %v; want %v", size, got, ok, sent)
		}
	}
	if _, ok := bench.SentTime([]byte(`{"id":"x"}`)); ok {
		t.Error("SentTime found a time in a body without one")
	}
}

func TestBodies(t *testing.T) {
	t.Parallel()
	m := bench.EventMaker{Prefix: "r1-c", Type: "bench.r1.c1", Size: 64}
	evs := []bench.Event{m.Make(0), m.Make(1)}
	var one struct {
		ID, Type string
		Data     json.RawMessage
	}
	if err := json.Unmarshal(bench.IngestBody(evs[0]), &one); err != nil || one.ID != "r1-c-0" || one.Type != "bench.r1.c1" || len(one.Data) != 64 {
		t.Errorf("ingest body: %+v, %v", one, err)
	}
	var batch struct{ Events []struct{ ID string } }
	if err := json.Unmarshal(bench.BatchBody(evs), &batch); err != nil || len(batch.Events) != 2 || batch.Events[1].ID != "r1-c-1" {
		t.Errorf("batch body: %+v, %v", batch, err)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := bench.Percentile(d, p); got != want {
			t.Errorf("p%.0f = %d, want %d", p, got, want)
		}
	}
	if bench.Percentile(nil, 99) != 0 {
		t.Error("p99 of nothing is not 0")
	}
}
