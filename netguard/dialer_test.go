package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers the n-th lookup with answers[n] (the last answer once
// they run out) and records every lookup.
type fakeResolver struct {
	answers [][]netip.Addr
	err     error

	mu      sync.Mutex
	lookups []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.lookups)
	r.lookups = append(r.lookups, network+" "+host)
	if r.err != nil {
		return nil, r.err
	}
	return slices.Clone(r.answers[min(n, len(r.answers)-1)]), nil
}

func (r *fakeResolver) lookupCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lookups)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// recordingDial stands in for the network: it records each address the Dialer
// would connect to and answers with one end of a pipe (or failWith's error
// for the addresses in it), so nothing ever leaves the process.
type recordingDial struct {
	t        *testing.T
	failWith map[string]error

	mu     sync.Mutex
	dialed []string
}

func (r *recordingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		r.t.Errorf("dial of %s has no deadline", addr)
	}
	r.mu.Lock()
	r.dialed = append(r.dialed, addr)
	r.mu.Unlock()
	if err := r.failWith[addr]; err != nil {
		return nil, err
	}
	c1, c2 := net.Pipe()
	r.t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, nil
}

func (r *recordingDial) addrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dialed)
}

// TestDialerRebinding: a resolver that answers a public address first and
// 127.0.0.1 afterwards, as a rebinding attacker's DNS does. The first dial
// connects to the public address it resolved, as an IP literal (so no
// later lookup can change it); the second resolves again, gets 127.0.0.1 and
// is refused without any connection attempt.
func TestDialerRebinding(t *testing.T) {
	t.Parallel()

	res := &fakeResolver{answers: [][]netip.Addr{addrs("93.184.216.34"), addrs("127.0.0.1")}}
	rec := &recordingDial{t: t}
	d := &Dialer{Resolver: res, dial: rec.dial}

	conn, err := d.DialContext(t.Context(), "tcp", "rebind.example:443")
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	conn.Close()
	if got, want := rec.addrs(), []string{"93.184.216.34:443"}; !slices.Equal(got, want) {
		t.Fatalf("first dial connected to %q, want %q", got, want)
	}
	if n := res.lookupCount(); n != 1 {
		t.Fatalf("first dial looked the host up %d times, want once", n)
	}

	_, err = d.DialContext(t.Context(), "tcp", "rebind.example:443")
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("second dial error = %v, want one wrapping ErrForbidden", err)
	}
	for _, want := range []string{"rebind.example", "127.0.0.1", "loopback"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got := rec.addrs(); len(got) != 1 {
		t.Fatalf("the refused dial still connected: dialled %q", got)
	}
	if n := res.lookupCount(); n != 2 {
		t.Fatalf("looked the host up %d times over two dials, want 2", n)
	}
}

func TestDialer(t *testing.T) {
	t.Parallel()

	errRefused := errors.New("connection refused")
	tests := []struct {
		name         string
		network      string
		addr         string
		answer       []netip.Addr
		resolveErr   error
		allowPrivate bool
		failWith     map[string]error

		wantDialed  []string // every address dialled, in order
		wantLookups int
		wantErr     error  // nil: connected
		wantMsg     string // substring of the error
	}{
		{
			name: "public v4", addr: "hooks.example:443", answer: addrs("8.8.8.8"),
			wantDialed: []string{"8.8.8.8:443"}, wantLookups: 1,
		},
		{
			name: "public v6", addr: "hooks.example:443", answer: addrs("2606:4700::1111"),
			wantDialed: []string{"[2606:4700::1111]:443"}, wantLookups: 1,
		},
		{
			name: "forbidden addresses are skipped", addr: "mixed.example:80",
			answer:     addrs("127.0.0.1", "10.1.2.3", "8.8.4.4", "192.168.0.1"),
			wantDialed: []string{"8.8.4.4:80"}, wantLookups: 1,
		},
		{
			name: "loopback answer", addr: "evil.example:80", answer: addrs("127.0.0.1"),
			wantLookups: 1, wantErr: ErrForbidden,
			wantMsg: "address not allowed: host evil.example resolves to loopback address 127.0.0.1",
		},
		{
			name: "every answer forbidden names the first", addr: "evil.example:80", answer: addrs("10.0.0.1", "127.0.0.1"),
			wantLookups: 1, wantErr: ErrForbidden, wantMsg: "private address 10.0.0.1",
		},
		{
			name: "mapped private answer", addr: "evil.example:80", answer: addrs("::ffff:10.0.0.1"),
			wantLookups: 1, wantErr: ErrForbidden, wantMsg: "private address ::ffff:10.0.0.1",
		},
		{
			name: "nat64 metadata answer", addr: "evil.example:80", answer: addrs("64:ff9b::a9fe:a9fe"),
			wantLookups: 1, wantErr: ErrForbidden, wantMsg: "cloud-metadata",
		},
		{
			name: "metadata answer", addr: "evil.example:80", answer: addrs("169.254.169.254"),
			wantLookups: 1, wantErr: ErrForbidden, wantMsg: "cloud-metadata address 169.254.169.254",
		},
		{
			name: "literal loopback needs no lookup", addr: "127.0.0.1:80",
			wantErr: ErrForbidden, wantMsg: "loopback address 127.0.0.1",
		},
		{
			name: "literal v6 loopback", addr: "[::1]:80",
			wantErr: ErrForbidden, wantMsg: "loopback address ::1",
		},
		{
			name: "literal public is dialled as is", addr: "8.8.8.8:443",
			wantDialed: []string{"8.8.8.8:443"},
		},
		{
			// The address CheckURL judged at creation, not a name for DNS.
			name: "inet_aton literal is dialled as its address", addr: "0x08.0x08.0x08.0x08:443",
			wantDialed: []string{"8.8.8.8:443"},
		},
		{
			name: "inet_aton loopback needs no lookup", addr: "0x7f.0x.0x.1:80",
			wantErr: ErrForbidden, wantMsg: "loopback address 127.0.0.1 (written 0x7f.0x.0x.1)",
		},
		{
			name: "allowPrivate dials inet_aton loopback", addr: "127.1:8080", allowPrivate: true,
			wantDialed: []string{"127.0.0.1:8080"},
		},
		{
			name: "localhost refused by name", addr: "localhost:8080",
			wantErr: ErrForbidden, wantMsg: "loopback name localhost",
		},
		{
			name: "empty host refused", addr: ":8080",
			wantErr: ErrForbidden, wantMsg: "empty host",
		},
		{
			name: "allowPrivate dials loopback", addr: "svc.internal:8080", answer: addrs("127.0.0.1"), allowPrivate: true,
			wantDialed: []string{"127.0.0.1:8080"}, wantLookups: 1,
		},
		{
			name: "allowPrivate dials localhost after lookup", addr: "localhost:8080", answer: addrs("::1"), allowPrivate: true,
			wantDialed: []string{"[::1]:8080"}, wantLookups: 1,
		},
		{
			name: "next address after a failed connect", addr: "multi.example:443", answer: addrs("8.8.8.8", "8.8.4.4"),
			failWith:   map[string]error{"8.8.8.8:443": errRefused},
			wantDialed: []string{"8.8.8.8:443", "8.8.4.4:443"}, wantLookups: 1,
		},
		{
			name: "first connect error when all fail", addr: "multi.example:443", answer: addrs("8.8.8.8", "8.8.4.4"),
			failWith:   map[string]error{"8.8.8.8:443": errRefused, "8.8.4.4:443": errors.New("timeout")},
			wantDialed: []string{"8.8.8.8:443", "8.8.4.4:443"}, wantLookups: 1, wantErr: errRefused,
		},
		{
			name: "resolver error", addr: "gone.example:443", resolveErr: errRefused,
			wantLookups: 1, wantErr: errRefused, wantMsg: "lookup gone.example",
		},
		{
			name: "no addresses", addr: "empty.example:443", answer: addrs(),
			wantLookups: 1, wantMsg: "lookup empty.example: no addresses",
		},
		{
			name: "tcp4 looks up ip4", network: "tcp4", addr: "hooks.example:443", answer: addrs("8.8.8.8"),
			wantDialed: []string{"8.8.8.8:443"}, wantLookups: 1,
		},
		{name: "udp refused", network: "udp", addr: "hooks.example:53", wantMsg: "network not supported"},
		{name: "no port", addr: "hooks.example", wantMsg: "missing port"},
		{name: "named port", addr: "hooks.example:https", wantMsg: "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := &fakeResolver{answers: [][]netip.Addr{tt.answer}, err: tt.resolveErr}
			rec := &recordingDial{t: t, failWith: tt.failWith}
			d := &Dialer{AllowPrivate: tt.allowPrivate, Resolver: res, Timeout: time.Minute, dial: rec.dial}
			network := tt.network
			if network == "" {
				network = "tcp"
			}

			conn, err := d.DialContext(t.Context(), network, tt.addr)
			if conn != nil {
				conn.Close()
			}
			wantOK := tt.wantErr == nil && tt.wantMsg == ""
			switch {
			case wantOK && err != nil:
				t.Fatalf("DialContext: %v", err)
			case !wantOK && err == nil:
				t.Fatal("DialContext succeeded, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("DialContext error = %v, want one wrapping %v", err, tt.wantErr)
			case tt.wantErr == nil && errors.Is(err, ErrForbidden):
				t.Fatalf("DialContext error = %v wraps ErrForbidden, want another error", err)
			case err != nil && !strings.Contains(err.Error(), tt.wantMsg):
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if got := rec.addrs(); !slices.Equal(got, tt.wantDialed) {
				t.Errorf("dialled %q, want %q", got, tt.wantDialed)
			}
			if got := res.lookupCount(); got != tt.wantLookups {
				t.Errorf("looked up %d times (%q), want %d", got, res.lookups, tt.wantLookups)
			}
			if tt.network == "tcp4" && res.lookupCount() == 1 && !strings.HasPrefix(res.lookups[0], "ip4 ") {
				t.Errorf("lookup %q, want network ip4", res.lookups[0])
			}
		})
	}
}

// TestDialerRefusesAtConnect checks the last line of defence on the real
// network stack, against a loopback listener: even handed a loopback address
// directly, the default dial of a Dialer without AllowPrivate refuses it
// before connecting.
func TestDialerRefusesAtConnect(t *testing.T) {
	t.Parallel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	_, err = (&Dialer{}).netDialer().DialContext(t.Context(), "tcp", ln.Addr().String())
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial of %s = %v, want an error wrapping ErrForbidden", ln.Addr(), err)
	}

	conn, err := (&Dialer{AllowPrivate: true}).netDialer().DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with AllowPrivate: %v", err)
	}
	conn.Close()
}

func TestRefuseAtConnect(t *testing.T) {
	t.Parallel()

	tests := []struct {
		address string
		refused bool
	}{
		{"8.8.8.8:443", false},
		{"[2606:4700::1111]:443", false},
		{"127.0.0.1:80", true},
		{"[::ffff:10.0.0.1]:80", true},
		{"[fe80::1%eth0]:80", true},
		{"not an address", true},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			t.Parallel()

			err := refuseAtConnect(t.Context(), "tcp4", tt.address, nil)
			if got := errors.Is(err, ErrForbidden); got != tt.refused {
				t.Fatalf("refuseAtConnect(%q) = %v, want refused %t", tt.address, err, tt.refused)
			}
		})
	}
}

func TestPartialDeadline(t *testing.T) {
	t.Parallel()

	now := time.Unix(1700000000, 0)
	tests := []struct {
		name      string
		remaining time.Duration
		addrs     int
		want      time.Duration
	}{
		{"one address gets it all", 10 * time.Second, 1, 10 * time.Second},
		{"equal shares", 10 * time.Second, 2, 5 * time.Second},
		{"at least two seconds", 10 * time.Second, 10, 2 * time.Second},
		{"never past the deadline", time.Second, 3, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if got := partialDeadline(now, now.Add(tt.remaining), tt.addrs).Sub(now); got != tt.want {
				t.Fatalf("partialDeadline share = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDialerTimeout: the whole dial is bounded by Timeout, lookup included.
func TestDialerTimeout(t *testing.T) {
	t.Parallel()

	d := &Dialer{Resolver: blockingResolver{}, Timeout: 20 * time.Millisecond}
	_, err := d.DialContext(t.Context(), "tcp", "slow.example:443")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialContext with a resolver that never answers = %v, want a deadline error", err)
	}
}

type blockingResolver struct{}

func (blockingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Compile-time check that the standard resolver fits.
var _ Resolver = net.DefaultResolver
