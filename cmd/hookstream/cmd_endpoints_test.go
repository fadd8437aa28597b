package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

func TestEndpointsCommands(t *testing.T) {
	t.Parallel()
	noContent := func(w http.ResponseWriter, _ int, _ recorded) { w.WriteHeader(http.StatusNoContent) }
	runCallCases(t, []callCase{
		{
			name:   "add with every flag",
			args:   []string{"endpoints", "add", "--url", "https://example.com/hook", "--types", "order.created, invoice.*", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--description", "billing", "--rate-limit", "2.5", "--concurrency", "3"},
			method: "POST", path: "/v1/endpoints",
			body: `{"url":"https://example.com/hook","event_types":["order.created","invoice.*"],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","description":"billing","rate_limit":2.5,"concurrency":3}`,
		},
		{
			name:   "add with only what is required",
			args:   []string{"endpoints", "add", "--url", "https://example.com/hook", "--types", "*"},
			method: "POST", path: "/v1/endpoints",
			body: `{"url":"https://example.com/hook","event_types":["*"]}`,
		},
		{
			name:   "list one page",
			args:   []string{"endpoints", "list", "--limit", "5", "--cursor", "c1"},
			answer: answerJSON(200, `{"items":[{"id":"ep_1"}],"next_cursor":"c2"}`),
			method: "GET", path: "/v1/endpoints", query: url.Values{"limit": {"5"}, "cursor": {"c1"}},
			stdout: `{"items":[{"id":"ep_1"}],"next_cursor":"c2"}`,
		},
		{
			name:   "list last page has no next_cursor",
			args:   []string{"endpoints", "list"},
			answer: answerJSON(200, `{"items":[],"next_cursor":""}`),
			method: "GET", path: "/v1/endpoints",
			stdout: `{"items":[]}`,
		},
		{
			name:   "show",
			args:   []string{"endpoints", "show", "ep_1"},
			method: "GET", path: "/v1/endpoints/ep_1",
		},
		{
			name:   "update sends only the flags given",
			args:   []string{"endpoints", "update", "ep_1", "--description", "", "--concurrency", "0"},
			method: "PATCH", path: "/v1/endpoints/ep_1",
			body: `{"description":"","concurrency":0}`,
		},
		{
			name:   "update with flags before the id",
			args:   []string{"endpoints", "update", "--url", "https://example.com/new", "--types", "a.b,c.*", "--rate-limit", "0", "ep_1"},
			method: "PATCH", path: "/v1/endpoints/ep_1",
			body: `{"url":"https://example.com/new","event_types":["a.b","c.*"],"rate_limit":0}`,
		},
		{
			name:   "rm",
			args:   []string{"endpoints", "rm", "ep_1"},
			answer: noContent,
			method: "DELETE", path: "/v1/endpoints/ep_1",
			empty: true,
		},
		{
			name:   "enable",
			args:   []string{"endpoints", "enable", "ep_1"},
			method: "POST", path: "/v1/endpoints/ep_1/enable", body: `{}`,
		},
		{
			name:   "disable",
			args:   []string{"endpoints", "disable", "ep_1"},
			method: "POST", path: "/v1/endpoints/ep_1/disable", body: `{}`,
		},
		{
			name:   "rotate-secret",
			args:   []string{"endpoints", "rotate-secret", "ep_1"},
			method: "POST", path: "/v1/endpoints/ep_1/rotate-secret", body: `{}`,
		},
		{
			name:   "attempts",
			args:   []string{"endpoints", "attempts", "ep_1", "--limit", "2", "--cursor", "99"},
			answer: answerJSON(200, `{"items":[{"attempt":1},{"attempt":2}],"next_cursor":"97"}`),
			method: "GET", path: "/v1/endpoints/ep_1/attempts", query: url.Values{"limit": {"2"}, "cursor": {"99"}},
			stdout: `{"items":[{"attempt":1},{"attempt":2}],"next_cursor":"97"}`,
		},
		{
			name:   "id is path-escaped",
			args:   []string{"endpoints", "show", "ep/1?x"},
			method: "GET", path: "/v1/endpoints/ep%2F1%3Fx",
		},
	})
}

func TestEndpointsListAll(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
		switch r.Query.Get("cursor") {
		case "":
			fmt.Fprint(w, `{"items":[{"id":"a"},{"id":"b"}],"next_cursor":"c2"}`)
		case "c2":
			fmt.Fprint(w, `{"items":[],"next_cursor":"c3"}`) // a sparse page
		case "c3":
			fmt.Fprint(w, `{"items":[{"id":"c"}],"next_cursor":""}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	r := runCLI(t, context.Background(), api.env(), "", "endpoints", "list", "--all", "--json")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	if !jsonEqual(t, r.stdout, `{"items":[{"id":"a"},{"id":"b"},{"id":"c"}]}`) {
		t.Errorf("stdout = %s", r.stdout)
	}
	reqs := api.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, want := range []string{"", "c2", "c3"} {
		if got := reqs[i].Query.Get("cursor"); got != want {
			t.Errorf("request %d cursor = %q, want %q", i, got, want)
		}
		if got := reqs[i].Query.Get("limit"); got != "1000" {
			t.Errorf("request %d limit = %q, want the maximum page, 1000", i, got)
		}
	}
}

func TestEndpointsListAllRepeatedCursor(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"items":[{"id":"a"}],"next_cursor":"same"}`))
	r := runCLI(t, context.Background(), api.env(), "", "endpoints", "list", "--all", "--cursor", "same")
	wantOneErrorLine(t, r, 1, `next_cursor "same" repeats the cursor`)
}

func TestEndpointsUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"add without url", []string{"endpoints", "add", "--types", "*"}, "--url is required"},
		{"add without types", []string{"endpoints", "add", "--url", "https://x"}, "--types is required"},
		{"add with blank types", []string{"endpoints", "add", "--url", "https://x", "--types", " , "}, "--types: at least one type filter"},
		{"add with an argument", []string{"endpoints", "add", "--url", "https://x", "--types", "*", "extra"}, `unexpected argument "extra"`},
		{"update with nothing", []string{"endpoints", "update", "ep_1"}, "nothing to change"},
		{"show without id", []string{"endpoints", "show"}, "endpoints show: ID is required"},
		{"show with two ids", []string{"endpoints", "show", "a", "b"}, "takes one ID, got 2 arguments"},
		{"negative concurrency", []string{"endpoints", "update", "ep_1", "--concurrency", "-1"}, "--concurrency: must not be negative"},
		{"list limit too big", []string{"endpoints", "list", "--limit", "5000"}, "--limit: must be from 1 to 1000"},
	}
	api := newFakeAPI(t, answerJSON(200, `{}`))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, context.Background(), api.env(), "", tt.args...)
			wantOneErrorLine(t, r, 2, tt.want)
			if r.stdout != "" {
				t.Errorf("stdout = %q", r.stdout)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(api.requests()); n != 0 {
			t.Errorf("usage errors sent %d requests", n)
		}
	})
}

func TestPrintJSONIsIndented(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"id":"ep_1","event_types":["a.b"]}`))
	r := runCLI(t, context.Background(), api.env(), "", "endpoints", "show", "ep_1", "--json")
	want := "{\n  \"id\": \"ep_1\",\n  \"event_types\": [\n    \"a.b\"\n  ]\n}\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Errorf("stdout does not parse: %v", err)
	}
}
