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
}

// Server is an embedded NATS server with JetStream on.
type Server struct {
	ns   *server.Server
	once sync.Once
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
	return &Server{ns: ns}, nil
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
// on, named name.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.InProcessServer(s.ns), nats.MaxReconnects(-1)}, opts...)
	return nats.Connect("", opts...)
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

// Dial connects to an external NATS server with reconnects on.
func Dial(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats-url: connect to %s: %w", url, err)
	}
	return nc, nil
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
