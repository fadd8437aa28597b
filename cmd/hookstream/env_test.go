package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// serverEnv is an environment a server runs in, as an operator's shell or a
// container may export it where the CLI runs too: every server flag's twin
// set, and a few more that name client flags.
func serverEnv(api string) map[string]string {
	return map[string]string{
		"HOOKSTREAM_SERVER":      api,
		"HOOKSTREAM_API":         api, // the client's name before: read by nothing now
		"HOOKSTREAM_TOKEN":       "tok-123",
		"HOOKSTREAM_API_TOKEN":   "server-token",
		"HOOKSTREAM_DATA":        `{"store":"/var/lib/hookstream"}`,
		"HOOKSTREAM_CONCURRENCY": "50",
		"HOOKSTREAM_YES":         "1",
		"HOOKSTREAM_SECRET":      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"HOOKSTREAM_DESCRIPTION": "from the environment",
		"HOOKSTREAM_RATE_LIMIT":  "7",
		"HOOKSTREAM_TYPES":       "*",
		"HOOKSTREAM_URL":         "https://wrong.example/hook",
		"HOOKSTREAM_TYPE":        "env.type",
		"HOOKSTREAM_SOURCE":      "env-source",
		"HOOKSTREAM_ID":          "env-id",
		"HOOKSTREAM_ENDPOINT":    "ep_env",
		"HOOKSTREAM_LIMIT":       "3",
		"HOOKSTREAM_ALL":         "true",
		"HOOKSTREAM_HTTP":        "0.0.0.0:9",
		"HOOKSTREAM_NATS_URL":    "nats://127.0.0.1:1",
	}
}

// HOOKSTREAM_DATA is serve's store directory: publish does not send it as
// the event's data.
func TestPublishIgnoresServerEnvironment(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(202, `{"id":"e1","duplicate":false}`))
	env := serverEnv(api.URL)

	r := runCLI(t, context.Background(), env, "", "publish", "--type", "order.created")
	wantOneErrorLine(t, r, 2, "publish: --data is required")
	if n := len(api.requests()); n != 0 {
		t.Fatalf("publish without --data sent %d requests (data from HOOKSTREAM_DATA?)", n)
	}

	r = runCLI(t, context.Background(), env, "", "publish", "--type", "order.created", "--data", `{"n":1}`)
	if r.code != 0 {
		t.Fatalf("publish: code %d, stderr %q", r.code, r.stderr)
	}
	got := api.requests()[0]
	if !jsonEqual(t, got.Body, `{"type":"order.created","data":{"n":1}}`) {
		t.Errorf("publish sent %s; only the flags' values, none of the environment's", got.Body)
	}
	if auth := got.Header.Get("Authorization"); auth != "Bearer tok-123" {
		t.Errorf("Authorization = %q, want the HOOKSTREAM_TOKEN one", auth)
	}
}

// HOOKSTREAM_CONCURRENCY is the server's default per-endpoint concurrency:
// endpoints add does not set the new endpoint's from it.
func TestEndpointsAddIgnoresServerEnvironment(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(201, `{"id":"ep_1"}`))
	r := runCLI(t, context.Background(), serverEnv(api.URL), "", "endpoints", "add", "--url", "https://hooks.example/in", "--types", "order.*")
	if r.code != 0 {
		t.Fatalf("endpoints add: code %d, stderr %q", r.code, r.stderr)
	}
	got := api.requests()[0]
	if !jsonEqual(t, got.Body, `{"url":"https://hooks.example/in","event_types":["order.*"]}`) {
		t.Errorf("endpoints add sent %s; want only --url and --types", got.Body)
	}
}

// HOOKSTREAM_YES never confirms a purge: only --yes on the command line.
func TestPurgeConfirmationNeverFromEnvironment(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, answerJSON(200, `{"items":[{"id":"dl_1","seq":1},{"id":"dl_2","seq":2}]}`))
	r := runCLI(t, context.Background(), serverEnv(api.URL), "", "dlq", "purge", "--endpoint", "ep_1")
	wantOneErrorLine(t, r, 1, "refusing to purge 2 records without --yes")
	for _, req := range api.requests() {
		if req.Method != "GET" {
			t.Errorf("purge without --yes sent %s %s", req.Method, req.Path)
		}
	}
}

// envInUsage matches an environment name in a command's flag usage.
var envInUsage = regexp.MustCompile(`HOOKSTREAM_[A-Z0-9_]+`)

// Every command's -h names the environment variables it reads: the server
// roles one per flag, every other command only HOOKSTREAM_SERVER and
// HOOKSTREAM_TOKEN (sink: HOOKSTREAM_SINK_SECRET), none of which a server
// flag has. The usage is printed from the same table parseFlags reads, so
// this covers every flag of every command, including ones added later.
func TestClientCommandsReadOnlyTheirOwnEnvironment(t *testing.T) {
	t.Parallel()
	clientNames := map[string]bool{envServer: true, envToken: true, envSinkSecret: true}
	serverNames := map[string]bool{}
	for _, role := range []string{roleServe, roleAPI, roleDispatcher, rolePoller} {
		r := runCLI(t, context.Background(), nil, "", role, "-h")
		for _, n := range envInUsage.FindAllString(r.stderr, -1) {
			serverNames[n] = true
		}
	}
	if !serverNames["HOOKSTREAM_DATA"] || !serverNames["HOOKSTREAM_CONCURRENCY"] || !serverNames["HOOKSTREAM_NATS_URL"] {
		t.Fatalf("server roles' usage names %v; want every flag's twin", serverNames)
	}
	for n := range clientNames {
		if serverNames[n] {
			t.Errorf("%s is both a client's and a server flag's environment name", n)
		}
	}
	var walk func(path []string, cmds []*command)
	walk = func(path []string, cmds []*command) {
		for _, c := range cmds {
			p := append(append([]string(nil), path...), c.name)
			switch {
			case c.sub != nil:
				walk(p, c.sub)
			case c.run == nil || len(p) == 1 && (c.name == roleServe || c.name == roleAPI || c.name == roleDispatcher || c.name == rolePoller):
			default:
				r := runCLI(t, context.Background(), nil, "", append(p, "-h")...)
				if r.code != 0 {
					t.Errorf("%s -h: exit %d: %s", strings.Join(p, " "), r.code, r.stderr)
				}
				for _, n := range envInUsage.FindAllString(r.stderr, -1) {
					if !clientNames[n] {
						t.Errorf("hookstream %s reads %s from the environment", strings.Join(p, " "), n)
					}
				}
				if strings.Contains(r.stderr, "--api ") && !strings.Contains(r.stderr, envServer) {
					t.Errorf("hookstream %s -h does not say --api is read from %s", strings.Join(p, " "), envServer)
				}
			}
		}
	}
	walk(nil, commands())
}
