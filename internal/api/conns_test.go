package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
)

// startAPI starts a real api.Server (its own listener, timeouts and limit)
// with cfg's limits and a route GET /v1/block that signals entered and
// waits until release is closed, and stops it when the test ends.
func startAPI(t *testing.T, cfg api.Config, entered chan<- struct{}, release <-chan struct{}) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = quiet
	cfg.Gatherer = prometheus.NewRegistry()
	cfg.Routes = []httpjson.Route{{Method: http.MethodGet, Pattern: "/v1/block", Handler: func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "released"})
	}}}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s.Addr()
}

// rawConn is one client connection speaking HTTP/1.1 by hand, so the test
// decides when it is idle and sees when the server closes it.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

// get sends GET path on the connection, keep-alive, and returns the status.
func (rc *rawConn) get(path string, timeout time.Duration) (int, error) {
	if err := rc.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintf(rc.c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// closedByServer reports whether the server has closed the connection,
// waiting at most wait to see it.
func (rc *rawConn) closedByServer(wait time.Duration) bool {
	if err := rc.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return true
	}
	_, err := rc.r.ReadByte()
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Idle keep-alive connections never lock a new client out: at the limit the
// longest-idle one is closed to let the newcomer in, and an idle connection
// is closed by the idle timeout in any case. Before, only ReadHeaderTimeout
// was set, and parked connections held their descriptors for ever.
func TestIdleConnectionsAreReclaimed(t *testing.T) {
	t.Parallel()
	const limit = 4
	addr := startAPI(t, api.Config{MaxConns: limit, IdleTimeout: time.Hour}, nil, nil)

	var conns []*rawConn
	for i := range 3 * limit {
		rc := dialRaw(t, addr)
		if code, err := rc.get("/healthz", 10*time.Second); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d: GET /healthz = %d, %v; want 200 however many connections idle", i, code, err)
		}
		conns = append(conns, rc)
	}
	open := 0
	for _, rc := range conns {
		if !rc.closedByServer(20 * time.Millisecond) {
			open++
		}
	}
	if open > limit {
		t.Errorf("%d of %d idle connections still open, want at most the limit %d", open, len(conns), limit)
	}
	// The newest is the one most recently used: it was kept.
	if conns[len(conns)-1].closedByServer(20 * time.Millisecond) {
		t.Error("the newest connection was closed instead of the longest-idle ones")
	}
}

func TestIdleTimeoutClosesConnections(t *testing.T) {
	t.Parallel()
	addr := startAPI(t, api.Config{IdleTimeout: 200 * time.Millisecond}, nil, nil)
	rc := dialRaw(t, addr)
	if code, err := rc.get("/healthz", 10*time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz = %d, %v", code, err)
	}
	start := time.Now()
	if !rc.closedByServer(10 * time.Second) {
		t.Fatal("an idle connection was still open 10s after a 200ms idle timeout")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("closed after %s, before the idle timeout", waited)
	}
}

// A client that sends its headers and then trickles (or never sends) its
// body is cut off by the read timeout.
func TestReadTimeoutCutsSlowBodies(t *testing.T) {
	t.Parallel()
	addr := startAPI(t, api.Config{ReadTimeout: 300 * time.Millisecond}, nil, nil)
	rc := dialRaw(t, addr)
	if _, err := io.WriteString(rc.c, "POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n{\"a\":"); err != nil {
		t.Fatal(err)
	}
	if !rc.closedByServer(10 * time.Second) {
		t.Fatal("a request whose body never came was still open 10s after a 300ms read timeout")
	}
}

// With every slot busy (no connection idle), a new connection waits for one
// to free instead of taking a descriptor of its own, and is served then.
func TestBusyConnectionsMakeNewOnesWait(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 2), make(chan struct{})
	addr := startAPI(t, api.Config{MaxConns: 2}, entered, release)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	errs := make(chan error, 2)
	for range 2 {
		rc := dialRaw(t, addr)
		wg.Go(func() {
			if code, err := rc.get("/v1/block", 20*time.Second); err != nil || code != http.StatusOK {
				errs <- fmt.Errorf("blocked request = %d, %v", code, err)
			}
		})
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatal("the two blocking requests did not both start")
		}
	}
	third := dialRaw(t, addr)
	if _, err := third.get("/healthz", 300*time.Millisecond); err == nil {
		close(release)
		t.Fatal("a third connection was served while both slots were busy")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Its request was waiting in the kernel's queue: it is answered now.
	if err := third.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(third.r, nil)
	if err != nil {
		t.Fatalf("the waiting connection got no answer once a slot freed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz once a slot freed = %d", resp.StatusCode)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	c := api.Config{}.WithDefaults()
	if c.ReadTimeout != api.ReadTimeoutDefault || c.WriteTimeout != api.WriteTimeoutDefault || c.IdleTimeout != api.IdleTimeoutDefault {
		t.Errorf("defaults = %s/%s/%s", c.ReadTimeout, c.WriteTimeout, c.IdleTimeout)
	}
	if c.MaxConns < 16 || c.MaxConns > api.MaxConnsDefault {
		t.Errorf("MaxConns default = %d", c.MaxConns)
	}
	for _, bad := range []api.Config{{IdleTimeout: -1}, {ReadTimeout: -1}, {WriteTimeout: -time.Second}, {MaxConns: -3}} {
		if _, err := api.New(bad); err == nil || !strings.HasPrefix(err.Error(), "http-") {
			t.Errorf("New(%+v) = %v, want an error naming the setting", bad, err)
		}
	}
}
