package dlq

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
)

// TestRecordJSON pins the documented JSON form: every key, times in UTC.
func TestRecordJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dl, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1", deadAt: t0.In(time.FixedZone("CET", 3600))})
	code, p := b.do(t, "GET", "/v1/dlq/"+dl.ID, nil)
	if code != 200 {
		t.Fatalf("GET = %d %s", code, p)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }
	want := []string{"attempt_count", "attempts", "dead_at", "endpoint_id", "event", "first_attempt", "generation", "id",
		"last_attempt", "reason", "replay_generation", "seq", "state", "url"}
	if got := keys(m); !slices.Equal(got, want) {
		t.Fatalf("record keys = %v, want %v", got, want)
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(m["event"], &ev); err != nil {
		t.Fatal(err)
	}
	if got := keys(ev); !slices.Equal(got, []string{"data", "id", "source", "time", "type"}) {
		t.Fatalf("event keys = %v", got)
	}
	var attempts []map[string]json.RawMessage
	if err := json.Unmarshal(m["attempts"], &attempts); err != nil || len(attempts) != 2 {
		t.Fatalf("attempts %s: %v", m["attempts"], err)
	}
	if got := keys(attempts[1]); !slices.Equal(got, []string{"attempt", "duration", "error", "response_body", "status_code", "time"}) {
		t.Fatalf("attempt keys = %v", got)
	}
	if got := string(m["dead_at"]); got != `"2025-03-01T12:00:00Z"` {
		t.Fatalf("dead_at = %s, want RFC 3339 UTC", got)
	}
	if got := string(attempts[0]["duration"]); got != `"1.5s"` {
		t.Fatalf("duration = %s, want a Go duration string", got)
	}
	if got := string(ev["data"]); got != `{"order":"ord_1","total":12.5}` {
		t.Fatalf("data = %s, want the event's JSON object", got)
	}
}

func TestNewRecordOfOddRecords(t *testing.T) {
	t.Parallel()
	// No attempts (an endpoint deleted before the first one), data that
	// is not JSON and times JSON cannot hold: the record still encodes.
	dl := &streams.DeadLetter{ID: "dl_1", Event: streams.Event{ID: "e", Data: []byte("not json"), Time: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	p, err := json.Marshal(newRecord(dl, nil, 3))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["first_attempt"]; ok {
		t.Errorf("first_attempt present without attempts: %s", p)
	}
	if string(m["attempts"]) != "[]" || string(m["state"]) != `"dead"` {
		t.Errorf("record = %s, want attempts [] and state dead", p)
	}
	var r Record
	if err := json.Unmarshal(p, &r); err != nil || string(r.Event.Data) != `"not json"` || !r.Event.Time.IsZero() {
		t.Errorf("record = %s (%v)", p, err)
	}
}

func FuzzDecodeDeadLetter(f *testing.F) {
	full := &streams.DeadLetter{
		ID: "dl_0123456789abcdef01234567", EndpointID: "ep_a", URL: "https://example.com/hook", Generation: 1,
		Reason: streams.ReasonExpired, AttemptCount: 30, FirstAttempt: t0, LastAttempt: t0.Add(time.Hour), DeadAt: t0.Add(time.Hour),
		Event: streams.Event{ID: "shop:42", Type: "order.created", Source: "shop", Time: t0, Data: []byte(`{"a":[1,2,{"b":null}]}`)},
		Attempts: []streams.Attempt{
			{Attempt: 1, Time: t0, Duration: time.Second, StatusCode: 503, ResponseBody: "\xff\xfe busy"},
			{Attempt: 30, Time: t0.Add(time.Hour), Error: "dial tcp: connection refused"},
		},
	}
	for _, dl := range []*streams.DeadLetter{
		full,
		{},
		{ID: "dl_x", Event: streams.Event{Data: []byte(`{"unterminated`), Time: time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		b, err := streams.Marshal(dl)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0xde, 0x00, 0x01, 0xa1, 'v', 0x01})
	f.Add([]byte("\x81\xa1v\x01\xa5event\x81\xa4data\xc4\x03abc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var dl streams.DeadLetter
		if err := streams.Unmarshal(b, &dl); err != nil {
			return
		}
		for _, st := range []*streams.DLQState{nil, {State: "replayed", ReplayGeneration: 2}} {
			r := newRecord(&dl, st, 7)
			p, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("record of %x does not encode: %v", b, err)
			}
			var back Record
			if err := json.Unmarshal(p, &back); err != nil {
				t.Fatalf("record JSON %s does not decode: %v", p, err)
			}
			if back.Seq != 7 || back.State != stateOf(st) || back.AttemptCount != dl.AttemptCount || len(back.Attempts) != len(dl.Attempts) {
				t.Fatalf("record JSON %s lost fields of %+v", p, dl)
			}
		}
	})
}
