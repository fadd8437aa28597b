package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// keepAliveConn is a client connection that sends one request and then
// idles, as a keep-alive client between requests does.
type keepAliveConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAliveConn{c: c, r: bufio.NewReader(c)}
}

func (k *keepAliveConn) get(path string) (int, error) {
	if err := k.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: hookstream\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// closed reports whether the server closed the connection (EOF or reset
// rather than a read timeout).
func (k *keepAliveConn) closed() bool {
	if err := k.c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		return true
	}
	_, err := k.r.ReadByte()
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Idle keep-alive connections can neither starve the API nor pile up: with
// three times --http-max-conns of them parked, /healthz still answers, at
// most --http-max-conns stay open, and those are closed after
// --http-idle-timeout. Before, the API server had no idle timeout nor limit:
// 231 idle connections under a 256-descriptor limit stopped /healthz.
func TestServeReclaimsIdleConnections(t *testing.T) {
	t.Parallel()
	const maxConns = 8
	srv := startServer(t, "serve", "--data", t.TempDir(), "--log-level", "warn",
		"--http-idle-timeout", "2s", "--http-max-conns", fmt.Sprint(maxConns))
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}

	var conns []*keepAliveConn
	for i := range 3 * maxConns {
		k := dialKeepAlive(t, u.Host)
		if code, err := k.get("/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("idle connection %d: GET /healthz = %d, %v", i, code, err)
		}
		conns = append(conns, k)
	}
	open := func() int {
		n := 0
		for _, k := range conns {
			if !k.closed() {
				n++
			}
		}
		return n
	}
	streamstest.WaitFor(t, 10*time.Second, fmt.Sprintf("at most %d connections open", maxConns), func() bool { return open() <= maxConns })

	fresh := dialKeepAlive(t, u.Host)
	if code, err := fresh.get("/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz beside %d parked connections = %d, %v", len(conns), code, err)
	}
	conns = append(conns, fresh)
	streamstest.WaitFor(t, 20*time.Second, "every idle connection closed after --http-idle-timeout", func() bool { return open() == 0 })
}

// The HTTP settings are refused at start when negative, in one line.
func TestServeRefusesBadHTTPSettings(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--data", t.TempDir(), "--http-idle-timeout", "-1s"},
		{"serve", "--data", t.TempDir(), "--http-max-conns", "-1"},
	} {
		r := runCLI(t, t.Context(), nil, "", args...)
		wantOneErrorLine(t, r, 1, args[3][2:]+": must be positive")
	}
}
