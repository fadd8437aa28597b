package netguard_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/netguard"
)

// newServer starts a loopback test server and counts the requests it serves
// on each path.
func newServer(t *testing.T) (*httptest.Server, map[string]*atomic.Int64) {
	t.Helper()
	hits := map[string]*atomic.Int64{"/hook": {}, "/moved": {}, "/target": {}}
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		hits["/hook"].Add(1)
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		hits["/moved"].Add(1)
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) {
		hits["/target"].Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, hits
}

func newClient(t *testing.T, d *netguard.Dialer) *http.Client {
	t.Helper()
	c := netguard.NewClient(d, 4, 5*time.Second)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestClientAllowPrivateReachesLoopback(t *testing.T) {
	t.Parallel()

	srv, hits := newServer(t)
	c := newClient(t, &netguard.Dialer{AllowPrivate: true})

	resp, err := c.Post(srv.URL+"/hook", "application/json", nil)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	if n := hits["/hook"].Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

func TestClientRefusesLoopback(t *testing.T) {
	t.Parallel()

	srv, hits := newServer(t)
	c := newClient(t, &netguard.Dialer{})

	resp, err := c.Get(srv.URL + "/hook")
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET of a loopback server succeeded without AllowPrivate")
	}
	if !errors.Is(err, netguard.ErrForbidden) {
		t.Fatalf("GET error = %v, want one wrapping ErrForbidden", err)
	}
	if n := hits["/hook"].Load(); n != 0 {
		t.Fatalf("server saw %d requests, want none", n)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()

	srv, hits := newServer(t)
	c := newClient(t, &netguard.Dialer{AllowPrivate: true})

	resp, err := c.Get(srv.URL + "/moved")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 itself", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/target" {
		t.Errorf("Location %q, want /target", loc)
	}
	if n := hits["/target"].Load(); n != 0 {
		t.Fatalf("the redirect was followed: /target saw %d requests", n)
	}
}

func TestNewTransport(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name            string
		maxConnsPerHost int
		wantPerHost     int
	}{
		{"given", 64, 64},
		{"zero means the default concurrency", 0, 10},
		{"negative means the default concurrency", -1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			tr := netguard.NewTransport(&netguard.Dialer{}, tt.maxConnsPerHost)
			t.Cleanup(tr.CloseIdleConnections)
			switch {
			case tr.Proxy != nil:
				t.Error("Proxy is set: a proxy would connect past the dialer's checks")
			case tr.DialContext == nil:
				t.Error("DialContext is not set")
			case tr.MaxIdleConnsPerHost != tt.wantPerHost:
				t.Errorf("MaxIdleConnsPerHost = %d, want %d", tr.MaxIdleConnsPerHost, tt.wantPerHost)
			case tr.MaxIdleConns < 100 || tr.MaxIdleConns < tr.MaxIdleConnsPerHost:
				t.Errorf("MaxIdleConns = %d, want at least 100 and at least MaxIdleConnsPerHost", tr.MaxIdleConns)
			case tr.MaxConnsPerHost != 0:
				t.Errorf("MaxConnsPerHost = %d, want 0 (unlimited)", tr.MaxConnsPerHost)
			case tr.IdleConnTimeout != 90*time.Second:
				t.Errorf("IdleConnTimeout = %s, want 90s", tr.IdleConnTimeout)
			case tr.TLSHandshakeTimeout != 10*time.Second:
				t.Errorf("TLSHandshakeTimeout = %s, want 10s", tr.TLSHandshakeTimeout)
			case tr.ResponseHeaderTimeout != 0:
				t.Errorf("ResponseHeaderTimeout = %s, want 0", tr.ResponseHeaderTimeout)
			case tr.ExpectContinueTimeout != time.Second:
				t.Errorf("ExpectContinueTimeout = %s, want 1s", tr.ExpectContinueTimeout)
			case !tr.ForceAttemptHTTP2:
				t.Error("ForceAttemptHTTP2 is false")
			case tr.MaxResponseHeaderBytes != 64<<10:
				t.Errorf("MaxResponseHeaderBytes = %d, want 64 KiB", tr.MaxResponseHeaderBytes)
			}
		})
	}
}

func TestNewTransportNilDialer(t *testing.T) {
	t.Parallel()

	srv, _ := newServer(t)
	c := &http.Client{Transport: netguard.NewTransport(nil, 1)}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get(srv.URL + "/hook")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, netguard.ErrForbidden) {
		t.Fatalf("GET through a nil Dialer = %v, want the zero Dialer's refusal", err)
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()

	c := netguard.NewClient(nil, 8, 7*time.Second)
	if c.Timeout != 7*time.Second {
		t.Errorf("Timeout = %s, want 7s", c.Timeout)
	}
	if _, ok := c.Transport.(*http.Transport); !ok {
		t.Errorf("Transport is %T, want *http.Transport", c.Transport)
	}
	if c.CheckRedirect == nil || !errors.Is(c.CheckRedirect(nil, nil), http.ErrUseLastResponse) {
		t.Error("CheckRedirect does not return http.ErrUseLastResponse")
	}
}

// CheckURL and the dial agree on what a host is: every spelling of the
// loopback address a test server listens on reaches it when private
// addresses are allowed (so net/http and the Dialer map it to 127.0.0.1),
// and is refused by CheckURL, as at creation, and by the dial when they are
// not. Before, the full-width and the bare-0x spellings passed CheckURL and
// then failed every dial.
func TestCheckURLAgreesWithDial(t *testing.T) {
	t.Parallel()

	srv, hits := newServer(t)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := newClient(t, &netguard.Dialer{AllowPrivate: true})
	guarded := newClient(t, &netguard.Dialer{})
	for _, host := range []string{"127.0.0.1", "１２７.０.０.１", "１２７。０。０。１", "127.1", "0x7f.0x.0x.1", "0x7f000001", "2130706433", "0177.0.0.1", "０ｘ７ｆ.１"} {
		u := "http://" + net.JoinHostPort(host, port) + "/hook"
		if err := netguard.CheckURL(u, true); err != nil {
			t.Errorf("CheckURL(%s, allowPrivate) = %v, want nil", u, err)
		}
		before := hits["/hook"].Load()
		resp, err := allowed.Post(u, "application/json", nil)
		if err != nil {
			t.Errorf("POST %s with private addresses allowed: %v", u, err)
		} else {
			resp.Body.Close()
			if hits["/hook"].Load() != before+1 {
				t.Errorf("POST %s did not reach the server on 127.0.0.1", u)
			}
		}

		if err := netguard.CheckURL(u, false); !errors.Is(err, netguard.ErrForbidden) || !strings.Contains(err.Error(), "loopback address 127.0.0.1") {
			t.Errorf("CheckURL(%s) = %v, want the loopback refusal", u, err)
		}
		if resp, err := guarded.Post(u, "application/json", nil); !errors.Is(err, netguard.ErrForbidden) {
			if resp != nil {
				resp.Body.Close()
			}
			t.Errorf("POST %s without private addresses: %v, want ErrForbidden at dial", u, err)
		}
	}
}

// An endpoint that answers more than MaxResponseHeaderBytes of status line
// and headers gets an error, not a response parsed at any size.
func TestClientBoundsResponseHeaders(t *testing.T) {
	t.Parallel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	answer := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: 0123456789abcdef\r\n", 2*netguard.MaxResponseHeaderBytes/25) + "\r\n"
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		_, _ = conn.Read(buf) // the request line and headers, enough here
		_, _ = io.WriteString(conn, answer)
	}()
	c := newClient(t, &netguard.Dialer{AllowPrivate: true})
	resp, err := c.Get("http://" + ln.Addr().String() + "/hook")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("%d bytes of headers read as a %d", len(answer), resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "exceeded 65536 bytes") {
		t.Fatalf("err = %v, want the header limit", err)
	}
}
