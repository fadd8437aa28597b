package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// --check-order prints a line for a key's data.seq that goes back or skips
// one, and for two requests of one key in flight at once; a failed request
// does not move the key on, and a delivery again of the last seq is fine.
func TestSinkCheckOrder(t *testing.T) {
	t.Parallel()
	b := setupSink(t, sinkConfig{NoVerify: true, CheckOrder: true, FailFirst: 1})
	body := func(key string, seq int) string {
		return fmt.Sprintf(`{"type":"po.line","ordering_key":%q,"data":{"seq":%d}}`, key, seq)
	}
	// FailFirst 1: the first attempt of each id fails.
	for _, c := range []struct {
		id   string
		seq  int
		code int
	}{
		{"h", 0, 500}, {"h", 0, 200}, {"l1", 1, 500}, {"l1", 1, 200}, {"l1", 1, 200}, // again: at least once
		{"l3", 3, 500}, // skipped seq 2
		{"l0", 0, 500}, // went back
	} {
		if code, _ := b.post(t, nil, c.id, body("po-1", c.seq)); code != c.code {
			t.Fatalf("POST %s = %d, want %d", c.id, code, c.code)
		}
	}
	var got []string
	for _, l := range b.lines() {
		if strings.Contains(l, "ORDER VIOLATION") {
			got = append(got, l[strings.Index(l, "key="):])
		}
	}
	want := []string{
		"key=po-1 id=l3: seq 3 before seq 2 was delivered (skipped)",
		"key=po-1 id=l0: seq 0 after seq 1 was delivered (went back)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || b.sink.Violations() != 2 {
		t.Fatalf("violations (%d):\n%s\nwant:\n%s", b.sink.Violations(), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Two requests of one key at once (the sink holds each for a while).
	slow := setupSink(t, sinkConfig{NoVerify: true, CheckOrder: true, Delay: 200 * time.Millisecond, Now: time.Now})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slow.post(t, nil, fmt.Sprintf("o%d", i), `{"type":"po.line","ordering_key":"po-2"}`)
		}()
	}
	wg.Wait()
	if slow.sink.Violations() != 1 || !strings.Contains(slow.out.String(), "sent while an earlier request of the key was in flight") {
		t.Fatalf("overlapping requests: %d violations, lines:\n%s", slow.sink.Violations(), slow.out.String())
	}
}
