package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// dialTimeoutDefault is the Dialer's Timeout when it is not positive.
const dialTimeoutDefault = 10 * time.Second

// Resolver looks up a host's addresses; *net.Resolver is one. network is
// "ip", "ip4" or "ip6".
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer connects to endpoints, refusing the addresses Classify refuses. It
// resolves the host itself, once per dial, checks what it got and then dials
// the IP literal: the address checked is the address connected to, so a DNS
// answer that changes between a check and the connection (DNS rebinding)
// cannot slip an internal address past it. The zero Dialer is ready to use.
type Dialer struct {
	// AllowPrivate lets connections reach every address class, for tests and
	// sandboxes whose endpoints are on the local network
	// (--allow-private-endpoints). Defaults to false.
	AllowPrivate bool
	// Resolver looks host names up. Defaults to net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds a whole dial: the lookup and every connection attempt.
	// Defaults to 10s.
	Timeout time.Duration
	// KeepAlive is the TCP keep-alive period of the connections; negative
	// disables keep-alives. Defaults to Go's default (15s).
	KeepAlive time.Duration

	// dial connects to "ip:port", always an IP literal. Tests replace it to
	// see what would be dialled without connecting anywhere. nil: a
	// net.Dialer that re-checks the address just before connect.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext connects to addr ("host:port") over network ("tcp", "tcp4" or
// "tcp6"), for http.Transport. The host's addresses are tried in the order
// the resolver gave them, skipping refused ones; if every address is refused,
// the error wraps ErrForbidden and names the host, the first refused address
// and its class. Like net.Dialer, it splits the time left between the
// addresses still to try, so one black-holed address does not use it all.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var lookupNetwork string
	switch network {
	case "tcp":
		lookupNetwork = "ip"
	case "tcp4":
		lookupNetwork = "ip4"
	case "tcp6":
		lookupNetwork = "ip6"
	default:
		return nil, fmt.Errorf("dial %s %s: network not supported", network, addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	// http.Transport always passes a numeric port; a service name would need
	// another lookup this dialer has no reason to make.
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial %s: port %q is not a number", addr, portStr)
	}

	timeout := d.Timeout
	if timeout <= 0 {
		timeout = dialTimeoutDefault
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	ips, err := d.resolve(ctx, lookupNetwork, host)
	if err != nil {
		return nil, err
	}
	allowed := ips[:0:0]
	var refusal error
	for _, ip := range ips {
		if !d.AllowPrivate {
			if class := Classify(ip); class != "" {
				if refusal == nil {
					refusal = fmt.Errorf("%w: host %s resolves to %s address %s", ErrForbidden, host, class, ip)
				}
				continue
			}
		}
		allowed = append(allowed, ip)
	}
	if len(allowed) == 0 {
		return nil, refusal
	}

	dial := d.dial
	if dial == nil {
		dial = d.netDialer().DialContext
	}
	var firstErr error
	for i, ip := range allowed {
		attemptCtx, cancelAttempt := context.WithDeadline(ctx, partialDeadline(time.Now(), deadline, len(allowed)-i))
		// Once connected, a connection outlives its dial context, so
		// cancelling it here is safe.
		conn, err := dial(attemptCtx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		cancelAttempt()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolve returns host's addresses: the address itself when the host is an
// IP literal in any spelling HostAddr reads (no lookup to race with, and the
// same address CheckURL judged when the endpoint was created: "0x7f.1" is
// 127.0.0.1 here too, never a name sent to DNS), the resolver's answer
// otherwise. Names refused by CheckHost ("localhost") are refused before any
// lookup.
func (d *Dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, ok := HostAddr(host); ok {
		if !d.AllowPrivate {
			if class := Classify(ip); class != "" {
				written := ""
				if ip.String() != host {
					written = " (written " + host + ")"
				}
				return nil, fmt.Errorf("%w: %s address %s%s", ErrForbidden, class, ip, written)
			}
		}
		return []netip.Addr{ip}, nil
	}
	if !d.AllowPrivate {
		if err := CheckHost(host); err != nil {
			return nil, err
		}
	}
	var r Resolver = net.DefaultResolver
	if d.Resolver != nil {
		r = d.Resolver
	}
	ips, err := r.LookupNetIP(ctx, network, host)
	if err != nil {
		// net's lookup errors already read "lookup <host>…".
		if _, ok := errors.AsType[*net.DNSError](err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("lookup %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	return ips, nil
}

// netDialer returns the net.Dialer behind DialContext. Unless AllowPrivate,
// its Control hook classifies the address once more just before connect: the
// resolver's answer was checked already, so this only matters if a future
// change lets some other address reach the dial, and then it is the last
// line that holds.
func (d *Dialer) netDialer() *net.Dialer {
	nd := &net.Dialer{KeepAlive: d.KeepAlive}
	if !d.AllowPrivate {
		nd.ControlContext = refuseAtConnect
	}
	return nd
}

// refuseAtConnect is a net.Dialer ControlContext hook that refuses to connect
// a socket to a refused address.
func refuseAtConnect(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse address %q", ErrForbidden, address)
	}
	if class := Classify(ap.Addr()); class != "" {
		return fmt.Errorf("%w: %s address %s", ErrForbidden, class, ap.Addr())
	}
	return nil
}

// partialDeadline returns the deadline of one of addrsRemaining connection
// attempts that share the time until deadline, as net.Dialer does: an equal
// share, but at least two seconds when that much is left, since a share too
// short to connect over a slow link helps no one.
func partialDeadline(now, deadline time.Time, addrsRemaining int) time.Time {
	remaining := deadline.Sub(now)
	share := remaining / time.Duration(addrsRemaining)
	const saneMinimum = 2 * time.Second
	if share < saneMinimum {
		share = min(remaining, saneMinimum)
	}
	return now.Add(share)
}
