package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

func (b *testBundle) postBatch(t testing.TB, body string) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/events/batch", []byte(body))
}

func batchBody(ids ...string) string {
	var evs []string
	for _, id := range ids {
		evs = append(evs, fmt.Sprintf(`{"id": %q, "type": "order.created", "data": {"id": %q}}`, id, id))
	}
	return `{"events": [` + strings.Join(evs, ",") + `]}`
}

type batchAnswer struct {
	Results []struct {
		ID        string `json:"id"`
		Duplicate *bool  `json:"duplicate"`
		Error     string `json:"error"`
	} `json:"results"`
}

func decodeBatch(t *testing.T, r response) batchAnswer {
	t.Helper()
	var a batchAnswer
	if err := json.Unmarshal(r.raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPublishBatchHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postBatch(t, batchBody("b1", "b2", "b3"))
	if r.code != http.StatusAccepted {
		t.Fatalf("POST batch = %d %s", r.code, r.raw)
	}
	a := decodeBatch(t, r)
	if len(a.Results) != 3 {
		t.Fatalf("results = %s", r.raw)
	}
	for i, res := range a.Results {
		if res.ID != fmt.Sprintf("b%d", i+1) || res.Duplicate == nil || *res.Duplicate || res.Error != "" {
			t.Fatalf("result %d = %+v, want b%d stored (in the request's order)", i, res, i+1)
		}
	}
	if n := b.storedCount(t); n != 3 {
		t.Fatalf("EVENTS holds %d, want 3", n)
	}
	// Sent again: every one a duplicate, nothing stored twice.
	a = decodeBatch(t, b.postBatch(t, batchBody("b1", "b2", "b3")))
	for _, res := range a.Results {
		if res.Duplicate == nil || !*res.Duplicate {
			t.Fatalf("re-sent %+v, want duplicate", res)
		}
	}
	if n := b.storedCount(t); n != 3 {
		t.Fatalf("EVENTS holds %d after a re-send, want 3", n)
	}
}

// Every event is validated first: one invalid event is a 400 naming it,
// and nothing of the batch is stored.
func TestPublishBatchRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	many := make([]string, producer.MaxBatchEvents+1)
	for i := range many {
		many[i] = fmt.Sprintf("m%d", i)
	}
	for _, c := range []struct{ body, want string }{
		{`{"events": [{"id": "ok", "type": "order.created", "data": {}}, {"id": "x", "type": "order.created", "data": {}}, {"id": "bad", "type": "Not A Type", "data": {}}]}`, "events[2].type:"},
		{`{"events": [{"id": "ok", "type": "order.created", "data": {}}, {"type": "order.created"}]}`, "events[1].data"},
		{`{"events": [{"id": "ok", "type": "order.created", "data": {}, "extra": 1}]}`, "events[0]."},
		{`{"events": []}`, "events: at least one"},
		{`{}`, "events: required"},
		{`{"events": [], "atomics": true}`, "atomics"},
		{batchBody(many...), "over the batch limit"},
	} {
		r := b.postBatch(t, c.body)
		msg, _ := r.body["error"].(string)
		if r.code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("POST %.60s… = %d %q, want 400 containing %q", c.body, r.code, msg, c.want)
		}
	}
	if n := b.storedCount(t); n != 0 {
		t.Fatalf("EVENTS holds %d after refused batches, want 0", n)
	}
}

// When NATS fails part-way (here EVENTS fills up after two events), the
// answer is a 503 saying which were stored; sending the whole batch again
// with the same ids is safe: the stored ones answer duplicate.
func TestPublishBatchPartlyStored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.env.JS.Stream(ctx, streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxMsgs = 2
	if _, err := b.env.JS.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	r := b.postBatch(t, batchBody("p1", "p2", "p3", "p4"))
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("POST batch into a stream with room for 2 = %d (Retry-After %q) %s", r.code, r.hdr.Get("Retry-After"), r.raw)
	}
	a := decodeBatch(t, r)
	stored := 0
	for _, res := range a.Results {
		switch {
		case res.Error == "" && res.Duplicate != nil:
			stored++
		case res.Error != "" && res.Duplicate == nil:
		default:
			t.Fatalf("result %+v is neither stored nor an error", res)
		}
	}
	if stored != 2 || b.storedCount(t) != 2 {
		t.Fatalf("%d results stored, EVENTS holds %d; want 2 and 2: %s", stored, b.storedCount(t), r.raw)
	}
	sc.MaxMsgs = -1
	if _, err := b.env.JS.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	a = decodeBatch(t, b.postBatch(t, batchBody("p1", "p2", "p3", "p4")))
	dups := 0
	for _, res := range a.Results {
		if res.Error != "" {
			t.Fatalf("re-send: %+v", res)
		}
		if *res.Duplicate {
			dups++
		}
	}
	if dups != 2 || b.storedCount(t) != 4 {
		t.Fatalf("re-send: %d duplicates, EVENTS holds %d; want 2 and 4", dups, b.storedCount(t))
	}
}

func TestPublishBatchGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.p.PublishBatch(ctx, []producer.Event{
		{ID: "g1", Type: "order.created", Data: json.RawMessage(`{}`)},
		{Type: "order.updated", Data: json.RawMessage(`{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].ID != "g1" || res[1].ID == "" || res[0].Seq == 0 || res[1].Seq <= res[0].Seq {
		t.Fatalf("results = %+v", res)
	}
	_, err = b.p.PublishBatch(ctx, []producer.Event{{ID: "ok", Type: "a.b", Data: json.RawMessage(`{}`)}, {ID: "bad", Type: "", Data: json.RawMessage(`{}`)}})
	if !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "events[1].type") {
		t.Fatalf("invalid batch: %v, want ErrInvalidEvent naming events[1].type", err)
	}
	if n := b.storedCount(t); n != 2 {
		t.Fatalf("EVENTS holds %d, want 2", n)
	}
}

// A W3C traceparent given with an event (the HTTP header, or the Go
// context) is stored with it, for its webhook requests to carry; a header
// that is not a traceparent is dropped, never the event.
func TestTraceParentIsKept(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	post := func(id, header string) {
		req, err := http.NewRequest(http.MethodPost, b.ts.URL+"/v1/events", strings.NewReader(`{"id": "`+id+`", "type": "order.created", "data": {}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("traceparent", header)
		resp, err := b.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s = %d", id, resp.StatusCode)
		}
	}
	post("traced", tp)
	post("badly-traced", "00-zz-not-a-trace")
	if _, err := b.p.Publish(producer.ContextWithTraceParent(context.Background(), tp), producer.Event{ID: "go-traced", Type: "order.created", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[uint64]string{1: tp, 2: "", 3: tp} {
		if ev, _, _ := b.stored(t, seq); ev.TraceParent != want {
			t.Errorf("event %s at %d: traceparent %q, want %q", ev.ID, seq, ev.TraceParent, want)
		}
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tp + "-extra"} {
		if bad != "" && streams.ValidateTraceParent(bad) == nil {
			t.Errorf("ValidateTraceParent(%q) accepted it", bad)
		}
	}
	if err := streams.ValidateTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"); err != nil {
		t.Errorf("a later version with more fields: %v", err)
	}
}
