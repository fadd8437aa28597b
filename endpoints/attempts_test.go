package endpoints_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/streams"
)

func TestAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{})["id"].(string)
	other := b.create(t, map[string]any{})["id"].(string)
	path := "/v1/endpoints/" + id + "/attempts"

	if page := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK); len(page["items"].([]any)) != 0 || page["next_cursor"] != "" {
		t.Fatalf("empty log = %v", page)
	}

	base := time.Date(2030, 1, 2, 3, 0, 0, 0, time.FixedZone("x", 3600))
	publish := func(ep string, n int) {
		a := &streams.Attempt{
			EventID: "ev" + strconv.Itoa(n), EventType: "order.created", EndpointID: ep, Attempt: n,
			Time: base.Add(time.Duration(n) * time.Second), Duration: 1500 * time.Millisecond,
			StatusCode: 500, Error: "status 500", ResponseBody: "oops",
		}
		if n == 5 {
			a.StatusCode, a.Error, a.ResponseBody = 200, "", ""
		} else {
			a.NextAttempt = a.Time.Add(30 * time.Second)
		}
		data, err := streams.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.env.JS.Publish(b.ctx, streams.AttemptSubject(ep), data); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 5; n++ {
		publish(id, n)
		publish(other, 100+n) // interleaved: another endpoint's log is not shown
	}

	var got []float64
	cursor, pages := "", 0
	for {
		p := path + "?limit=2"
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page := b.doJSON(t, http.MethodGet, p, nil, http.StatusOK)
		pages++
		for _, it := range page["items"].([]any) {
			m := it.(map[string]any)
			got = append(got, m["attempt"].(float64))
			if m["duration"] != "1.5s" || m["event_type"] != "order.created" {
				t.Fatalf("item = %v", m)
			}
		}
		cursor = page["next_cursor"].(string)
		if cursor == "" || pages > 5 {
			break
		}
	}
	if pages != 3 || len(got) != 5 || got[0] != 5 || got[1] != 4 || got[2] != 3 || got[3] != 2 || got[4] != 1 {
		t.Fatalf("attempts %v in %d pages, want 5 4 3 2 1 in 3", got, pages)
	}

	page := b.doJSON(t, http.MethodGet, path, nil, http.StatusOK)
	items := page["items"].([]any)
	if len(items) != 5 || page["next_cursor"] != "" {
		t.Fatalf("default page = %v", page)
	}
	newest, oldest := items[0].(map[string]any), items[4].(map[string]any)
	if newest["event_id"] != "ev5" || newest["status_code"] != 200.0 || newest["time"] != "2030-01-02T02:00:05Z" {
		t.Fatalf("newest = %v, want ev5 at its time in UTC", newest)
	}
	if _, ok := newest["next_attempt"]; ok {
		t.Fatalf("final attempt shows a next attempt: %v", newest)
	}
	if oldest["event_id"] != "ev1" || oldest["error"] != "status 500" || oldest["response_body"] != "oops" ||
		oldest["next_attempt"] != "2030-01-02T02:00:31Z" {
		t.Fatalf("oldest = %v", oldest)
	}

	for _, c := range []string{"x", "0", "-1"} {
		b.doJSON(t, http.MethodGet, path+"?cursor="+c, nil, http.StatusBadRequest)
	}
	b.doJSON(t, http.MethodGet, "/v1/endpoints/ep_nope/attempts", nil, http.StatusNotFound)
}

// BenchmarkAttemptsFullLog reads pages of a full attempt log (1000 attempts,
// the default per-endpoint bound): every page walks the whole log.
func BenchmarkAttemptsFullLog(b *testing.B) {
	tb := setup(b, endpoints.Config{})
	id := tb.create(b, map[string]any{})["id"].(string)
	for n := range 1000 {
		data, err := streams.Marshal(&streams.Attempt{EventID: "ev" + strconv.Itoa(n), EndpointID: id, Attempt: 1, Time: time.Now(), Error: "status 500"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tb.env.JS.Publish(tb.ctx, streams.AttemptSubject(id), data); err != nil {
			b.Fatal(err)
		}
	}
	path := "/v1/endpoints/" + id + "/attempts?limit=1000"
	for b.Loop() {
		if page := tb.doJSON(b, http.MethodGet, path, nil, http.StatusOK); len(page["items"].([]any)) != 1000 {
			b.Fatalf("page has %d items", len(page["items"].([]any)))
		}
	}
}

// TestAttemptsInBatches reads a log whose successes were stored in batches
// (several attempts in one ATTEMPTS message) between single failures: the
// pages cut through batches and still list every attempt once, newest
// first.
func TestAttemptsInBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	id := b.create(t, map[string]any{})["id"].(string)
	path := "/v1/endpoints/" + id + "/attempts"
	base := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	n := 0
	store := func(k int, status int) {
		var as []streams.Attempt
		for range k {
			n++
			as = append(as, streams.Attempt{EventID: "ev" + strconv.Itoa(n), EndpointID: id, Attempt: 1, Time: base.Add(time.Duration(n) * time.Second), StatusCode: status})
		}
		data, err := streams.MarshalAttempts(as)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.env.JS.Publish(b.ctx, streams.AttemptSubject(id), data); err != nil {
			t.Fatal(err)
		}
	}
	store(3, 200) // ev1..ev3, one message
	store(1, 500) // ev4
	store(5, 200) // ev5..ev9, one message
	store(1, 500) // ev10

	var got []string
	cursors := map[string]bool{}
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		p := path + "?limit=3"
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page := b.doJSON(t, http.MethodGet, p, nil, http.StatusOK)
		for _, it := range page["items"].([]any) {
			got = append(got, it.(map[string]any)["event_id"].(string))
		}
		cursor = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
		cursors[cursor] = true
	}
	want := []string{"ev10", "ev9", "ev8", "ev7", "ev6", "ev5", "ev4", "ev3", "ev2", "ev1"}
	if strconv.Quote(strings.Join(got, " ")) != strconv.Quote(strings.Join(want, " ")) {
		t.Fatalf("attempts %v, want %v", got, want)
	}
	inBatch := false
	for c := range cursors {
		inBatch = inBatch || strings.Contains(c, ".")
	}
	if !inBatch {
		t.Fatalf("cursors %v: none points inside a batch", cursors)
	}
	for _, c := range []string{"3.0", "3.x", "3." + strconv.Itoa(streams.AttemptBatchMax), "3.-1", ".1"} {
		b.doJSON(t, http.MethodGet, path+"?cursor="+c, nil, http.StatusBadRequest)
	}
}
