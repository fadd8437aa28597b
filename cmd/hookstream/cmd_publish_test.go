package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublish(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(file, []byte("{\n  \"from\": \"file\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	answer := answerJSON(202, `{"id":"e1","duplicate":false}`)
	runCallCases(t, []callCase{
		{
			name:   "every flag",
			args:   []string{"publish", "--type", "order.created", "--source", "shop", "--id", "e1", "--time", "2024-05-01T12:00:00+02:00", "--data", `{"n":1,"s":"<b>"}`},
			answer: answer,
			method: "POST", path: "/v1/events",
			body:   `{"id":"e1","type":"order.created","source":"shop","time":"2024-05-01T10:00:00Z","data":{"n":1,"s":"<b>"}}`,
			stdout: `{"id":"e1","duplicate":false}`,
		},
		{
			name:   "only what is required",
			args:   []string{"publish", "--type", "order.created", "--data", `{}`},
			answer: answer,
			method: "POST", path: "/v1/events",
			body:   `{"type":"order.created","data":{}}`,
			stdout: `{"id":"e1","duplicate":false}`,
		},
		{
			name:   "data from a file",
			args:   []string{"publish", "--type", "a.b", "--data", "@" + file},
			answer: answer,
			method: "POST", path: "/v1/events",
			body:   `{"type":"a.b","data":{"from":"file"}}`,
			stdout: `{"id":"e1","duplicate":false}`,
		},
		{
			name:   "data from stdin",
			args:   []string{"publish", "--type", "a.b", "--data", "-"},
			stdin:  ` {"from":"stdin"} `,
			answer: answer,
			method: "POST", path: "/v1/events",
			body:   `{"type":"a.b","data":{"from":"stdin"}}`,
			stdout: `{"id":"e1","duplicate":false}`,
		},
		{
			name:   "duplicate answer printed",
			args:   []string{"publish", "--type", "a.b", "--id", "e1", "--data", "{}"},
			answer: answerJSON(200, `{"id":"e1","duplicate":true}`),
			method: "POST", path: "/v1/events",
			body:   `{"id":"e1","type":"a.b","data":{}}`,
			stdout: `{"id":"e1","duplicate":true}`,
		},
	})
}

func TestPublishUsageErrors(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(202, `{}`))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no type", []string{"publish", "--data", "{}"}, "--type is required"},
		{"no data", []string{"publish", "--type", "a.b"}, "--data is required"},
		{"data not json", []string{"publish", "--type", "a.b", "--data", "{nope"}, "--data: not valid JSON"},
		{"data not an object", []string{"publish", "--type", "a.b", "--data", "[1]"}, "--data: must be a JSON object"},
		{"data file missing", []string{"publish", "--type", "a.b", "--data", "@/nonexistent/x.json"}, "--data: open /nonexistent/x.json"},
		{"bad time", []string{"publish", "--type", "a.b", "--data", "{}", "--time", "yesterday"}, "--time: must be RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, context.Background(), api.env(), "", tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("code %d, stderr %q; want a one-line error containing %q", r.code, r.stderr, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(api.requests()); n != 0 {
			t.Errorf("bad publishes sent %d requests", n)
		}
	})
}
