package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/dlq"
	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/poller"
	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

// Server roles. serve runs every role in one process on an embedded NATS;
// the others run one role each against --nats-url, for scale-out.
const (
	roleServe      = "serve"
	roleAPI        = "api"
	roleDispatcher = "dispatcher"
	rolePoller     = "poller"
)

// Defaults of the server flags not owned by a package.
const (
	DataDefault            = "./data"
	ShutdownTimeoutDefault = 15 * time.Second
	// httpGrace is how long requests in flight (and idle keep-alive
	// connections) get to finish on shutdown.
	httpGrace = 2 * time.Second
	// tailTimeout bounds the NATS drain and the embedded server's shutdown.
	tailTimeout = 10 * time.Second
)

// serverFlags are the flags of the server roles; each has a HOOKSTREAM_*
// environment twin.
type serverFlags struct {
	role string

	data, httpAddr, natsURL, natsListen, apiToken, logLevel string
	logFormat                                               string
	metricsEndpointLabel                                    bool
	allowPrivate, updateStreams                             bool
	replicas, maxEventData                                  int
	dedupWindow, eventsMaxAge, dlqMaxAge                    time.Duration
	deliveryTimeout, ackWait, retryInitial                  time.Duration
	retryMaxInterval, retryMaxAge, retryMinDelay            time.Duration
	failingAfter, concurrency                               int
	secretOverlap, shutdownTimeout, pollTick                time.Duration

	httpReadTimeout, httpWriteTimeout, httpIdleTimeout time.Duration
	httpMaxConns                                       int

	nats natsFlags
}

func addServerFlags(fs *flag.FlagSet, role string) *serverFlags {
	f := &serverFlags{role: role}
	if role == roleServe {
		fs.StringVar(&f.data, "data", DataDefault, "directory of the embedded NATS server's JetStream store")
		fs.StringVar(&f.natsListen, "nats-listen", "", "also expose the embedded NATS server on this host:port (default: not exposed)")
		fs.StringVar(&f.natsURL, "nats-url", "", "use this external NATS server instead of the embedded one")
	} else {
		fs.StringVar(&f.natsURL, "nats-url", nats.DefaultURL, "NATS JetStream server or cluster to use")
	}
	addNATSFlags(fs, &f.nats, role)
	fs.StringVar(&f.httpAddr, "http", api.AddrDefault, "HTTP listen address (API, /healthz, /readyz, /metrics)")
	fs.StringVar(&f.apiToken, "api-token", "", "bearer token required on every /v1 route (required to listen beyond loopback)")
	fs.BoolVar(&f.allowPrivate, "allow-private-endpoints", false, "allow endpoints and sources on loopback, private and link-local addresses")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&f.metricsEndpointLabel, "metrics-endpoint-label", true, "label the per-endpoint metrics with the endpoint id (false for very many endpoints)")
	fs.BoolVar(&f.updateStreams, "update-streams", false, "let this role shrink stored settings (max ages, duplicate window, replicas) that other roles set larger")
	fs.IntVar(&f.replicas, "replicas", streams.ReplicasDefault, "replicas of every stream and bucket (3 on a cluster)")
	fs.IntVar(&f.maxEventData, "max-event-data", streams.MaxEventDataDefault, "largest event data accepted, in bytes")
	fs.DurationVar(&f.dedupWindow, "dedup-window", streams.DedupWindowDefault, "window in which a re-published event id is stored once")
	fs.DurationVar(&f.eventsMaxAge, "events-max-age", streams.EventsMaxAgeDefault, "how long events are kept")
	fs.DurationVar(&f.dlqMaxAge, "dlq-max-age", streams.DLQMaxAgeDefault, "how long dead letters are kept")
	fs.DurationVar(&f.retryMaxAge, "retry-max-age", dispatcher.RetryMaxAgeDefault, "give-up age of a delivery, from when it was stored")
	fs.DurationVar(&f.deliveryTimeout, "delivery-timeout", dispatcher.DeliveryTimeoutDefault, "timeout of one webhook request")
	fs.DurationVar(&f.ackWait, "ack-wait", dispatcher.AckWaitDefault, "time after which a delivery in flight in a crashed process is sent again (above --delivery-timeout)")
	fs.DurationVar(&f.retryInitial, "retry-initial", dispatcher.RetryInitialDefault, "first retry delay (doubling, ±20% jitter)")
	fs.DurationVar(&f.retryMinDelay, "retry-min-delay", dispatcher.RetryMinDelayDefault, "shortest retry delay, whatever a Retry-After says (tests scale it down)")
	fs.DurationVar(&f.retryMaxInterval, "retry-max-interval", dispatcher.RetryMaxIntervalDefault, "largest retry delay and probe spacing")
	fs.IntVar(&f.failingAfter, "failing-after", dispatcher.FailingAfterDefault, "consecutive failures that make an endpoint failing")
	fs.IntVar(&f.concurrency, "concurrency", dispatcher.ConcurrencyDefault, "deliveries in flight per endpoint that sets none (across dispatchers)")
	fs.DurationVar(&f.secretOverlap, "secret-overlap", endpoints.SecretOverlapDefault, "how long a rotated-out secret keeps signing")
	fs.DurationVar(&f.pollTick, "poll-tick", poller.TickDefault, "how often the poller looks for due sources")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", ShutdownTimeoutDefault, "how long in-flight work may take to finish on SIGTERM")
	fs.DurationVar(&f.httpReadTimeout, "http-read-timeout", api.ReadTimeoutDefault, "longest time to read one HTTP request, body included")
	fs.DurationVar(&f.httpWriteTimeout, "http-write-timeout", api.WriteTimeoutDefault, "longest time from an HTTP request's headers to the end of its answer")
	fs.DurationVar(&f.httpIdleTimeout, "http-idle-timeout", api.IdleTimeoutDefault, "close a keep-alive HTTP connection idle this long")
	fs.IntVar(&f.httpMaxConns, "http-max-conns", 0, fmt.Sprintf("most HTTP connections open at once; the longest-idle one is closed to let a new one in (0: %d, or half the open-file limit when lower)", api.MaxConnsDefault))
	return f
}

// apiConfig is the HTTP server's part of the flags.
func (f *serverFlags) apiConfig() api.Config {
	return api.Config{
		Addr: f.httpAddr, Token: f.apiToken,
		ReadTimeout: f.httpReadTimeout, WriteTimeout: f.httpWriteTimeout, IdleTimeout: f.httpIdleTimeout, MaxConns: f.httpMaxConns,
	}
}

// runRole runs a server role's command line; env is os.LookupEnv in
// production. Every server flag is read from its HOOKSTREAM_* twin when not
// given.
func runRole(ctx context.Context, role string, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newServerFlagSet(role, stderr)
	f := addServerFlags(fs, role)
	if err := parseServerFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q", role, fs.Arg(0))
	}
	tuneGC()
	return serveRole(ctx, f, stdout, stderr)
}

func (f *serverFlags) runs(roles ...string) bool {
	if f.role == roleServe {
		return true
	}
	for _, r := range roles {
		if f.role == r {
			return true
		}
	}
	return false
}

func (f *serverFlags) streamsConfig() streams.Config {
	return streams.Config{
		Replicas: f.replicas, EventsMaxAge: f.eventsMaxAge, DedupWindow: f.dedupWindow, DLQMaxAge: f.dlqMaxAge,
		RetryMaxAge: f.retryMaxAge, MaxEventData: f.maxEventData, UpdateStreams: f.updateStreams,
	}
}

func (f *serverFlags) dispatcherConfig(js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) dispatcher.Config {
	return dispatcher.Config{
		JS: js, DeliveryTimeout: f.deliveryTimeout, AckWait: f.ackWait, RetryInitial: f.retryInitial,
		RetryMaxInterval: f.retryMaxInterval, RetryMaxAge: f.retryMaxAge, RetryMinDelay: f.retryMinDelay, FailingAfter: f.failingAfter,
		Concurrency: f.concurrency, AllowPrivate: f.allowPrivate, UserAgent: "hookstream/" + version,
		// serve on an embedded NATS that listens nowhere is the only
		// dispatcher there can be.
		Alone:           f.role == roleServe && f.natsURL == "" && f.natsListen == "",
		NoEndpointLabel: !f.metricsEndpointLabel,
		Logger:          log, Metrics: reg,
	}
}

// validate checks what can be checked before anything starts, so a bad
// setting is one clear line and no half-started process.
func (f *serverFlags) validate() error {
	if err := api.CheckListen(f.httpAddr, f.apiToken); err != nil {
		return err
	}
	if err := f.apiConfig().Validate(); err != nil {
		return err
	}
	if err := f.validateNATS(); err != nil {
		return err
	}
	if err := f.streamsConfig().WithDefaults().Validate(); err != nil {
		return err
	}
	if f.maxEventData < 1 {
		return fmt.Errorf("max-event-data: must be at least 1 byte, got %d", f.maxEventData)
	}
	if f.runs(roleDispatcher) {
		if err := f.dispatcherConfig(nil, nil, nil).WithDefaults().Validate(); err != nil {
			return err
		}
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return fmt.Errorf("log-format: %q is not text or json", f.logFormat)
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return err
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log-level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// stopper is anything with the Start/Stop contract's second half.
type stopper interface{ Stop(context.Context) error }

// serveRole runs one role (or all, for serve) until ctx is cancelled, then
// shuts down in order: stop taking requests, stop taking new work, let
// in-flight work finish (bounded by --shutdown-timeout), drain NATS, stop
// the embedded server.
func serveRole(ctx context.Context, f *serverFlags, stdout, stderr io.Writer) error {
	if err := f.validate(); err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if f.logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler).With("role", f.role)

	// On the way out: the HTTP server stops taking requests while the
	// components stop taking work (dispatcher first) and finish what is in
	// flight, all within --shutdown-timeout; an HTTP client idling on a
	// keep-alive connection gets httpGrace, not the whole timeout. Then the
	// NATS connection drains and the embedded server stops, each with time
	// of its own, so a slow delivery cannot turn a SIGTERM into a kill.
	var (
		httpStop         stopper
		stops, stopsTail []stopper
	)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
		defer cancel()
		httpDone := make(chan struct{})
		go func() {
			defer close(httpDone)
			if httpStop == nil {
				return
			}
			hctx, cancel := context.WithTimeout(sctx, httpGrace)
			defer cancel()
			if err := httpStop.Stop(hctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown", "err", err)
			}
		}()
		for _, s := range stops {
			if err := s.Stop(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
		}
		<-httpDone
		for _, s := range stopsTail {
			tctx, cancel := context.WithTimeout(context.Background(), tailTimeout)
			if err := s.Stop(tctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
			cancel()
		}
	}()

	var (
		srv *streams.Server
		nc  *nats.Conn
		err error
	)
	if f.embedded() {
		dir, err := filepath.Abs(f.data)
		if err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		scfg := streams.ServerConfig{StoreDir: dir, Listen: f.natsListen}
		if f.natsListen != "" {
			if scfg.Auth, scfg.TLS, err = f.nats.serverAuth(); err != nil {
				return err
			}
		}
		srv, err = streams.StartServer(scfg)
		if err != nil {
			return err
		}
		nc, err = srv.Connect("hookstream-" + f.role)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("nats: %w", err)
		}
		if u := srv.ClientURL(); u != "" {
			log.Info("embedded nats listening", "url", u, "auth", scfg.Auth.Mode(), "tls", scfg.TLS.Enabled())
			if !scfg.Auth.Enabled() {
				log.Warn("embedded nats needs no credentials: every local user can read the endpoints' secrets and publish events; give --nats-user/--nats-password, --nats-token or --nats-nkey", "url", u)
			}
		}
	} else {
		nc, err = f.nats.dialConfig(f.natsURL, "hookstream-"+f.role).Dial()
		if err != nil {
			return err
		}
	}
	stopsTail = append(stopsTail, stopFunc(func(ctx context.Context) error { return streams.Drain(ctx, nc) }))
	if srv != nil {
		stopsTail = append(stopsTail, stopFunc(srv.Shutdown))
	}
	scfg := f.streamsConfig()
	if srv == nil {
		if err := streams.CheckMaxPayload(nc, scfg); err != nil {
			return err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = streams.Ensure(ectx, js, scfg)
	cancel()
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := buildComponents(ctx, f, js, log, reg)
	if err != nil {
		stops = append(stops, c.stops...)
		return err
	}
	routes, ready, starts, later := c.routes, c.ready, c.starts, c.stops
	acfg := f.apiConfig()
	acfg.Routes, acfg.Gatherer, acfg.Metrics, acfg.Logger, acfg.Pages = routes, reg, reg, log, c.pages
	acfg.Public = c.public
	acfg.Ready = func() error {
		if !nc.IsConnected() {
			return errors.New("nats: not connected")
		}
		for _, r := range ready {
			if err := r(); err != nil {
				return err
			}
		}
		return nil
	}
	httpSrv, err := api.New(acfg)
	if err != nil {
		return err
	}
	for _, start := range starts {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := start(sctx)
		cancel()
		if err != nil {
			stops = append(stops, later...)
			return err
		}
	}
	stops = append(stops, later...)
	if err := httpSrv.Start(ctx); err != nil {
		return err
	}
	httpStop = httpSrv
	fmt.Fprintf(stdout, "hookstream %s: listening on http://%s\n", f.role, httpSrv.Addr())
	<-ctx.Done()
	log.Info("shutting down", "timeout", f.shutdownTimeout)
	return nil
}

type stopFunc func(context.Context) error

func (s stopFunc) Stop(ctx context.Context) error { return s(ctx) }

// components are what one role runs: its routes, what must start, what
// must stop (in order) and what readiness depends on.
type components struct {
	routes []httpjson.Route
	ready  []func() error
	starts []func(context.Context) error
	stops  []stopper
	// pages is the dashboard, for the roles that serve the API.
	pages func(v1 http.Handler) http.Handler
	// public are the routes outside /v1 without the bearer token
	// (POST /ingest/{source}), for the roles that serve the API.
	public []httpjson.Route
}

// buildComponents makes the role's components on js; the routes are the
// whole /v1 table the API serves (the auth test walks it).
func buildComponents(ctx context.Context, f *serverFlags, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) (*components, error) {
	c := &components{}
	if f.runs(roleAPI) {
		prod, err := producer.New(producer.Config{JS: js, MaxEventData: f.maxEventData, Logger: log, Metrics: reg})
		if err != nil {
			return c, err
		}
		c.stops = append(c.stops, prod)
		eps, err := endpoints.New(ctx, endpoints.Config{JS: js, AllowPrivate: f.allowPrivate, SecretOverlap: f.secretOverlap, Logger: log})
		if err != nil {
			return c, err
		}
		dl, err := dlq.New(ctx, dlq.Config{JS: js, Logger: log})
		if err != nil {
			return c, err
		}
		c.starts = append(c.starts, dl.Start)
		c.stops = append(c.stops, dl)
		c.routes = append(c.routes, prod.Routes()...)
		c.routes = append(c.routes, eps.Routes()...)
		c.routes = append(c.routes, dl.Routes()...)
		c.pages = dashboardPages(f)
	}
	if f.runs(roleAPI, rolePoller) {
		p, err := poller.New(ctx, poller.Config{JS: js, AllowPrivate: f.allowPrivate, Tick: f.pollTick, Logger: log,
			MaxEventData: f.maxEventData, SecretOverlap: f.secretOverlap, Metrics: reg})
		if err != nil {
			return c, err
		}
		if f.runs(roleAPI) {
			c.routes = append(c.routes, p.Routes()...)
			c.public = append(c.public, p.PublicRoutes()...)
		}
		if f.runs(rolePoller) {
			c.starts = append(c.starts, p.Start)
			c.ready = append(c.ready, p.Ready)
			c.stops = append([]stopper{p}, c.stops...)
		}
	}
	if f.runs(roleDispatcher) {
		d, err := dispatcher.New(f.dispatcherConfig(js, log, reg))
		if err != nil {
			return c, err
		}
		c.starts = append(c.starts, d.Start)
		c.ready = append(c.ready, d.Ready)
		c.stops = append([]stopper{d}, c.stops...)
	}
	return c, nil
}
