package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/hookstream/hookstream/streams/streamstest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	streamstest.VerifyTestMain(m)
}

// testNow is the clock of every CLI test.
var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// result is what one CLI run left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line with env as the whole environment and stdin
// as standard input.
func runCLI(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	c := &cli{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		env: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		now: func() time.Time { return testNow },
	}
	code := c.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorded is one request the fake API received.
type recorded struct {
	Method string
	Path   string // escaped, as sent
	Query  url.Values
	Body   string
	Header http.Header
	ctx    context.Context // the request's, done when the client hangs up
}

// fakeAPI stands in for the hookstream API: it records every request and
// answers with answer(n, request), n counting from 0.
type fakeAPI struct {
	URL string
	mu  sync.Mutex
	got []recorded
}

// answerFunc writes the fake API's answer to the n-th request.
type answerFunc func(w http.ResponseWriter, n int, r recorded)

func newFakeAPI(t *testing.T, answer answerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Body: string(body), Header: r.Header.Clone(), ctx: r.Context()}
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, rec)
		f.mu.Unlock()
		answer(w, n, rec)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.got...)
}

// env is the environment pointing the CLI at the fake API with a token.
func (f *fakeAPI) env() map[string]string {
	return map[string]string{"HOOKSTREAM_SERVER": f.URL, "HOOKSTREAM_TOKEN": "tok-123"}
}

// answerJSON answers every request with code and body.
func answerJSON(code int, body string) answerFunc {
	return func(w http.ResponseWriter, _ int, _ recorded) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("not JSON: %v\n%s", err, got)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

// wantOneErrorLine checks the CLI's error convention: exit code, nothing on
// stdout, exactly one "hookstream: …" line on stderr containing want.
func wantOneErrorLine(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "hookstream: ") || !strings.Contains(last, want) {
		t.Errorf("error line = %q, want one starting with \"hookstream: \" containing %q", last, want)
	}
	if !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr %q does not end with a newline", r.stderr)
	}
}

func TestRunHelpAndUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	tests := []struct {
		name       string
		args       []string
		code       int
		stdoutHas  string
		stderrHas  string
		errorLine  string // the last stderr line, for usage errors
		stdoutNone bool
	}{
		{name: "help", args: []string{"help"}, code: 0, stdoutHas: "usage: hookstream <command>"},
		{name: "-h", args: []string{"-h"}, code: 0, stdoutHas: "endpoints"},
		{name: "--help", args: []string{"--help"}, code: 0, stdoutHas: "sink"},
		{name: "help group", args: []string{"help", "dlq"}, code: 0, stdoutHas: "tail"},
		{name: "group -h", args: []string{"endpoints", "-h"}, code: 0, stdoutHas: "rotate-secret"},
		{name: "leaf -h", args: []string{"publish", "-h"}, code: 0, stderrHas: "HOOKSTREAM_SERVER", stdoutNone: true},
		{name: "leaf -h names the token", args: []string{"publish", "-h"}, code: 0, stderrHas: "HOOKSTREAM_TOKEN", stdoutNone: true},
		{name: "role -h", args: []string{"serve", "-h"}, code: 0, stderrHas: "HOOKSTREAM_DATA", stdoutNone: true},
		{name: "help leaf", args: []string{"help", "endpoints", "add"}, code: 0, stderrHas: "--rate-limit", stdoutNone: true},
		{name: "no command", args: nil, code: 2, stderrHas: "usage: hookstream", errorLine: "hookstream: no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderrHas: "usage: hookstream", errorLine: `hookstream: unknown command "frobnicate"`},
		{name: "group without sub-command", args: []string{"dlq"}, code: 2, stderrHas: "purge", errorLine: "hookstream: dlq: a sub-command is required"},
		{name: "unknown sub-command", args: []string{"endpoints", "nuke"}, code: 2, errorLine: `hookstream: endpoints: unknown sub-command "nuke"`},
		{name: "unknown flag", args: []string{"endpoints", "list", "--bogus"}, code: 2, errorLine: "hookstream: endpoints list: unknown flag --bogus (see 'hookstream endpoints list -h')"},
		{name: "misspelt flag", args: []string{"dlq", "tail", "--pol", "5s"}, code: 2, errorLine: "hookstream: dlq tail: unknown flag --pol; did you mean --poll? (see 'hookstream dlq tail -h')"},
		{name: "bad flag value", args: []string{"dlq", "tail", "--poll", "5"}, code: 2, errorLine: `hookstream: dlq tail: --poll: "5" is not valid: must be a duration such as 500ms, 30s or 2h; for example: hookstream dlq tail --poll 2s`},
		{name: "hidden command not listed", args: []string{"help"}, code: 0, stdoutHas: "completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, ctx, nil, "", tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdoutHas) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdoutHas, r.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderrHas) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderrHas, r.stderr)
			}
			if tt.stdoutNone && r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if tt.errorLine != "" {
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				if got := lines[len(lines)-1]; got != tt.errorLine {
					t.Errorf("last stderr line = %q, want %q", got, tt.errorLine)
				}
			}
			if tt.code == 0 && strings.Contains(r.stderr, "hookstream: ") {
				t.Errorf("help printed an error line: %q", r.stderr)
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	t.Parallel()
	r := runCLI(t, context.Background(), nil, "", "version")
	if r.code != 0 || r.stdout != "hookstream "+version+"\n" {
		t.Fatalf("version: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, context.Background(), nil, "", "version", "extra")
	wantOneErrorLine(t, r, 2, "takes no arguments")
}

func TestRunAPIErrorIsOneLine(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		answer answerFunc
		want   string
	}{
		{
			name:   "json error",
			answer: answerJSON(http.StatusNotFound, `{"error":"endpoint ep_x not found"}`+"\n"),
			want:   "hookstream: 404: endpoint ep_x not found",
		},
		{
			name:   "multi-line error text",
			answer: answerJSON(http.StatusBadRequest, `{"error":"url: must be http or https\nnot ftp"}`),
			want:   "hookstream: 400: url: must be http or https not ftp",
		},
		{
			name:   "unauthorized gets a hint",
			answer: answerJSON(http.StatusUnauthorized, `{"error":"authorization: a valid bearer token is required"}`),
			want:   "hookstream: 401: authorization: a valid bearer token is required (give --token or set HOOKSTREAM_TOKEN)",
		},
		{
			name: "not json",
			answer: func(w http.ResponseWriter, _ int, _ recorded) {
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html>\n<body>bad gateway</body>\n</html>\n")
			},
			want: "hookstream: 502: <html> <body>bad gateway</body> </html>",
		},
		{
			name: "empty body",
			answer: func(w http.ResponseWriter, _ int, _ recorded) {
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			want: "hookstream: 503: service unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, tt.answer)
			r := runCLI(t, context.Background(), api.env(), "", "endpoints", "show", "ep_x")
			if r.code != 1 {
				t.Errorf("exit code = %d, want 1", r.code)
			}
			if r.stderr != tt.want+"\n" {
				t.Errorf("stderr = %q, want exactly %q", r.stderr, tt.want+"\n")
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestRunConnectionRefused(t *testing.T) {
	t.Parallel()
	// An address nothing listens on: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	r := runCLI(t, context.Background(), nil, "", "endpoints", "list", "--api", "http://"+addr)
	want := "hookstream: connection refused: is `hookstream serve` running at http://" + addr + "? (give --server or set HOOKSTREAM_SERVER)\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("code %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
}

func TestRunBadAPIFlag(t *testing.T) {
	t.Parallel()
	r := runCLI(t, context.Background(), nil, "", "endpoints", "list", "--api", "ftp://example.com")
	wantOneErrorLine(t, r, 2, "--server: scheme must be http or https")
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	api := newFakeAPI(t, func(w http.ResponseWriter, _ int, r recorded) {
		cancel() // the user pressed Ctrl-C while the request was in flight
		<-r.ctx.Done()
	})
	r := runCLI(t, ctx, api.env(), "", "endpoints", "show", "ep_1")
	wantOneErrorLine(t, r, 1, "context canceled")
}

// callCase is one client command and the one request it must send.
type callCase struct {
	name   string
	args   []string
	stdin  string
	answer answerFunc // defaults to 200 with answerBody
	method string
	path   string     // escaped
	query  url.Values // nil: none
	body   string     // JSON the request body must equal; "" for no body
	stdout string     // JSON stdout must equal; "" for answerBody as sent
	empty  bool       // stdout must be empty (an answer without a body)
}

const answerBody = `{"id":"x1","ok":true,"note":"<&>"}`

// runCallCases runs each case against its own fake API and checks the one
// request it sent (method, path, query, body, headers) and that stdout
// parses as the expected JSON.
func runCallCases(t *testing.T, cases []callCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			answer := tt.answer
			if answer == nil {
				answer = answerJSON(http.StatusOK, answerBody)
			}
			api := newFakeAPI(t, answer)
			// --json prints the API's answer as sent: the human tables are
			// tested on their own.
			r := runCLI(t, context.Background(), api.env(), tt.stdin, append(tt.args, "--json")...)
			if r.code != 0 {
				t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
			}
			reqs := api.requests()
			if len(reqs) != 1 {
				t.Fatalf("API got %d requests, want 1: %+v", len(reqs), reqs)
			}
			req := reqs[0]
			if req.Method != tt.method || req.Path != tt.path {
				t.Errorf("request = %s %s, want %s %s", req.Method, req.Path, tt.method, tt.path)
			}
			wantQuery := tt.query
			if wantQuery == nil {
				wantQuery = url.Values{}
			}
			if !reflect.DeepEqual(req.Query, wantQuery) {
				t.Errorf("query = %v, want %v", req.Query, wantQuery)
			}
			if got := req.Header.Get("Authorization"); got != "Bearer tok-123" {
				t.Errorf("Authorization = %q, want the bearer token", got)
			}
			switch {
			case tt.body == "" && req.Body != "":
				t.Errorf("body = %s, want none", req.Body)
			case tt.body != "" && !jsonEqual(t, req.Body, tt.body):
				t.Errorf("body = %s\nwant %s", req.Body, tt.body)
			}
			if tt.body != "" && req.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", req.Header.Get("Content-Type"))
			}
			if tt.empty {
				if r.stdout != "" {
					t.Errorf("stdout = %q, want nothing", r.stdout)
				}
				return
			}
			wantOut := tt.stdout
			if wantOut == "" {
				wantOut = answerBody
			}
			if !jsonEqual(t, r.stdout, wantOut) {
				t.Errorf("stdout = %s\nwant %s", r.stdout, wantOut)
			}
		})
	}
}
