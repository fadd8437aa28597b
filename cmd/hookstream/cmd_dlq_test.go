package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDLQCommands(t *testing.T) {
	t.Parallel()
	runCallCases(t, []callCase{
		{
			name: "list with every filter",
			args: []string{"dlq", "list", "--endpoint", "ep_1", "--reason", "expired", "--type", "order.*",
				"--since", "2025-03-01T00:00:00+01:00", "--until", "1h", "--state", "dead", "--limit", "10", "--cursor", "42"},
			answer: answerJSON(200, `{"items":[{"id":"dl_1","seq":42}],"next_cursor":"43"}`),
			method: "GET", path: "/v1/dlq",
			query: url.Values{
				"endpoint": {"ep_1"}, "reason": {"expired"}, "type": {"order.*"},
				"since": {"2025-02-28T23:00:00Z"}, "until": {testNow.Add(-time.Hour).Format(time.RFC3339Nano)},
				"state": {"dead"}, "limit": {"10"}, "cursor": {"42"},
			},
			stdout: `{"items":[{"id":"dl_1","seq":42}],"next_cursor":"43"}`,
		},
		{
			name:   "show",
			args:   []string{"dlq", "show", "dl_1"},
			method: "GET", path: "/v1/dlq/dl_1",
		},
		{
			name:   "replay one",
			args:   []string{"dlq", "replay", "dl_1"},
			answer: answerJSON(202, `{"id":"dl_1","state":"replayed"}`),
			method: "POST", path: "/v1/dlq/dl_1/replay", body: `{}`,
			stdout: `{"id":"dl_1","state":"replayed"}`,
		},
	})
}

func TestDLQReplayBulk(t *testing.T) {
	t.Parallel()
	progress := []string{
		`{"job":"j1","state":"running","matched":3,"replayed":1,"skipped":0,"failed":0}`,
		`{"job":"j1","state":"running","matched":3,"replayed":2,"skipped":0,"failed":0}`,
		`{"job":"j1","state":"running","matched":3,"replayed":2,"skipped":0,"failed":0}`,
		`{"job":"j1","state":"done","matched":3,"replayed":2,"skipped":1,"failed":0}`,
	}
	api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
		if r.Method == "POST" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job":"j1","matched":3}`)
			return
		}
		fmt.Fprint(w, progress[min(n-1, len(progress)-1)])
	})
	r := runCLI(t, context.Background(), api.env(), "", "dlq", "replay", "--endpoint", "ep_1", "--state", "dead", "--since", "2h", "--poll", "1ms")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	want := "replay job j1: 3 records matched\nreplayed 1/3\nreplayed 2/3\nreplayed 2/3, 1 skipped\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	reqs := api.requests()
	if len(reqs) != 1+len(progress) {
		t.Fatalf("%d requests, want %d (stops once done)", len(reqs), 1+len(progress))
	}
	if reqs[0].Method != "POST" || reqs[0].Path != "/v1/dlq/replay" {
		t.Errorf("first request %s %s, want POST /v1/dlq/replay", reqs[0].Method, reqs[0].Path)
	}
	since := testNow.Add(-2 * time.Hour).Format(time.RFC3339Nano)
	if !jsonEqual(t, reqs[0].Body, `{"endpoint":"ep_1","state":"dead","since":"`+since+`"}`) {
		t.Errorf("bulk replay body = %s", reqs[0].Body)
	}
	for _, req := range reqs[1:] {
		if req.Method != "GET" || req.Path != "/v1/dlq/replays/j1" {
			t.Errorf("poll request %s %s, want GET /v1/dlq/replays/j1", req.Method, req.Path)
		}
	}
}

func TestDLQReplayBulkFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		final string
		want  string
	}{
		{"job failed", `{"job":"j1","state":"failed","matched":2,"replayed":1,"error":"nats: timeout"}`, "hookstream: replay job j1: nats: timeout"},
		{"records failed", `{"job":"j1","state":"done","matched":2,"replayed":1,"failed":1}`, "hookstream: replay job j1: 1 of 2 records failed to replay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
				if r.Method == "POST" {
					w.WriteHeader(http.StatusAccepted)
					fmt.Fprint(w, `{"job":"j1","matched":2}`)
					return
				}
				fmt.Fprint(w, tt.final)
			})
			r := runCLI(t, context.Background(), api.env(), "", "dlq", "replay", "--endpoint", "ep_1", "--poll", "1ms")
			if r.code != 1 || r.stderr != tt.want+"\n" {
				t.Errorf("code %d, stderr %q; want 1, %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestDLQReplayNothingMatched(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
		if r.Method == "POST" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job":"j0","matched":0}`)
			return
		}
		fmt.Fprint(w, `{"job":"j0","state":"done","matched":0,"replayed":0,"skipped":0,"failed":0}`)
	})
	r := runCLI(t, context.Background(), api.env(), "", "dlq", "replay", "--reason", "expired", "--poll", "1ms")
	if r.code != 0 || r.stdout != "replay job j0: 0 records matched\nreplayed 0/0\n" {
		t.Errorf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestDLQTail(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pages := []string{
		`{"items":[{"id":"dl_a","seq":5,"event":{"data":{"html":"<b>"}}}],"next_cursor":""}`,
		`{"items":[],"next_cursor":""}`,
		`{"items":[],"next_cursor":"9"}`, // sparse: nothing matched in the stretch read
		`{"items":[{"id":"dl_b","seq":12},{"id":"dl_c","seq":14}],"next_cursor":""}`,
	}
	api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
		if n >= len(pages) {
			cancel() // Ctrl-C
			<-r.ctx.Done()
			return
		}
		fmt.Fprint(w, pages[n])
	})
	r := runCLI(t, ctx, api.env(), "", "dlq", "tail", "--endpoint", "ep_1", "--type", "order.created", "--poll", "1ms", "--json")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("code %d, stderr %q; want 0 and nothing on Ctrl-C", r.code, r.stderr)
	}
	want := `{"id":"dl_a","seq":5,"event":{"data":{"html":"<b>"}}}` + "\n" + `{"id":"dl_b","seq":12}` + "\n" + `{"id":"dl_c","seq":14}` + "\n"
	if r.stdout != want {
		t.Errorf("stdout = %q\nwant %q", r.stdout, want)
	}
	reqs := api.requests()
	if len(reqs) != len(pages)+1 {
		t.Fatalf("%d requests, want %d", len(reqs), len(pages)+1)
	}
	wantCursors := []string{"", "6", "6", "9", "15"}
	since := testNow.Format(time.RFC3339Nano)
	for i, req := range reqs {
		if req.Method != "GET" || req.Path != "/v1/dlq" {
			t.Errorf("request %d: %s %s", i, req.Method, req.Path)
		}
		q := req.Query
		if q.Get("cursor") != wantCursors[i] || q.Get("since") != since || q.Get("endpoint") != "ep_1" || q.Get("type") != "order.created" {
			t.Errorf("request %d query %v; want cursor %q, since %s and the filters", i, q, wantCursors[i], since)
		}
	}
}

func TestDLQPurge(t *testing.T) {
	t.Parallel()
	newAPI := func(t *testing.T) *fakeAPI {
		return newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
			switch {
			case r.Method == "GET" && r.Query.Get("cursor") == "":
				fmt.Fprint(w, `{"items":[{"id":"dl_a","seq":1},{"id":"dl_b","seq":2}],"next_cursor":"3"}`)
			case r.Method == "GET" && r.Query.Get("cursor") == "3":
				fmt.Fprint(w, `{"items":[{"id":"dl:c","seq":3}],"next_cursor":""}`)
			case r.Method == "DELETE" && r.Path == "/v1/dlq/dl_b":
				w.WriteHeader(http.StatusNotFound) // aged out meanwhile
				fmt.Fprint(w, `{"error":"dead letter dl_b not found"}`)
			case r.Method == "DELETE":
				w.WriteHeader(http.StatusNoContent)
			default:
				w.WriteHeader(http.StatusTeapot)
			}
		})
	}

	t.Run("without --yes refuses", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t)
		r := runCLI(t, context.Background(), api.env(), "", "dlq", "purge", "--endpoint", "ep_1")
		if r.code != 1 || r.stderr != "hookstream: refusing to purge 3 records without --yes\n" {
			t.Errorf("code %d, stderr %q", r.code, r.stderr)
		}
		for _, req := range api.requests() {
			if req.Method != "GET" {
				t.Errorf("sent %s %s without --yes", req.Method, req.Path)
			}
			if req.Query.Get("endpoint") != "ep_1" {
				t.Errorf("list query %v lacks the filter", req.Query)
			}
		}
	})
	t.Run("with --yes deletes each", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t)
		r := runCLI(t, context.Background(), api.env(), "", "dlq", "purge", "--reason", "endpoint_deleted", "--yes", "--json")
		if r.code != 0 {
			t.Fatalf("code %d, stderr %q", r.code, r.stderr)
		}
		if !jsonEqual(t, r.stdout, `{"purged":2,"matched":3}`) {
			t.Errorf("stdout = %s", r.stdout)
		}
		var deleted []string
		for _, req := range api.requests() {
			if req.Method == "DELETE" {
				deleted = append(deleted, req.Path)
			}
		}
		if strings.Join(deleted, " ") != "/v1/dlq/dl_a /v1/dlq/dl_b /v1/dlq/dl:c" {
			t.Errorf("deleted %q", deleted)
		}
	})
	t.Run("no filter", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t)
		r := runCLI(t, context.Background(), api.env(), "", "dlq", "purge", "--yes")
		wantOneErrorLine(t, r, 2, "dlq purge: give at least one filter")
		if n := len(api.requests()); n != 0 {
			t.Errorf("sent %d requests", n)
		}
	})
	t.Run("nothing matches", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t, answerJSON(200, `{"items":[],"next_cursor":""}`))
		r := runCLI(t, context.Background(), api.env(), "", "dlq", "purge", "--type", "a.b", "--json")
		if r.code != 0 || !jsonEqual(t, r.stdout, `{"purged":0,"matched":0}`) {
			t.Errorf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestDLQUsageErrors(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{}`))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"replay without id or filter", []string{"dlq", "replay"}, "give a record ID, or at least one filter"},
		{"replay id and filter", []string{"dlq", "replay", "dl_1", "--endpoint", "ep_1"}, "give an ID or filters"},
		{"bad since", []string{"dlq", "list", "--since", "last week"}, "--since: must be RFC 3339"},
		{"zero poll", []string{"dlq", "tail", "--poll", "0s"}, "--poll: must be positive"},
		{"tail takes no since", []string{"dlq", "tail", "--since", "1h"}, "dlq tail: unknown flag --since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, context.Background(), api.env(), "", tt.args...)
			wantOneErrorLine(t, r, 2, tt.want)
		})
	}
	t.Cleanup(func() {
		if n := len(api.requests()); n != 0 {
			t.Errorf("usage errors sent %d requests", n)
		}
	})
}
