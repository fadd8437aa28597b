package dashboard

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// Defaults of Config.
const (
	SessionTTLDefault = 12 * time.Hour
)

// Config configures the dashboard.
type Config struct {
	// API is the /v1 handler, token check included, that the pages call
	// in-process. Required.
	API http.Handler
	// Token is the API token (--api-token). When set, the pages ask for it
	// in a login form and call the API with it; "" opens the pages without
	// a login. Defaults to "".
	Token string
	// SessionTTL is how long a login lasts. Defaults to SessionTTLDefault
	// (12h).
	SessionTTL time.Duration
	// Version is shown in the footer. Defaults to "dev".
	Version string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = SessionTTLDefault
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Dashboard is the pages' handler.
type Dashboard struct {
	cfg      Config
	api      *apiClient
	sessions *sessions
	origins  *http.CrossOriginProtection
	mux      *http.ServeMux
}

// New builds the dashboard. It panics when cfg.API is nil, a programming
// error like http.Handle's nil handler.
func New(cfg Config) *Dashboard {
	if cfg.API == nil {
		panic("dashboard: Config.API is required")
	}
	cfg = cfg.WithDefaults()
	d := &Dashboard{
		cfg:      cfg,
		api:      &apiClient{h: cfg.API, token: cfg.Token},
		sessions: newSessions(cfg.Token, cfg.SessionTTL, cfg.Now),
		origins:  http.NewCrossOriginProtection(),
	}
	d.mux = d.routes()
	return d
}

// Pages adapts New to the API server's Config.Pages hook, which hands over
// the /v1 handler once it is built.
func Pages(cfg Config) func(v1 http.Handler) http.Handler {
	return func(v1 http.Handler) http.Handler {
		cfg.API = v1
		return New(cfg)
	}
}

func (d *Dashboard) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", staticHandler())
	mux.Handle("GET /login", d.open(d.loginForm))
	mux.Handle("POST /login", d.open(d.login))
	mux.Handle("POST /logout", d.open(d.logout))

	mux.Handle("GET /{$}", d.protected(d.overview))
	mux.Handle("GET /endpoints/{id}", d.protected(d.endpoint))
	mux.Handle("POST /endpoints/{id}/enable", d.protected(d.setEnabled(true)))
	mux.Handle("POST /endpoints/{id}/disable", d.protected(d.setEnabled(false)))
	mux.Handle("POST /endpoints/{id}/rotate-secret", d.protected(d.rotateSecret))
	mux.Handle("GET /dlq", d.protected(d.deadLetters))
	mux.Handle("POST /dlq/replay", d.protected(d.replayAll))
	mux.Handle("GET /dlq/replays/{job}", d.protected(d.replayJob))
	mux.Handle("GET /dlq/{id}", d.protected(d.deadLetter))
	mux.Handle("POST /dlq/{id}/replay", d.protected(d.replay))
	mux.Handle("GET /events", d.protected(d.event))
	mux.Handle("GET /sources", d.protected(d.sources))
	mux.Handle("/", d.protected(func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no page at %s.", r.URL.Path))
	}))
	return mux
}

// ServeHTTP serves the pages with the headers every answer carries, and
// turns a panic into an error page rather than a dropped connection.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts and styles come only from /static: no inline script can run
	// even if some text escaped its template.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			d.cfg.Logger.Error("dashboard: panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			d.fail(w, r, http.StatusInternalServerError, "Something went wrong while building this page; the server log has the details.")
		}
	}()
	d.mux.ServeHTTP(w, r)
}
