package dlq

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

// listFixture writes six records (event ids e1…e6, in DLQ order) covering
// every filter value.
func listFixture(t *testing.T, b *testBundle) map[string]uint64 {
	t.Helper()
	seqs := map[string]uint64{}
	for _, r := range []rec{
		{endpoint: "ep_a", event: "e1", typ: "order.created", reason: streams.ReasonExpired, deadAt: t0},
		{endpoint: "ep_b", event: "e2", typ: "order.updated", reason: streams.ReasonEndpointGone, deadAt: t0.Add(time.Hour)},
		{endpoint: "ep_a", event: "e3", typ: "invoice.paid", reason: streams.ReasonEndpointDeleted, deadAt: t0.Add(2 * time.Hour)},
		{endpoint: "ep_a", event: "e4", typ: "order.updated", reason: streams.ReasonExpired, deadAt: t0.Add(3 * time.Hour), state: streams.DLQStateReplayed},
		{endpoint: "ep_b", event: "e5", typ: "orders.created", reason: streams.ReasonExpired, deadAt: t0.Add(4 * time.Hour), state: streams.DLQStateDelivered},
		{endpoint: "ep_a", event: "e6", typ: "order.created", reason: streams.ReasonExpired, deadAt: t0.Add(5 * time.Hour), noState: true},
	} {
		_, seq := b.addRecord(t, r)
		seqs[r.event] = seq
	}
	return seqs
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	listFixture(t, b)
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", "e1 e2 e3 e4 e5 e6 "},
		{"endpoint=ep_a", "e1 e3 e4 e6 "},
		{"endpoint=ep_b", "e2 e5 "},
		{"endpoint=ep_none", ""},
		{"reason=expired", "e1 e4 e5 e6 "},
		{"reason=endpoint_gone", "e2 "},
		{"reason=endpoint_deleted", "e3 "},
		{"type=order.updated", "e2 e4 "},
		{"type=order.*", "e1 e2 e4 e6 "}, // not orders.created
		{"since=" + url.QueryEscape(ts(time.Hour)), "e2 e3 e4 e5 e6 "},
		{"until=" + url.QueryEscape(ts(2*time.Hour)), "e1 e2 "},
		{"since=" + url.QueryEscape(ts(time.Hour)) + "&until=" + url.QueryEscape(ts(3*time.Hour)), "e2 e3 "},
		{"since=" + url.QueryEscape(t0.Add(time.Hour).In(time.FixedZone("x", 3600)).Format(time.RFC3339)), "e2 e3 e4 e5 e6 "},
		{"state=dead", "e1 e2 e3 e6 "}, // e6 has no state key yet: dead
		{"state=replayed", "e4 "},
		{"state=delivered", "e5 "},
		{"endpoint=ep_a&state=dead&type=order.*", "e1 e6 "},
	} {
		var page httpjson.Page[Record]
		b.doJSON(t, "GET", "/v1/dlq?"+tc.query, nil, 200, &page)
		if got := eventIDs(page.Items); got != tc.want {
			t.Errorf("GET /v1/dlq?%s = %q, want %q", tc.query, got, tc.want)
		}
		if page.NextCursor != "" {
			t.Errorf("GET /v1/dlq?%s: next_cursor %q, want \"\" (everything fits)", tc.query, page.NextCursor)
		}
		if page.Items == nil {
			t.Errorf("GET /v1/dlq?%s: items is null, want []", tc.query)
		}
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seqs := listFixture(t, b)

	// Pages of 2 over everything, following next_cursor.
	var got []string
	cursor, pages := "", 0
	for {
		var page httpjson.Page[Record]
		b.doJSON(t, "GET", "/v1/dlq?limit=2&cursor="+cursor, nil, 200, &page)
		pages++
		if len(page.Items) > 2 {
			t.Fatalf("page of %d items, limit 2", len(page.Items))
		}
		for _, r := range page.Items {
			got = append(got, r.Event.ID)
			if r.Seq != seqs[r.Event.ID] {
				t.Errorf("%s: seq %d, want %d", r.Event.ID, r.Seq, seqs[r.Event.ID])
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(got, " ") != "e1 e2 e3 e4 e5 e6" || pages != 3 {
		t.Fatalf("pages = %d with %v, want 3 pages of e1…e6", pages, got)
	}

	// A client tailing the DLQ polls from the last seq + 1: nothing new,
	// then the next record.
	var page httpjson.Page[Record]
	b.doJSON(t, "GET", "/v1/dlq?cursor="+fmtSeq(seqs["e6"]+1), nil, 200, &page)
	if len(page.Items) != 0 || page.NextCursor != "" {
		t.Fatalf("tail past the end = %v next %q, want nothing", ids(page.Items), page.NextCursor)
	}
	b.addRecord(t, rec{endpoint: "ep_b", event: "e7"})
	b.doJSON(t, "GET", "/v1/dlq?cursor="+fmtSeq(seqs["e6"]+1), nil, 200, &page)
	if eventIDs(page.Items) != "e7 " {
		t.Fatalf("tail = %q, want the new record e7", eventIDs(page.Items))
	}

	// The Go API: limit out of range falls back to the default; a cursor
	// skips what came before.
	recs, next, err := b.svc.List(b.ctx, Filter{Endpoint: "ep_a"}, 0, fmtSeq(seqs["e3"]))
	if err != nil {
		t.Fatal(err)
	}
	if eventIDs(recs) != "e3 e4 e6 " || next != "" {
		t.Fatalf("List from e3 = %q next %q", eventIDs(recs), next)
	}
}

func TestListScanBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	listFixture(t, b)
	// Each request reads at most 2 messages: a sparse filter answers
	// short (even empty) pages with a cursor until the end.
	b.svc.scanBudget = 2
	var got string
	cursor, requests := "", 0
	for {
		recs, next, err := b.svc.List(b.ctx, Filter{State: streams.DLQStateDelivered}, 10, cursor)
		if err != nil {
			t.Fatal(err)
		}
		requests++
		got += eventIDs(recs)
		if next == "" {
			break
		}
		if next == cursor || requests > 10 {
			t.Fatalf("cursor does not advance: %q", next)
		}
		cursor = next
	}
	if got != "e5 " || requests != 4 {
		t.Fatalf("found %q in %d requests, want e5 in 4 (6 messages, 2 per request, and one to find the end)", got, requests)
	}
}

func TestGetAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dl, seq := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1", typ: "order.created"})
	other, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_2"})

	var r Record
	b.doJSON(t, "GET", "/v1/dlq/"+dl.ID, nil, 200, &r)
	if r.ID != dl.ID || r.Seq != seq || r.State != "dead" || r.Reason != "expired" || r.EndpointID != "ep_a" ||
		r.URL != dl.URL || r.Event.ID != "ord_1" || r.Event.Type != "order.created" || r.Event.Source != "shop" ||
		!r.Event.Time.Equal(dl.Event.Time) || string(r.Event.Data) != `{"order":"ord_1","total":12.5}` ||
		r.Generation != 0 || r.AttemptCount != 2 || len(r.Attempts) != 2 || !r.DeadAt.Equal(dl.DeadAt) ||
		!r.FirstAttempt.Equal(dl.FirstAttempt) || !r.LastAttempt.Equal(dl.LastAttempt) || r.ReplayGeneration != 0 {
		t.Fatalf("GET = %+v, want the record %+v", r, dl)
	}
	if a := r.Attempts[0]; a.Attempt != 1 || a.Duration != "1.5s" || a.StatusCode != 500 || a.ResponseBody != "boom" || !a.Time.Equal(dl.Attempts[0].Time) {
		t.Fatalf("attempt 1 = %+v", a)
	}
	if a := r.Attempts[1]; a.Error != "context deadline exceeded" || a.StatusCode != 0 || a.Duration != "10s" {
		t.Fatalf("attempt 2 = %+v", a)
	}

	code, _ := b.do(t, "DELETE", "/v1/dlq/"+dl.ID, nil)
	if code != 204 {
		t.Fatalf("DELETE = %d, want 204", code)
	}
	if st := b.dlqState(t, dl.ID); st != nil {
		t.Fatalf("state %+v left after delete", st)
	}
	s, err := b.env.JS.Stream(b.ctx, streams.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(b.ctx, seq); err == nil {
		t.Fatal("the stream message is still there after delete")
	}
	for _, req := range [][2]string{
		{"GET", "/v1/dlq/" + dl.ID}, {"DELETE", "/v1/dlq/" + dl.ID}, {"POST", "/v1/dlq/" + dl.ID + "/replay"},
		{"GET", "/v1/dlq/dl_000000000000000000000000"}, {"GET", "/v1/dlq/no.such%20id"},
		{"POST", "/v1/dlq/dl_000000000000000000000000/replay"}, {"GET", "/v1/dlq/replays/job_unknown"},
	} {
		code, p := b.do(t, req[0], req[1], nil)
		if code != 404 {
			t.Errorf("%s %s = %d %s, want 404", req[0], req[1], code, p)
		} else {
			errorOf(t, p)
		}
	}
	var page httpjson.Page[Record]
	b.doJSON(t, "GET", "/v1/dlq", nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].ID != other.ID {
		t.Fatalf("list after delete = %v, want only %s", ids(page.Items), other.ID)
	}
}

func TestDeleteFinishesAHalfDoneDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dl, seq := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1"})
	// A delete that crashed after removing the message: the state alone
	// reads as not found, and a new delete removes it.
	s, err := b.env.JS.Stream(b.ctx, streams.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(b.ctx, seq); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.do(t, "GET", "/v1/dlq/"+dl.ID, nil); code != 404 {
		t.Fatalf("GET of a record without its message = %d, want 404", code)
	}
	if code, _ := b.do(t, "DELETE", "/v1/dlq/"+dl.ID, nil); code != 404 {
		t.Fatalf("DELETE = %d, want 404", code)
	}
	if st := b.dlqState(t, dl.ID); st != nil {
		t.Fatalf("orphan state %+v not removed", st)
	}
}

func TestBadFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct{ query, field string }{
		{"endpoint=a.b", "endpoint: "},
		{"endpoint=a*", "endpoint: "},
		{"reason=timeout", "reason: "},
		{"type=Order.Created", "type: "},
		{"type=order.", "type: "},
		{"since=yesterday", "since: "},
		{"since=2025-01-02", "since: "},
		{"until=12345", "until: "},
		{"since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z", "until: "},
		{"state=dead,replayed", "state: "},
		{"limit=0", "limit: "},
		{"limit=1001", "limit: "},
		{"cursor=abc", "cursor: "},
		{"cursor=-1", "cursor: "},
		// A misspelt or unknown parameter is named, never ignored (it would
		// answer every record).
		{"endpoint_id=ep_1", "endpoint_id: unknown query parameter"},
		{"state=dead&State=dead", "State: unknown query parameter"},
		{"limit=1&limit=2", "limit: given 2 times"},
	} {
		code, p := b.do(t, "GET", "/v1/dlq?"+tc.query, nil)
		if code != 400 || !strings.HasPrefix(errorOf(t, p), tc.field) {
			t.Errorf("GET /v1/dlq?%s = %d %s, want 400 naming %q", tc.query, code, p, tc.field)
		}
	}
	for _, tc := range []struct{ body, field string }{
		{`{"reason":"timeout"}`, "reason: "},
		{`{"type":"*.x"}`, "type: "},
		{`{"since":"now"}`, "since: "},
		{`{"until":"2025-13-01T00:00:00Z"}`, "until: "},
		{`{"state":"gone"}`, "state: "},
		{`{"endpoint":"a b"}`, "endpoint: "},
		{`{"endpoint":1}`, "endpoint: "},
		{`{"bogus":"x"}`, "bogus: "},
		{`[]`, "body: "},
		{``, "body: "},
	} {
		code, p := b.do(t, "POST", "/v1/dlq/replay", tc.body)
		if code != 400 || !strings.HasPrefix(errorOf(t, p), tc.field) {
			t.Errorf("POST /v1/dlq/replay %s = %d %s, want 400 naming %q", tc.body, code, p, tc.field)
		}
	}
	for _, path := range []string{"/v1/dlq/dl_x?verbose=1", "/v1/dlq/replays/job_x?watch=1"} {
		code, p := b.do(t, "GET", path, nil)
		if code != 400 || !strings.Contains(errorOf(t, p), "unknown query parameter; this route takes none") {
			t.Errorf("GET %s = %d %s, want 400 naming the parameter", path, code, p)
		}
	}
	// The Go API validates too.
	if _, _, err := b.svc.List(b.ctx, Filter{Reason: "nope"}, 10, ""); err == nil || !strings.HasPrefix(err.Error(), "reason: ") {
		t.Errorf("List with a bad reason: %v", err)
	}
}
