package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// ErrForbidden is wrapped by every refusal of an address, whether found in a
// URL or at dial time; the message around it names the class and the address
// (and the host name it came from).
var ErrForbidden = errors.New("address not allowed")

// CheckHost refuses a host (no port; an IPv6 literal may be bracketed) that is
// an IP literal in a refused class (see Classify), the name "localhost" or a
// name under ".localhost" (resolved locally by convention, whatever DNS says),
// an inet_aton-style IPv4 spelling such as "0x7f.1", "0x7f.0x.0x.1" or
// "2130706433" that some resolvers turn into a refused address, or the empty
// host (which Go dials as the local system). The host is first mapped as
// net/http maps it before it dials (MapHost), so a full-width spelling such
// as "１２７.０.０.１" is the loopback address it dials. Other host names pass:
// they are checked when dialled, after DNS, by Dialer. Errors about the
// address wrap ErrForbidden; a host that cannot be mapped is refused with an
// error that does not.
func CheckHost(host string) error {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return fmt.Errorf("%w: empty host is the local system", ErrForbidden)
	}
	mapped, err := MapHost(h)
	if err != nil {
		return err
	}
	written := ""
	if mapped != h {
		written = " (written " + h + ")"
	}
	if ip, err := netip.ParseAddr(mapped); err == nil {
		if class := Classify(ip); class != "" {
			return fmt.Errorf("%w: %s address %s%s", ErrForbidden, class, ip, written)
		}
		return nil
	}
	if ip, ok := parseLooseIPv4(mapped); ok {
		if class := Classify(ip); class != "" {
			return fmt.Errorf("%w: %s address %s (written %s)", ErrForbidden, class, ip, h)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(mapped, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("%w: loopback name %s", ErrForbidden, h)
	}
	return nil
}

// MapHost returns host as net/http dials it: a host that is not plain ASCII
// goes through the IDNA lookup mapping of UTS #46 (full-width characters to
// their ASCII forms, ideographic full stops to dots, upper case to lower,
// then Punycode), as http.Transport does before it resolves or dials; an
// ASCII host is returned as it is, as net/http leaves it. A host the mapping
// refuses (a character no domain name may hold) is an error: net/http would
// refuse to send a request to it. The error never repeats the host.
func MapHost(host string) (string, error) {
	if isASCII(host) {
		return host, nil
	}
	// A zone ("fe80::1%eth0") is not part of a name; net/http maps only
	// names, so an IPv6 literal with a non-ASCII zone is left to fail later.
	mapped, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return "", fmt.Errorf("host is not a valid domain name: %w", err)
	}
	return mapped, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// HostAddr returns the IP address host denotes when it is an IP literal in
// any spelling a dial may take: after MapHost, netip's forms (IPv4 dotted
// quads and IPv6, bracketed or not, with a zone) and inet_aton's ("127.1",
// "0x7f.0x.0x.1", "2130706433", "0177.0.0.1"). ok is false for a host name.
func HostAddr(host string) (addr netip.Addr, ok bool) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	h, err := MapHost(h)
	if err != nil {
		return netip.Addr{}, false
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip, true
	}
	return parseLooseIPv4(h)
}

// endsInNumber reports whether the last label of a host name (a trailing
// dot aside) is a number, decimal or 0x-hex, as the URL standard defines it:
// such a name is an IPv4 address or nothing, since no top-level domain is
// numeric, so one that is not a valid address can never resolve.
func endsInNumber(name string) bool {
	name = strings.TrimSuffix(name, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && (last[:2] == "0x" || last[:2] == "0X") {
		for i := 2; i < len(last); i++ {
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(last[i])) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// parseLooseIPv4 parses the IPv4 spellings that inet_aton (and so glibc's
// resolver, curl and browsers) accept but netip rightly does not: one to four
// parts, each decimal, octal with a leading 0 or hex with 0x, the last part
// filling the remaining bytes ("127.1", "0x7f000001", "017700000001"), and an
// optional trailing dot. A bare "0x" part is zero, as inet_aton reads it
// ("0x7f.0x.0x.1" is 127.0.0.1).
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
		case p == "0x" || p == "0X":
			// inet_aton (and the URL standard) read a bare 0x as zero.
			p = "0"
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
// the scheme must be http or https, the host present, mappable as net/http
// maps it before dialling (MapHost) and not a number that is no IPv4 address,
// and the port, if given, in range; unless allowPrivate, the host must pass
// CheckHost, which applies the same mapping as the Dialer. Every message
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
	// Whatever allowPrivate says, a host that no dial can reach is refused
	// here rather than stored, to fail at every delivery: one net/http
	// cannot map, and a name ending in a number that is no IPv4 address.
	mapped, err := MapHost(host)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if _, ok := HostAddr(mapped); !ok && !strings.Contains(mapped, ":") && endsInNumber(mapped) {
		return errors.New("url: host ends in a number but is not an IPv4 address")
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
