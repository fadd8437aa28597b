package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrForbidden is wrapped by every refusal of an address, whether found in a
// URL or at dial time; the message around it names the class and the address
// (and the host name it came from).
var ErrForbidden = errors.New("address not allowed")

// CheckHost refuses a host (no port; an IPv6 literal may be bracketed) that is
// an IP literal in a refused class (see Classify), the name "localhost" or a
// name under ".localhost" (resolved locally by convention, whatever DNS says),
// an inet_aton-style IPv4 spelling such as "0x7f.1" or "2130706433" that some
// resolvers turn into a refused address, or the empty host (which Go dials as
// the local system). Other host names pass: they are checked when dialled,
// after DNS, by Dialer. Errors wrap ErrForbidden.
func CheckHost(host string) error {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return fmt.Errorf("%w: empty host is the local system", ErrForbidden)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if class := Classify(ip); class != "" {
			return fmt.Errorf("%w: %s address %s", ErrForbidden, class, ip)
		}
		return nil
	}
	if ip, ok := parseLooseIPv4(h); ok {
		if class := Classify(ip); class != "" {
			return fmt.Errorf("%w: %s address %s (written %s)", ErrForbidden, class, ip, h)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("%w: loopback name %s", ErrForbidden, h)
	}
	return nil
}

// parseLooseIPv4 parses the IPv4 spellings that inet_aton (and so glibc's
// resolver, curl and browsers) accept but netip rightly does not: one to four
// parts, each decimal, octal with a leading 0 or hex with 0x, the last part
// filling the remaining bytes ("127.1", "0x7f000001", "017700000001"), and an
// optional trailing dot.
func parseLooseIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		// ParseUint takes no sign, no base prefix and no underscores with an
		// explicit base, so only digits of that base get through.
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v = v<<8 | n
			continue
		}
		// The last part holds all the bytes the earlier parts did not.
		rest := 8 * uint(5-len(parts))
		if n >= 1<<rest {
			return netip.Addr{}, false
		}
		v = v<<rest | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// CheckURL checks an endpoint or source URL when it is created or changed:
// the scheme must be http or https, the host present and the port, if given,
// in range; unless allowPrivate, the host must pass CheckHost. Every message
// starts with "url: " and names what is wrong; a refused host's error wraps
// ErrForbidden. The URL itself is never repeated, as it may carry credentials.
func CheckURL(rawURL string, allowPrivate bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error would quote the whole URL, user:password included.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("url: scheme must be http or https")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("url: host required")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("url: port %s out of range", p)
		}
	}
	if allowPrivate {
		return nil
	}
	if err := CheckHost(host); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}
