package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Without --json, the client commands print aligned tables and name: value
// lines for people; a dead-letter list of 2 records is 3 lines, not 142.
func TestHumanOutput(t *testing.T) {
	t.Parallel()
	const dl = `{"id":"dl_%d","seq":%d,"state":"dead","reason":"expired","endpoint_id":"ep_1","url":"https://x/h",
		"event":{"id":"po-%d","type":"order.created","source":"erp","time":"2025-03-01T10:00:00Z","data":{"n":1}},
		"generation":0,"attempt_count":31,"attempts":[{"attempt":1,"time":"2025-03-01T10:00:01Z","duration":"1.2s","status_code":500,"error":"","response_body":"oops"}],
		"first_attempt":"2025-03-01T10:00:01Z","last_attempt":"2025-03-02T10:00:00Z","dead_at":"2025-03-02T10:00:01Z","replay_generation":0}`
	tests := []struct {
		name   string
		args   []string
		answer string
		want   string // stdout, exactly
	}{
		{
			name:   "dlq list",
			args:   []string{"dlq", "list"},
			answer: `{"items":[` + fmt.Sprintf(dl, 1, 1, 1) + `,` + fmt.Sprintf(dl, 2, 2, 22) + `],"next_cursor":""}`,
			want: "ID    DEAD AT               ENDPOINT  REASON   STATE  EVENT  TYPE           ATTEMPTS\n" +
				"dl_1  2025-03-02T10:00:01Z  ep_1      expired  dead   po-1   order.created  31\n" +
				"dl_2  2025-03-02T10:00:01Z  ep_1      expired  dead   po-22  order.created  31\n",
		},
		{
			name:   "empty list",
			args:   []string{"endpoints", "list"},
			answer: `{"items":[],"next_cursor":""}`,
			want:   "no endpoints\n",
		},
		{
			name:   "endpoint with its secret",
			args:   []string{"endpoints", "add", "--url", "https://x/h", "--types", "order.*"},
			answer: `{"id":"ep_1","url":"https://x/h","event_types":["order.*"],"description":"","rate_limit":0,"concurrency":0,"status":"healthy","status_reason":"","status_since":"2025-03-01T10:00:00Z","created_at":"2025-03-01T10:00:00Z","updated_at":"2025-03-01T10:00:00Z","secret":"whsec_abc"}`,
			want: "id:                       ep_1\n" +
				"url:                      https://x/h\n" +
				"event types:              order.*\n" +
				"status:                   healthy since 2025-03-01T10:00:00Z\n" +
				"rate limit:               no limit\n" +
				"concurrency:              the server's default\n" +
				"created:                  2025-03-01T10:00:00Z\n" +
				"updated:                  2025-03-01T10:00:00Z\n" +
				"secret (shown only now):  whsec_abc\n",
		},
		{
			name:   "publish",
			args:   []string{"publish", "--type", "a.b", "--id", "e1", "--data", "{}"},
			answer: `{"id":"e1","duplicate":true}`,
			want:   "event e1 was already stored: a duplicate, nothing stored again\n",
		},
		{
			name:   "event with deliveries",
			args:   []string{"events", "show", "e1"},
			answer: `{"id":"e1","type":"a.b","source":"default","time":"2025-03-01T10:00:00Z","data":{"n":1},"deliveries":[{"endpoint":"ep_1","state":"pending"},{"endpoint":"ep_2","state":"retrying","generation":0,"attempts":2,"last_status":503,"next_attempt":"2025-03-01T10:01:00Z"}]}`,
			want: "id:      e1\ntype:    a.b\nsource:  default\ntime:    2025-03-01T10:00:00Z\ndata:    {\"n\":1}\n\n" +
				"ENDPOINT  STATE     ATTEMPTS  LAST ATTEMPT  LAST STATUS  LAST ERROR  NEXT ATTEMPT          DEAD LETTER\n" +
				"ep_1      pending   0         -             -            -           -                     -\n" +
				"ep_2      retrying  2         -             503          -           2025-03-01T10:01:00Z  -\n",
		},
		{
			name:   "rm",
			args:   []string{"sources", "rm", "erp"},
			answer: ``,
			want:   "deleted source erp\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, answerJSON(200, tt.answer))
			r := runCLI(t, context.Background(), api.env(), "", tt.args...)
			if r.code != 0 {
				t.Fatalf("code %d, stderr %q", r.code, r.stderr)
			}
			if r.stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tt.want)
			}
		})
	}
}

// A list with more pages says how to go on, on stderr, leaving the table
// alone on stdout.
func TestHumanListNamesTheNextCursor(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"items":[{"id":"erp","status":"healthy","changes_url":"https://erp/c","interval":"1m0s"}],"next_cursor":"erp"}`))
	r := runCLI(t, context.Background(), api.env(), "", "sources", "list", "--limit", "1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ID ") || !strings.Contains(r.stdout, "erp  ") {
		t.Errorf("code %d, stdout %q", r.code, r.stdout)
	}
	if r.stderr != "more sources: --cursor erp (or --all)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
}

// --server and --token point the client; --api and --api-token, their old
// names, still do, and override the environment as the new ones do.
func TestServerAndTokenFlags(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"items":[]}`))
	env := map[string]string{"HOOKSTREAM_SERVER": "http://127.0.0.1:1", "HOOKSTREAM_TOKEN": "env-token"}
	for _, args := range [][]string{
		{"--server", api.URL, "--token", "flag-token"},
		{"--api", api.URL, "--api-token", "flag-token"},
	} {
		r := runCLI(t, context.Background(), env, "", append([]string{"endpoints", "list"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: code %d, stderr %q", args, r.code, r.stderr)
		}
	}
	for i, req := range api.requests() {
		if got := req.Header.Get("Authorization"); got != "Bearer flag-token" {
			t.Errorf("request %d: Authorization %q, want the flag's", i, got)
		}
	}
	r := runCLI(t, context.Background(), nil, "", "endpoints", "list", "-h")
	for _, want := range []string{"--server string", "HOOKSTREAM_SERVER", "--token string", "HOOKSTREAM_TOKEN", "--json", "deprecated: the old name of --server"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("endpoints list -h does not say %q:\n%s", want, r.stderr)
		}
	}
}

// sources add|update map the inbound flags onto the source's inbound JSON,
// and add prints the URL the provider sends its webhooks to.
func TestSourcesInbound(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, _ int, r recorded) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"forum","status":"healthy","inbound":{"format":"hmac-sha256","header":"X-Sig","id_header":"X-Id","id_from":["/post/id","/post/updated_at"]}}`)
	})
	r := runCLI(t, context.Background(), api.env(), "", "sources", "add", "--id", "forum", "--inbound", "hmac-sha256", "--secret", "s3cr3t",
		"--signature-header", "X-Sig", "--id-header", "X-Id", "--id-from", "/post/id", "--id-from", "/post/updated_at")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	if !strings.HasSuffix(r.stdout, "The provider sends its webhooks to:\n  "+api.URL+"/ingest/forum\n") {
		t.Errorf("stdout does not end with the ingest URL:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "inbound:  hmac-sha256, signature in X-Sig, id in X-Id, id from /post/id : /post/updated_at") {
		t.Errorf("stdout does not show the inbound settings:\n%s", r.stdout)
	}
	r = runCLI(t, context.Background(), api.env(), "", "sources", "update", "forum", "--inbound", "github", "--secret", "new")
	if r.code != 0 {
		t.Fatalf("update: code %d, stderr %q", r.code, r.stderr)
	}
	reqs := api.requests()
	if !jsonEqual(t, reqs[0].Body, `{"id":"forum","inbound":{"format":"hmac-sha256","secret":"s3cr3t","header":"X-Sig","id_header":"X-Id","id_from":["/post/id","/post/updated_at"]}}`) {
		t.Errorf("add sent %s", reqs[0].Body)
	}
	if reqs[1].Method != "PATCH" || !jsonEqual(t, reqs[1].Body, `{"inbound":{"format":"github","secret":"new"}}`) {
		t.Errorf("update sent %s %s", reqs[1].Method, reqs[1].Body)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sources", "add", "--id", "x", "--inbound", "gitlab"}, `--inbound: must be standard, discourse, github, hmac-sha256, got "gitlab"`},
		{[]string{"sources", "add", "--id", "x", "--secret", "s"}, "--inbound: required with --secret"},
		{[]string{"sources", "add", "--id", "x", "--inbound", "github", "--id-from", "post.id"}, `--id-from #1: a JSON pointer starts with '/', got "post.id"`},
	} {
		r := runCLI(t, context.Background(), api.env(), "", tc.args...)
		wantOneErrorLine(t, r, 2, tc.want)
		if strings.Contains(r.stderr, "s3cr3t") {
			t.Errorf("the error shows the secret: %s", r.stderr)
		}
	}
	if n := len(api.requests()); n != 2 {
		t.Errorf("usage errors sent %d requests", n-2)
	}
}

// On a terminal, bulk replay and purge draw a bar redrawn in place; off
// one, they print plain lines (TestDLQReplayBulk).
func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, n int, r recorded) {
		switch {
		case r.Method == "POST":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job":"j1","matched":4}`)
		case n == 1:
			fmt.Fprint(w, `{"job":"j1","state":"running","matched":4,"replayed":1}`)
		default:
			fmt.Fprint(w, `{"job":"j1","state":"done","matched":4,"replayed":4}`)
		}
	})
	var out, errb syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: mapEnv(api.env()), now: func() time.Time { return testNow },
		isTTY: func(io.Writer) bool { return true }}
	if code := c.run(context.Background(), []string{"dlq", "replay", "--endpoint", "ep_1", "--poll", "1ms"}); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb.String())
	}
	want := "replay job j1: 4 records matched\n" +
		"\r\x1b[K[#######-----------------------]  25% replayed 1/4" +
		"\r\x1b[K[##############################] 100% replayed 4/4\n"
	if out.String() != want {
		t.Errorf("stdout = %q\nwant     %q", out.String(), want)
	}
}

// publish --batch sends the file's events in batches, refusing a bad line
// before anything is sent.
func TestPublishBatch(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(202, `{"results":[{"id":"a","duplicate":false},{"id":"b","duplicate":true}]}`))
	lines := `{"id":"a","type":"order.created","data":{"n":1}}` + "\n\n" + `{"id":"b","type":"order.created","data":{}}` + "\n"
	r := runCLI(t, context.Background(), api.env(), lines, "publish", "--batch", "-", "--atomic")
	if r.code != 0 || r.stdout != "stored 2 events (1 of them duplicates, stored before)\n" {
		t.Errorf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	reqs := api.requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/events/batch" ||
		!jsonEqual(t, reqs[0].Body, `{"events":[{"id":"a","type":"order.created","data":{"n":1}},{"id":"b","type":"order.created","data":{}}],"atomic":true}`) {
		t.Errorf("sent %+v", reqs)
	}
	r = runCLI(t, context.Background(), api.env(), `{"type":"a.b","data":{},"tpye":"x"}`, "publish", "--batch", "-")
	wantOneErrorLine(t, r, 2, `--batch line 1: not a JSON event`)
	r = runCLI(t, context.Background(), api.env(), "", "publish", "--batch", "-", "--type", "a.b")
	wantOneErrorLine(t, r, 2, "publish: --type and --batch do not go together")
	if n := len(api.requests()); n != 1 {
		t.Errorf("refused batches sent %d requests", n-1)
	}
}

func TestSourcesRotateSecret(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"id":"forum","status":"healthy","inbound":{"format":"discourse","secret":"new-secret","previous_secrets_expire_at":"2025-03-05T05:06:07Z"}}`))
	r := runCLI(t, context.Background(), api.env(), "", "sources", "rotate-secret", "forum", "--secret", "new-secret")
	if r.code != 0 || !strings.Contains(r.stdout, "inbound secret (shown only now):") || !strings.Contains(r.stdout, "previous secret verifies until:   2025-03-05T05:06:07Z") {
		t.Errorf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if reqs := api.requests(); reqs[0].Method != "POST" || reqs[0].Path != "/v1/sources/forum/rotate-secret" || !jsonEqual(t, reqs[0].Body, `{"secret":"new-secret"}`) {
		t.Errorf("sent %+v", reqs[0])
	}
}
