package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/hookstream/hookstream/streams"
)

const natsTestPassword = "a-nats-password-long-enough"

// startServerEnv is startServer with env as the server's whole
// environment (the role reads its flags' twins from it).
func startServerEnv(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan int), stderr: &syncBuffer{}}
	var stdout syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: s.stderr, env: mapEnv(env), now: time.Now}
	go func() { s.done <- c.run(ctx, args) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listenRE.FindStringSubmatch(stdout.String()); m != nil {
			s.url = m[1]
			break
		}
		select {
		case code := <-s.done:
			t.Fatalf("%v exited with %d before listening: %s", args, code, s.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not listen: %s", args, s.stderr.String())
		}
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// The embedded NATS is never exposed beyond loopback without credentials,
// --api-token or not: one line on stderr naming the flags, exit 1, and
// nothing started.
func TestServeRefusesUnprotectedNATSListen(t *testing.T) {
	t.Parallel()
	// Bounded, so that a serve that does start (as it did) ends and fails
	// the test instead of running for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, ctx, nil, "", "serve", "--data", dir, "--http", "127.0.0.1:0", "--nats-listen", listen, "--api-token", "an-api-token")
		wantOneErrorLine(t, r, 1, "exposing the embedded NATS on "+listen+" requires --nats-user and --nats-password, --nats-token or --nats-nkey")
		if lines := strings.Count(r.stderr, "\n"); lines != 1 {
			t.Errorf("--nats-listen %s: %d stderr lines, want 1: %q", listen, lines, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("--nats-listen %s: stdout %q, want nothing", listen, r.stdout)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--nats-listen %s: the data dir was made before the refusal (%v)", listen, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-listen", "0.0.0.0:0", "--nats-user", "hs", "--nats-password", "short"}, "nats-password: 5 characters"},
		{[]string{"--nats-listen", "0.0.0.0:0", "--nats-user", "hs"}, "give both"},
		{[]string{"--nats-listen", "0.0.0.0:0", "--nats-creds", "x.creds"}, "nats-creds: only with --nats-url"},
		{[]string{"--nats-user", "hs", "--nats-password", natsTestPassword}, "nats-listen: the --nats-user"},
		{[]string{"--nats-url", "nats://127.0.0.1:1", "--nats-listen", "127.0.0.1:0"}, "which --nats-url replaces"},
	} {
		r := runCLI(t, ctx, nil, "", append([]string{"serve", "--data", t.TempDir(), "--http", "127.0.0.1:0"}, tc.args...)...)
		wantOneErrorLine(t, r, 1, tc.want)
		if strings.Contains(r.stderr, natsTestPassword) {
			t.Errorf("%v: stderr shows the password", tc.args)
		}
	}
}

// natsURLInLog finds the embedded NATS listener in serve's log.
var natsURLInLog = regexp.MustCompile(`msg="embedded nats listening".* url=(\S+) auth=(\S+)`)

// With --nats-user and the password from HOOKSTREAM_NATS_PASSWORD, serve
// exposes the embedded NATS on every interface: a plain client without the
// credentials is refused (it read every secret before), one with them
// reaches JetStream, and the password is logged nowhere.
func TestServeNATSListenWithPassword(t *testing.T) {
	t.Parallel()
	srv := startServerEnv(t, map[string]string{"HOOKSTREAM_NATS_PASSWORD": natsTestPassword},
		"serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--nats-listen", "0.0.0.0:0", "--nats-user", "hookstream")
	m := natsURLInLog.FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("serve logged no embedded nats listener: %s", srv.stderr.String())
	}
	if m[2] != "user" {
		t.Errorf("logged auth=%s, want user", m[2])
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	addr := "nats://" + net.JoinHostPort("127.0.0.1", u.Port())

	if nc, err := nats.Connect(addr, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}
	nc, err := nats.Connect(addr, nats.MaxReconnects(0), nats.UserInfo("hookstream", natsTestPassword))
	if err != nil {
		t.Fatalf("a client with the credentials: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, streams.BucketEndpoints); err != nil {
		t.Errorf("the endpoints bucket through the authenticated connection: %v", err)
	}
	if strings.Contains(srv.stderr.String(), natsTestPassword) {
		t.Error("the NATS password appears in serve's log")
	}
}

// The scale-out roles connect to a NATS that requires credentials with
// --nats-user/--nats-password or --nats-nkey, and exit with one clear line
// without them.
func TestRolesConnectToNATSWithCredentials(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "role.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := streams.StartServer(streams.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1",
		Auth: streams.ServerAuth{User: "hookstream", Password: natsTestPassword, NKeys: []string{pub}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ns.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	natsURL := ns.ClientURL()

	r := runCLI(t, context.Background(), nil, "", "api", "--nats-url", natsURL, "--http", "127.0.0.1:0")
	wantOneErrorLine(t, r, 1, "nats-url: connect to "+natsURL+": nats: Authorization Violation")

	// Credentials in the URL are hidden in the error.
	withPW := strings.Replace(natsURL, "nats://", "nats://hookstream:wrong-"+natsTestPassword+"@", 1)
	r = runCLI(t, context.Background(), nil, "", "api", "--nats-url", withPW, "--http", "127.0.0.1:0")
	wantOneErrorLine(t, r, 1, "Authorization Violation")
	if strings.Contains(r.stderr, natsTestPassword) {
		t.Errorf("the error shows the URL's password: %s", r.stderr)
	}

	api := startServerEnv(t, map[string]string{"HOOKSTREAM_NATS_PASSWORD": natsTestPassword},
		"api", "--nats-url", natsURL, "--nats-user", "hookstream", "--http", "127.0.0.1:0", "--log-level", "warn")
	var out struct {
		Items []any `json:"items"`
	}
	api.cliJSON(t, &out, "endpoints", "list")

	startServerEnv(t, nil, "dispatcher", "--nats-url", natsURL, "--nats-nkey", seedFile, "--http", "127.0.0.1:0", "--log-level", "warn")
}
