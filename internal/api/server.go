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
)

// Defaults of Config.
const (
	AddrDefault              = "127.0.0.1:8080"
	ReadHeaderTimeoutDefault = 10 * time.Second
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
	// Pages, when set, serves every path outside /v1, /healthz, /readyz and
	// /metrics (the dashboard at /). It is given the /v1 handler, token check
	// included, to call in-process. Defaults to nil: those paths are 404.
	Pages func(v1 http.Handler) http.Handler
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
	cfg     Config
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
	ln      net.Listener
	served  chan struct{}
}

// New builds the server and its routing table.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = AddrDefault
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := CheckListen(cfg.Addr, cfg.Token); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	h, err := s.routes()
	if err != nil {
		return nil, err
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
	// Unknown /v1 paths answer 401 without a token too, so that probing
	// does not reveal which routes exist.
	mux.Handle("/v1/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	}))
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
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: ReadHeaderTimeoutDefault, ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
	s.cfg.Logger.Info("http api listening", "addr", ln.Addr().String(), "auth", s.cfg.Token != "")
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
