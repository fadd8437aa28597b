package streams_test

import (
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/hookstream/hookstream/streams"
)

func TestAttemptMessages(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	one := []streams.Attempt{{EventID: "e1", EndpointID: "ep", Attempt: 2, Time: at, StatusCode: 500, Error: "http status 500"}}
	b, err := streams.MarshalAttempts(one)
	if err != nil {
		t.Fatal(err)
	}
	// A lone attempt is stored as an Attempt, as the log always was.
	var plain streams.Attempt
	if err := streams.Unmarshal(b, &plain); err != nil || plain.EventID != "e1" || plain.Attempt != 2 {
		t.Fatalf("lone attempt read as an Attempt: %+v, %v", plain, err)
	}
	got, err := streams.DecodeAttempts(b)
	if err != nil || len(got) != 1 || got[0].Error != "http status 500" || !got[0].Time.Equal(at) {
		t.Fatalf("DecodeAttempts(lone) = %+v, %v", got, err)
	}

	var many []streams.Attempt
	for i := range streams.AttemptBatchMax {
		many = append(many, streams.Attempt{EventID: "e" + string(rune('a'+i%26)), EndpointID: "ep", Attempt: 1, Time: at.Add(time.Duration(i) * time.Millisecond), StatusCode: 200})
	}
	b, err = streams.MarshalAttempts(many)
	if err != nil {
		t.Fatal(err)
	}
	got, err = streams.DecodeAttempts(b)
	if err != nil || len(got) != len(many) {
		t.Fatalf("DecodeAttempts(batch) = %d attempts, %v", len(got), err)
	}
	for i := range got {
		if got[i].EventID != many[i].EventID || !got[i].Time.Equal(many[i].Time) || got[i].StatusCode != 200 {
			t.Fatalf("attempt %d = %+v, want %+v", i, got[i], many[i])
		}
	}

	if _, err := streams.MarshalAttempts(nil); err == nil {
		t.Fatal("an empty batch was encoded")
	}
	if _, err := streams.MarshalAttempts(append(many, many[0])); err == nil {
		t.Fatal("a batch above AttemptBatchMax was encoded")
	}

	// A batch from a newer build (an attempt of another version) is refused
	// as a version error, not read wrong.
	raw, err := msgpack.Marshal(map[string]any{"v": streams.AttemptVersion, "batch": []map[string]any{{"v": streams.AttemptVersion + 1, "event_id": "x"}, {"v": streams.AttemptVersion + 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.DecodeAttempts(raw); !errors.Is(err, streams.ErrVersion) {
		t.Fatalf("DecodeAttempts(newer batch) = %v, want ErrVersion", err)
	}
	if _, err := streams.DecodeAttempts([]byte{0xc1}); err == nil {
		t.Fatal("garbage decoded")
	}
}
