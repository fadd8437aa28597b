package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestSourcesCommands(t *testing.T) {
	t.Parallel()
	runCallCases(t, []callCase{
		{
			name: "add with every flag",
			args: []string{"sources", "add", "--id", "crm", "--changes-url", "https://crm.example/changes", "--interval", "1m", "--expected-window", "15m",
				"--header", "Authorization: Bearer x", "--header", "X-Tenant: a, b"},
			method: "POST", path: "/v1/sources",
			body: `{"id":"crm","changes_url":"https://crm.example/changes","interval":"1m0s","expected_window":"15m0s","headers":{"Authorization":"Bearer x","X-Tenant":"a, b"}}`,
		},
		{
			name:   "add with only what is required",
			args:   []string{"sources", "add", "--id", "crm", "--changes-url", "https://crm.example/changes"},
			method: "POST", path: "/v1/sources",
			body: `{"id":"crm","changes_url":"https://crm.example/changes"}`,
		},
		{
			name:   "list",
			args:   []string{"sources", "list"},
			answer: answerJSON(200, `{"items":[{"id":"crm"}],"next_cursor":""}`),
			method: "GET", path: "/v1/sources",
			stdout: `{"items":[{"id":"crm"}]}`,
		},
		{
			name:   "show",
			args:   []string{"sources", "show", "crm"},
			method: "GET", path: "/v1/sources/crm",
		},
		{
			name:   "update sends only the flags given",
			args:   []string{"sources", "update", "crm", "--interval", "30s"},
			method: "PATCH", path: "/v1/sources/crm",
			body: `{"interval":"30s"}`,
		},
		{
			name:   "update headers",
			args:   []string{"sources", "update", "--header", "Authorization: Bearer y", "crm", "--changes-url", "https://crm.example/v2"},
			method: "PATCH", path: "/v1/sources/crm",
			body: `{"changes_url":"https://crm.example/v2","headers":{"Authorization":"Bearer y"}}`,
		},
		{
			name:   "rm",
			args:   []string{"sources", "rm", "crm"},
			answer: func(w http.ResponseWriter, _ int, _ recorded) { w.WriteHeader(http.StatusNoContent) },
			method: "DELETE", path: "/v1/sources/crm",
			empty: true,
		},
	})
}

func TestSourcesUsageErrors(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{}`))
	tests := []struct {
		name    string
		args    []string
		want    string
		notWant string
	}{
		{name: "add without id", args: []string{"sources", "add", "--changes-url", "https://x"}, want: "--id is required"},
		{name: "add without url", args: []string{"sources", "add", "--id", "crm"}, want: "--changes-url, --inbound or both are required"},
		{name: "bad interval", args: []string{"sources", "add", "--id", "crm", "--changes-url", "https://x", "--interval", "often"}, want: `sources add: --interval: "often" is not valid: not a duration like 30s or 15m; for example: hookstream sources add --interval 1m`},
		{name: "zero window", args: []string{"sources", "update", "crm", "--expected-window", "0s"}, want: "must be positive"},
		{name: "header without colon", args: []string{"sources", "update", "crm", "--header", "Bearer s3cr3t"}, want: "--header #1: must be 'Name: value'", notWant: "s3cr3t"},
		{name: "update with nothing", args: []string{"sources", "update", "crm"}, want: "nothing to change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, context.Background(), api.env(), "", tt.args...)
			wantOneErrorLine(t, r, 2, tt.want)
			if tt.notWant != "" && strings.Contains(r.stderr, tt.notWant) {
				t.Errorf("stderr %q shows %q", r.stderr, tt.notWant)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(api.requests()); n != 0 {
			t.Errorf("usage errors sent %d requests", n)
		}
	})
}
