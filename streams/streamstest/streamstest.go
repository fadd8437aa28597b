// Package streamstest starts an embedded NATS JetStream server for a test,
// with hookstream's streams and buckets ensured, and cleans it all up when
// the test ends. Users of hookstream can use it in their own tests too.
package streamstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Env is a running test server with one client connection.
type Env struct {
	Server *streams.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
	// Config is the streams configuration that was ensured.
	Config streams.Config
	// Dir is the JetStream store dir (a test temp dir).
	Dir string
	// URL is the client URL on loopback (a random port).
	URL string
}

// Option changes how Start sets up the server.
type Option func(*options)

type options struct {
	cfg    streams.Config
	ensure bool
	dir    string
}

// WithConfig sets the streams configuration to ensure.
func WithConfig(c streams.Config) Option { return func(o *options) { o.cfg = c } }

// WithoutEnsure leaves the server empty.
func WithoutEnsure() Option { return func(o *options) { o.ensure = false } }

// WithDir reuses a store dir, to restart a server on the same data.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// Start starts a server on a random loopback port with a temp store dir,
// connects to it and ensures the streams. Everything is shut down when the
// test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := options{ensure: true}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	srv, err := streams.StartServer(streams.ServerConfig{StoreDir: o.dir, Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	env := &Env{Server: srv, Dir: o.dir, URL: srv.ClientURL(), Config: o.cfg.WithDefaults()}
	env.NC, err = srv.Connect("streamstest")
	if err != nil {
		_ = srv.Shutdown(context.Background())
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(func() { env.Stop(t) })
	env.JS, err = jetstream.New(env.NC)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if o.ensure {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := streams.Ensure(ctx, env.JS, env.Config); err != nil {
			t.Fatalf("ensure streams: %v", err)
		}
	}
	return env
}

// Stop drains the connection and shuts the server down; it is idempotent and
// runs by itself at the end of the test. Call it to restart a server on the
// same Dir mid-test.
func (e *Env) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Drain(ctx, e.NC); err != nil {
		t.Errorf("drain: %v", err)
	}
	if err := e.Server.Shutdown(ctx); err != nil {
		t.Errorf("shutdown nats: %v", err)
	}
}

// Connect opens another in-process connection, closed when the test ends.
func (e *Env) Connect(t testing.TB, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := e.Server.Connect(name)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = streams.Drain(ctx, nc)
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// WaitFor polls cond every few milliseconds until it is true or the deadline
// passes, then fails the test with msg. It is the one way tests wait.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		<-tick.C
	}
}
