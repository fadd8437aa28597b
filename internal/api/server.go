// Package api is hookstream's HTTP server: it mounts every domain package's
// routes under one bearer-token check, and serves /healthz, /readyz and
// /metrics. It owns no domain logic.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/internal/openapi"
)

// Defaults of Config.
const (
	AddrDefault              = "127.0.0.1:8080"
	ReadHeaderTimeoutDefault = 10 * time.Second
	// ReadTimeoutDefault bounds reading a whole request, body included: an
	// event body of 1 MiB needs a client sending at least 17 KiB/s.
	ReadTimeoutDefault = time.Minute
	// WriteTimeoutDefault bounds a request from the end of its headers to
	// the end of its answer. No route streams (`dlq tail` polls), and the
	// largest answer (a page of 1000 dead letters) is a few MiB.
	WriteTimeoutDefault = 2 * time.Minute
	// IdleTimeoutDefault is how long a keep-alive connection may wait for
	// its next request before it is closed.
	IdleTimeoutDefault = time.Minute
	// MaxConnsDefault bounds the open client connections; the default is
	// lowered to half the process's open-file limit when that is smaller
	// (see Config.MaxConns).
	MaxConnsDefault = 1024
	// minConns is the least MaxConns an open-file limit lowers it to.
	minConns = 16
)

// Config configures the API server.
type Config struct {
	// Addr is the listen address. Defaults to AddrDefault (127.0.0.1:8080).
	Addr string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every /v1 route. Listening beyond loopback without one is refused.
	Token string
	// Routes are the /v1 routes, from every domain package.
	Routes []httpjson.Route
	// Ready reports whether this process can serve (NATS connected, streams
	// ensured, this role's consumers running); nil means always ready.
	Ready func() error
	// Gatherer serves /metrics. Defaults to prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives hookstream_api_requests_total (by route
	// and code class). Defaults to nil: not counted.
	Metrics prometheus.Registerer
	// Pages, when set, serves every path outside /v1, /healthz, /readyz and
	// /metrics (the dashboard at /). It is given the /v1 handler, token check
	// included, to call in-process. Defaults to nil: those paths are 404.
	Pages func(v1 http.Handler) http.Handler
	// Public are routes outside /v1 that take no bearer token, because the
	// caller cannot send one: POST /ingest/{source}, where a provider's own
	// signature is the authentication. Each must start with /ingest/.
	Public []httpjson.Route

	// ReadTimeout bounds reading one whole request, headers and body, so a
	// client trickling a body cannot hold a connection. Defaults to
	// ReadTimeoutDefault (1m).
	ReadTimeout time.Duration
	// WriteTimeout bounds one request from the end of its headers to the end
	// of its answer, so a client that never reads cannot hold a connection.
	// A route that streams must extend its own deadline with
	// http.ResponseController.SetWriteDeadline. Defaults to
	// WriteTimeoutDefault (2m).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has waited this long
	// for its next request. Defaults to IdleTimeoutDefault (1m).
	IdleTimeout time.Duration
	// MaxConns bounds the client connections open at once. At the limit the
	// connection idle the longest is closed to let a new one in (idle
	// clients never lock /healthz out), and when none is idle a new one
	// waits. Defaults to MaxConnsDefault (1024), or to half the process's
	// open-file limit when that is lower (but at least 16), so the API
	// never takes the descriptors the NATS connection and the webhook sends
	// need.
	MaxConns int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = AddrDefault
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = ReadTimeoutDefault
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = WriteTimeoutDefault
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = IdleTimeoutDefault
	}
	if c.MaxConns == 0 {
		c.MaxConns = maxConnsFor(openFileLimit())
	}
	return c
}

// maxConnsFor is MaxConns's default under an open-file limit (0: unknown).
func maxConnsFor(fileLimit uint64) int {
	if fileLimit == 0 || fileLimit/2 >= MaxConnsDefault {
		return MaxConnsDefault
	}
	return max(int(fileLimit/2), minConns)
}

// Validate refuses negative timeouts and limits, naming the setting.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"http-read-timeout", c.ReadTimeout}, {"http-write-timeout", c.WriteTimeout}, {"http-idle-timeout", c.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.name, d.v)
		}
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("http-max-conns: must be positive, got %d", c.MaxConns)
	}
	return nil
}

// CheckListen refuses an address beyond loopback when no token is set.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http: %q is not host:port: %w", addr, err)
	}
	if token != "" || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("http: listening on %s (beyond loopback) requires --api-token", addr)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is the HTTP API server.
type Server struct {
	reqMetrics *requestMetrics
	cfg        Config
	handler    http.Handler
	mu         sync.Mutex
	srv        *http.Server
	ln         net.Listener
	served     chan struct{}
}

// New builds the server and its routing table.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := CheckListen(cfg.Addr, cfg.Token); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	h, err := s.routes()
	if err != nil {
		return nil, err
	}
	if cfg.Metrics != nil {
		var patterns []string
		for _, r := range append(append([]httpjson.Route{}, cfg.Routes...), cfg.Public...) {
			patterns = append(patterns, r.Method+" "+r.Pattern)
		}
		m, err := newRequestMetrics(cfg.Metrics, patterns)
		if err != nil {
			return nil, fmt.Errorf("api: metrics: %w", err)
		}
		h = m.wrap(h)
		s.reqMetrics = m
	}
	s.handler = h
	return s, nil
}

// Handler is the server's whole routing table, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, r := range s.cfg.Routes {
		if !strings.HasPrefix(r.Pattern, "/v1/") {
			return nil, fmt.Errorf("route %s %s: must be under /v1/", r.Method, r.Pattern)
		}
		key := r.Method + " " + r.Pattern
		if seen[key] {
			return nil, fmt.Errorf("route %s registered twice", key)
		}
		seen[key] = true
		mux.Handle(key, s.auth(r.Handler))
	}
	for _, r := range s.cfg.Public {
		if !strings.HasPrefix(r.Pattern, "/ingest/") {
			return nil, fmt.Errorf("public route %s %s: must be under /ingest/", r.Method, r.Pattern)
		}
		key := r.Method + " " + r.Pattern
		if seen[key] {
			return nil, fmt.Errorf("route %s registered twice", key)
		}
		seen[key] = true
		mux.Handle(key, r.Handler)
	}
	// Unknown /v1 paths answer 401 without a token too, so that probing
	// does not reveal which routes exist.
	// A known path under another method is a 405 with Allow; an unknown one
	// a 404 (behind the token too, so probing reveals nothing).
	mux.Handle("/v1/", s.auth(httpjson.Fallback(s.cfg.Routes)))
	mux.Handle("/ingest/", httpjson.Fallback(s.cfg.Public))
	mux.Handle("GET "+openapi.Path, openapi.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(); err != nil {
				httpjson.WriteError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	if s.cfg.Pages != nil {
		// The pages call only /v1 paths of mux, so handing it over is safe.
		mux.Handle("/", s.cfg.Pages(mux))
		return mux, nil
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	return mux, nil
}

func (s *Server) auth(h http.HandlerFunc) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110); the token is not.
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookstream"`)
			httpjson.WriteError(w, http.StatusUnauthorized, "authorization: a valid bearer token is required")
			return
		}
		h(w, r)
	})
}

// Start listens and serves in the background; it returns once listening.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("api: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", s.cfg.Addr, err)
	}
	limited := newConnLimiter(ln, s.cfg.MaxConns)
	s.ln = limited
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(ReadHeaderTimeoutDefault, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ConnState:         limited.connState,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(limited); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
	s.cfg.Logger.Info("http api listening", "addr", ln.Addr().String(), "auth", s.cfg.Token != "",
		"max_conns", s.cfg.MaxConns, "idle_timeout", s.cfg.IdleTimeout)
	return nil
}

// Addr is the address listened on (useful with port 0).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop stops accepting requests and waits for those in flight, bounded by
// ctx. It is idempotent and safe without Start.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-served
	return err
}
