package streams

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// Listen is the client address to expose ("127.0.0.1:4222"; port -1 or
	// 0 picks a free one). Defaults to "": no listener, in-process
	// connections only.
	Listen string
	// MaxPayload is the largest message. Defaults to EmbeddedMaxPayload (8 MiB).
	MaxPayload int32
	// ServerName names the server (required in a cluster). Defaults to "hookstream".
	ServerName string
	// ClusterName, ClusterListen and Routes join the server to a JetStream
	// cluster; all empty for a single node.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Defaults to 30 seconds.
	ReadyTimeout time.Duration
	// Auth is what clients of Listen must present. Defaults to none, which
	// StartServer refuses on a Listen beyond loopback (see CheckListen).
	// Connect's in-process connections authenticate by themselves.
	Auth ServerAuth
	// TLS serves Listen over TLS (and, with a CA, requires client
	// certificates). Defaults to none: plain TCP.
	TLS ServerTLS
}

// Server is an embedded NATS server with JetStream on.
type Server struct {
	ns   *server.Server
	once sync.Once
	// internal signs in the in-process connections when clients must
	// authenticate: a user nkey made at start, known to nothing else.
	internal nkeys.KeyPair
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("nats: store dir required")
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = EmbeddedMaxPayload
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "hookstream"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		MaxPayload:         cfg.MaxPayload,
		MaxPending:         int64(cfg.MaxPayload) * 8,
		NoSigs:             true,
		NoLog:              true,
		DontListen:         cfg.Listen == "",
		JetStreamMaxMemory: 1 << 30,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats-listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if err := cfg.Auth.Validate(); err != nil {
		return nil, err
	}
	if err := CheckListen(cfg.Listen, cfg.Auth); err != nil {
		return nil, err
	}
	var internal nkeys.KeyPair
	if cfg.Auth.Enabled() {
		var err error
		if internal, err = authOptions(opts, cfg.Auth); err != nil {
			return nil, err
		}
	}
	if cfg.TLS.Enabled() {
		if cfg.Listen == "" {
			return nil, errors.New("nats-tls-cert: the embedded server serves TLS only on --nats-listen")
		}
		tc, err := cfg.TLS.config()
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, cfg.TLS.CAFile != ""
		opts.TLSTimeout = 5
	}
	if cfg.ClusterName != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen: %w", err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("nats: not ready after %s", cfg.ReadyTimeout)
	}
	return &Server{ns: ns, internal: internal}, nil
}

// authOptions sets the server's client authentication to a and adds an
// internal user nkey for the in-process connections, which it returns.
// (The server takes a token beside user and nkey lists: a client presenting
// no nkey is checked against the token.)
func authOptions(opts *server.Options, a ServerAuth) (nkeys.KeyPair, error) {
	internal, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("nats: internal user key: %w", err)
	}
	pub, err := internal.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("nats: internal user key: %w", err)
	}
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	for _, k := range a.NKeys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if a.User != "" {
		opts.Users = []*server.User{{Username: a.User, Password: a.Password}}
	}
	opts.Authorization = a.Token
	return internal, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// Connect opens an in-process connection (no network hop) with reconnects
// on, named name. When clients must authenticate, it signs in with the
// server's internal key: no credential is needed, nor can one leak.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name(name), nats.InProcessServer(s.ns), nats.MaxReconnects(-1)}
	if s.internal != nil {
		pub, err := s.internal.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("nats: internal user key: %w", err)
		}
		base = append(base, nats.Nkey(pub, s.internal.Sign))
	}
	return nats.Connect("", append(base, opts...)...)
}

// ClientURL is the server's client URL; empty when it does not listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// NATS returns the underlying server, for tests that need its internals
// (cluster leader lookups, forced shutdown).
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server and waits for it, bounded by ctx. Close every
// client connection with Drain first. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.once.Do(func() {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
		})
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nats shutdown: %w", ctx.Err())
	}
}

// CheckMaxPayload refuses a server whose max_payload is too small for c.
func CheckMaxPayload(nc *nats.Conn, c Config) error {
	c = c.WithDefaults()
	if got, need := nc.MaxPayload(), c.RequiredMaxPayload(); got < need {
		return fmt.Errorf("nats-url: server max_payload is %d bytes; hookstream needs at least %d for events of up to %d bytes (set max_payload: 8MB in the server config)", got, need, c.MaxEventData)
	}
	return nil
}

// Drain drains nc and waits until it is closed, bounded by ctx: nats.go's
// Drain returns before draining ends, and shutting the server down under a
// draining connection loses its last acks.
func Drain(ctx context.Context, nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	var once sync.Once
	nc.SetClosedHandler(func(*nats.Conn) { once.Do(func() { close(closed) }) })
	if err := nc.Drain(); err != nil {
		if nc.IsClosed() {
			return nil
		}
		nc.Close()
		return fmt.Errorf("drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}
