package hookstreamtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/dlq"
	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/poller"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

// Defaults of Options.
const (
	// RetryMaxAgeDefault is how long a failing delivery is retried before it
	// is dead-lettered: seconds, not the server's 24 hours.
	RetryMaxAgeDefault = 3 * time.Second
	// RetryInitialDefault is the first retry delay (doubling, capped at
	// RetryMaxIntervalDefault).
	RetryInitialDefault = 50 * time.Millisecond
	// RetryMaxIntervalDefault caps the retry delay and the probes of a
	// failing endpoint.
	RetryMaxIntervalDefault = 500 * time.Millisecond
	// WaitDefault bounds Receiver.Wait and the other waits.
	WaitDefault = 10 * time.Second
	// startTimeout bounds starting the pipeline; stopTimeout stopping it.
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// Options change the pipeline New and Start build.
type Options struct {
	// Token, when set, is the API's bearer token; Client sends it. Defaults
	// to none.
	Token string
	// RetryMaxAge is how long a failing delivery is retried before it is
	// dead-lettered (expired). Defaults to RetryMaxAgeDefault (3s).
	RetryMaxAge time.Duration
	// FailingAfter is the consecutive failures that make an endpoint
	// failing. Defaults to the dispatcher's (5).
	FailingAfter int
	// Logger receives the components' logs. Defaults to warnings and errors
	// on the test's log (New), or none (Start).
	Logger *slog.Logger
}

// Option changes Options.
type Option func(*Options)

// WithToken makes the API require token.
func WithToken(token string) Option { return func(o *Options) { o.Token = token } }

// WithRetryMaxAge sets how long failing deliveries are retried.
func WithRetryMaxAge(d time.Duration) Option { return func(o *Options) { o.RetryMaxAge = d } }

// WithFailingAfter sets the failures that make an endpoint failing.
func WithFailingAfter(n int) Option { return func(o *Options) { o.FailingAfter = n } }

// WithLogger sends the components' logs to l.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// Pipeline is a running hookstream.
type Pipeline struct {
	// URL is the API's base URL (http://127.0.0.1:port).
	URL string
	// Client is a client of the API, with the token when there is one.
	Client *client.Client
	// Producer publishes straight to JetStream, as a Go service would.
	Producer *producer.Producer
	// Receiver records the webhooks sent to the endpoints Subscribe made.
	Receiver *Receiver
	// NATSURL is the embedded NATS server's loopback URL, for a client of
	// your own (a follower of dlq.>).
	NATSURL string
	// NC and JS are the pipeline's own connection, to look into the
	// streams.
	NC *nats.Conn
	JS jetstream.JetStream

	opts      Options
	dir       string
	removeDir bool
	server    *streams.Server
	stops     []func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// New starts a pipeline for t and stops it when t ends; it fails t if the
// pipeline cannot start or stop cleanly.
func New(t testing.TB, opts ...Option) *Pipeline {
	t.Helper()
	o := Options{Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, opt := range opts {
		opt(&o)
	}
	p, err := start(o, t.TempDir(), false)
	if err != nil {
		t.Fatalf("hookstreamtest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("hookstreamtest: %v", err)
		}
	})
	return p
}

// Start starts a pipeline outside a test; Close stops it.
func Start(opts ...Option) (*Pipeline, error) {
	o := Options{Logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := os.MkdirTemp("", "hookstreamtest-")
	if err != nil {
		return nil, fmt.Errorf("store dir: %w", err)
	}
	p, err := start(o, dir, true)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func start(o Options, dir string, removeDir bool) (_ *Pipeline, err error) {
	if o.RetryMaxAge == 0 {
		o.RetryMaxAge = RetryMaxAgeDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{opts: o, dir: dir, removeDir: removeDir}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	if p.server, err = streams.StartServer(streams.ServerConfig{StoreDir: dir, Listen: "127.0.0.1:-1"}); err != nil {
		return nil, err
	}
	p.NATSURL = p.server.ClientURL()
	if p.NC, err = p.server.Connect("hookstreamtest"); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if p.JS, err = jetstream.New(p.NC); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	scfg := streams.Config{RetryMaxAge: o.RetryMaxAge}
	if err := streams.Ensure(ctx, p.JS, scfg); err != nil {
		return nil, err
	}
	log := o.Logger

	if p.Producer, err = producer.New(producer.Config{JS: p.JS, Logger: log}); err != nil {
		return nil, err
	}
	p.stops = append(p.stops, p.Producer.Stop)
	eps, err := endpoints.New(ctx, endpoints.Config{JS: p.JS, AllowPrivate: true, Logger: log})
	if err != nil {
		return nil, err
	}
	dl, err := dlq.New(ctx, dlq.Config{JS: p.JS, PollInterval: 10 * time.Millisecond, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := dl.Start(ctx); err != nil {
		return nil, err
	}
	p.stops = append([]func(context.Context) error{dl.Stop}, p.stops...)
	pl, err := poller.New(ctx, poller.Config{JS: p.JS, AllowPrivate: true, Tick: 10 * time.Millisecond, MinInterval: time.Millisecond,
		MaxBackoff: time.Second, RequestTimeout: 5 * time.Second, LeaseTTL: 2 * time.Second, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := pl.Start(ctx); err != nil {
		return nil, err
	}
	p.stops = append([]func(context.Context) error{pl.Stop}, p.stops...)
	d, err := dispatcher.New(dispatcher.Config{
		JS: p.JS, DeliveryTimeout: 2 * time.Second, AckWait: 5 * time.Second,
		RetryInitial: RetryInitialDefault, RetryMaxInterval: RetryMaxIntervalDefault, RetryMaxAge: o.RetryMaxAge,
		RetryMinDelay: 10 * time.Millisecond, FailingAfter: o.FailingAfter, PullWait: 500 * time.Millisecond,
		MemberTTL: 5 * time.Second, Alone: true, AllowPrivate: true, UserAgent: "hookstream/test", Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	// The dispatcher stops first: no delivery starts while the rest stops.
	p.stops = append([]func(context.Context) error{d.Stop}, p.stops...)

	var routes []httpjson.Route
	routes = append(routes, p.Producer.Routes()...)
	routes = append(routes, eps.Routes()...)
	routes = append(routes, dl.Routes()...)
	routes = append(routes, pl.Routes()...)
	srv, err := api.New(api.Config{
		Addr: "127.0.0.1:0", Token: o.Token, Routes: routes, Public: pl.PublicRoutes(),
		Gatherer: prometheus.NewRegistry(), Logger: log,
		Ready: func() error {
			if err := d.Ready(); err != nil {
				return err
			}
			return pl.Ready()
		},
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	p.stops = append([]func(context.Context) error{srv.Stop}, p.stops...)
	p.URL = "http://" + srv.Addr()
	if p.Client, err = client.New(p.URL, client.WithToken(o.Token), client.WithUserAgent("hookstreamtest")); err != nil {
		return nil, err
	}
	p.Receiver = newReceiver()
	return p, nil
}

// Close stops the pipeline: the API, the dispatcher (deliveries in flight
// finish), the poller, the dead-letter service, the producer, then NATS and
// the Receiver. It is idempotent.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		var errs []error
		for _, stop := range p.stops {
			if err := stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop: %w", err))
			}
		}
		if p.Receiver != nil {
			p.Receiver.close()
		}
		if p.NC != nil {
			if err := streams.Drain(ctx, p.NC); err != nil {
				errs = append(errs, err)
			}
		}
		if p.server != nil {
			if err := p.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("nats: %w", err))
			}
		}
		if p.removeDir {
			if err := os.RemoveAll(p.dir); err != nil {
				errs = append(errs, err)
			}
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Publish publishes ev with the Go producer, failing t when it is not
// stored.
func (p *Pipeline) Publish(t testing.TB, ev producer.Event) producer.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitDefault)
	defer cancel()
	res, err := p.Producer.Publish(ctx, ev)
	if err != nil {
		t.Fatalf("hookstreamtest: publish %s: %v", ev.Type, err)
	}
	return res
}

// Subscribe creates an endpoint for the event type filters ("order.*",
// "invoice.paid", "*") that delivers to the Receiver, which verifies each
// request with the endpoint's secret; it fails t when the API refuses.
func (p *Pipeline) Subscribe(t testing.TB, types ...string) *client.Endpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitDefault)
	defer cancel()
	ep, err := p.SubscribeContext(ctx, types...)
	if err != nil {
		t.Fatalf("hookstreamtest: subscribe %v: %v", types, err)
	}
	return ep
}

// SubscribeContext is Subscribe returning its error, for use outside a
// test.
func (p *Pipeline) SubscribeContext(ctx context.Context, types ...string) (*client.Endpoint, error) {
	url, secret, err := p.Receiver.newTarget()
	if err != nil {
		return nil, err
	}
	ep, err := p.Client.CreateEndpoint(ctx, client.EndpointCreate{URL: url, EventTypes: types, Secret: secret})
	if err != nil {
		return nil, err
	}
	p.Receiver.bind(url, ep.ID)
	return ep, nil
}

// tWriter sends log lines to a test's log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

var _ io.Writer = tWriter{}
