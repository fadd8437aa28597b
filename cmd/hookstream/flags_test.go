package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"api-token":       "HOOKSTREAM_API_TOKEN",
		"nats-url":        "HOOKSTREAM_NATS_URL",
		"expected-window": "HOOKSTREAM_EXPECTED_WINDOW",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// testFlags is a flag set with one flag of each kind the CLI uses.
type testFlags struct {
	fs      *flag.FlagSet
	out     *bytes.Buffer
	token   *string
	limit   *int
	all     *bool
	poll    *time.Duration
	secrets *listFlag
}

// newTestFlags is a server role's flag set: every flag has its twin.
func newTestFlags() *testFlags {
	out := &bytes.Buffer{}
	fs := newServerFlagSet("things list", out)
	tf := &testFlags{fs: fs, out: out, secrets: &listFlag{}}
	tf.token = fs.String("api-token", "", "token")
	tf.limit = fs.Int("limit", 0, "limit")
	tf.all = fs.Bool("all", false, "all")
	tf.poll = fs.Duration("poll", time.Second, "poll")
	fs.Var(tf.secrets, "secret", "secrets")
	return tf
}

func TestParseFlagsEnvTwins(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		token   string
		limit   int
		all     bool
		poll    time.Duration
		secrets []string
		pos     []string
	}{
		{
			name: "defaults", poll: time.Second, pos: []string{},
		},
		{
			name:  "set by env",
			env:   map[string]string{"HOOKSTREAM_API_TOKEN": "from-env", "HOOKSTREAM_LIMIT": "7", "HOOKSTREAM_ALL": "true", "HOOKSTREAM_POLL": "250ms", "HOOKSTREAM_SECRET": "a,b"},
			token: "from-env", limit: 7, all: true, poll: 250 * time.Millisecond, secrets: []string{"a", "b"}, pos: []string{},
		},
		{
			name:  "flag overrides env",
			args:  []string{"--api-token", "from-flag", "--limit=3", "--secret", "c"},
			env:   map[string]string{"HOOKSTREAM_API_TOKEN": "from-env", "HOOKSTREAM_LIMIT": "7", "HOOKSTREAM_SECRET": "a,b"},
			token: "from-flag", limit: 3, poll: time.Second, secrets: []string{"c"}, pos: []string{},
		},
		{
			name: "empty env value is unset",
			env:  map[string]string{"HOOKSTREAM_LIMIT": "", "HOOKSTREAM_API_TOKEN": ""},
			poll: time.Second, pos: []string{},
		},
		{
			name:  "flags after and between positionals",
			args:  []string{"ep_1", "--limit", "4", "ep_2", "--all"},
			limit: 4, all: true, poll: time.Second, pos: []string{"ep_1", "ep_2"},
		},
		{
			name:  "double dash ends flags",
			args:  []string{"--limit", "2", "--", "--not-a-flag", "x"},
			limit: 2, poll: time.Second, pos: []string{"--not-a-flag", "x"},
		},
		{
			name:    "repeatable and comma-separated",
			args:    []string{"--secret", "a,b", "--secret", " c "},
			poll:    time.Second,
			secrets: []string{"a", "b", "c"},
			pos:     []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tf := newTestFlags()
			if err := parseServerFlags(tf.fs, tt.args, mapEnv(tt.env)); err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if *tf.token != tt.token || *tf.limit != tt.limit || *tf.all != tt.all || *tf.poll != tt.poll {
				t.Errorf("token %q limit %d all %v poll %s; want %q %d %v %s",
					*tf.token, *tf.limit, *tf.all, *tf.poll, tt.token, tt.limit, tt.all, tt.poll)
			}
			if got := []string(*tf.secrets); !reflect.DeepEqual(got, tt.secrets) && (len(got) != 0 || len(tt.secrets) != 0) {
				t.Errorf("secrets = %q, want %q", got, tt.secrets)
			}
			if got := tf.fs.Args(); !reflect.DeepEqual(got, tt.pos) {
				t.Errorf("positional = %q, want %q", got, tt.pos)
			}
			if tf.out.Len() != 0 {
				t.Errorf("parseFlags printed %q", tf.out.String())
			}
		})
	}
}

func TestParseFlagsEnvCountsAsGiven(t *testing.T) {
	t.Parallel()
	tf := newTestFlags()
	if err := parseServerFlags(tf.fs, nil, mapEnv(map[string]string{"HOOKSTREAM_LIMIT": "5"})); err != nil {
		t.Fatal(err)
	}
	if !given(tf.fs, "limit") {
		t.Error("a flag set by its environment twin is not reported as given")
	}
	if given(tf.fs, "all") {
		t.Error("a flag set by neither is reported as given")
	}
}

func TestParseFlagsErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // substring of the error
		notWant string
	}{
		{name: "bad env int", env: map[string]string{"HOOKSTREAM_LIMIT": "lots"}, want: "HOOKSTREAM_LIMIT: invalid value for --limit"},
		{name: "bad env duration", env: map[string]string{"HOOKSTREAM_POLL": "soon"}, want: "HOOKSTREAM_POLL: invalid value for --poll"},
		{name: "bad env bool", env: map[string]string{"HOOKSTREAM_ALL": "sure"}, want: "HOOKSTREAM_ALL"},
		{name: "bad env value not echoed", env: map[string]string{"HOOKSTREAM_LIMIT": "s3cr3t"}, want: "HOOKSTREAM_LIMIT", notWant: "s3cr3t"},
		{name: "bad flag value", args: []string{"--limit", "x"}, want: `things list: --limit: "x" is not valid: must be a whole number; for example: hookstream things list --limit 50`},
		{name: "bad duration", args: []string{"--poll", "5"}, want: `things list: --poll: "5" is not valid: must be a duration such as 500ms, 30s or 2h; for example: hookstream things list --poll 2s`},
		{name: "unknown flag", args: []string{"--nope"}, want: "things list: unknown flag --nope (see 'hookstream things list -h')"},
		{name: "misspelt flag", args: []string{"--limt", "3"}, want: "unknown flag --limt; did you mean --limit?"},
		{name: "missing value", args: []string{"--limit"}, want: "things list: --limit needs a value, for example: hookstream things list --limit 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tf := newTestFlags()
			err := parseServerFlags(tf.fs, tt.args, mapEnv(tt.env))
			if err == nil {
				t.Fatal("parseFlags succeeded, want an error")
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("error %v is not a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q shows %q", err, tt.notWant)
			}
			if tf.out.Len() != 0 {
				t.Errorf("parseFlags printed %q; the CLI prints one error line itself", tf.out.String())
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	t.Parallel()
	tf := newTestFlags()
	err := parseServerFlags(tf.fs, []string{"-h"}, nil)
	if !errors.Is(err, errHelp) {
		t.Fatalf("parseFlags(-h) = %v, want errHelp", err)
	}
	for _, want := range []string{"usage: hookstream things list", "--api-token string", "HOOKSTREAM_API_TOKEN", "HOOKSTREAM_POLL, default 1s"} {
		if !strings.Contains(tf.out.String(), want) {
			t.Errorf("usage does not contain %q:\n%s", want, tf.out.String())
		}
	}
}

func TestRunEnvTwins(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"items":[]}`))
	ctx := context.Background()

	// HOOKSTREAM_SERVER and HOOKSTREAM_TOKEN point the client.
	r := runCLI(t, ctx, api.env(), "", "endpoints", "list")
	if r.code != 0 {
		t.Fatalf("endpoints list: code %d, stderr %q", r.code, r.stderr)
	}
	// The flag overrides the environment.
	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": "http://127.0.0.1:1", "HOOKSTREAM_TOKEN": "env-token"}, "",
		"endpoints", "list", "--api", api.URL, "--api-token", "flag-token")
	if r.code != 0 {
		t.Fatalf("endpoints list --api: code %d, stderr %q", r.code, r.stderr)
	}
	// A bad value in the environment: one line naming the variable.
	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": "ftp://x"}, "", "endpoints", "list")
	wantOneErrorLine(t, r, 2, "--server: scheme must be http or https")
	// The server's names point nowhere: HOOKSTREAM_API_TOKEN is the
	// server's --api-token, and HOOKSTREAM_LIMIT no client reads.
	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": api.URL, "HOOKSTREAM_API_TOKEN": "server-token", "HOOKSTREAM_LIMIT": "many", "HOOKSTREAM_API": "http://127.0.0.1:1"}, "", "endpoints", "list")
	if r.code != 0 {
		t.Fatalf("endpoints list with server variables set: code %d, stderr %q", r.code, r.stderr)
	}
	reqs := api.requests()
	if len(reqs) != 3 {
		t.Fatalf("API got %d requests, want 3", len(reqs))
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer tok-123" {
		t.Errorf("Authorization from env = %q", got)
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer flag-token" {
		t.Errorf("Authorization from flag = %q", got)
	}
	if got := reqs[2].Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization from HOOKSTREAM_API_TOKEN = %q, want none", got)
	}
	if got := reqs[2].Query.Get("limit"); got != "" {
		t.Errorf("limit from HOOKSTREAM_LIMIT = %q, want none", got)
	}
}
