package netguard

import "net/netip"

// Class names returned by Classify. They appear in error messages and the
// API's 400 answers, so they are stable words, not prose.
const (
	classLoopback      = "loopback"
	classPrivate       = "private"
	classLinkLocal     = "link-local"
	classSiteLocal     = "site-local"
	classUnspecified   = "unspecified"
	classMulticast     = "multicast"
	classBroadcast     = "broadcast"
	classCGNAT         = "cgnat"
	classCloudMetadata = "cloud-metadata"
	classReserved      = "reserved"
	classDocumentation = "documentation"
	classInvalid       = "invalid"
)

type addrRange struct {
	prefix netip.Prefix
	class  string
}

// refused lists the ranges no endpoint may point at, most specific first: the
// first match names the class. IPv4-mapped IPv6 addresses are unmapped before
// the lookup, so every IPv4 range covers its ::ffff:a.b.c.d form too.
//
// Left out on purpose: 6to4 (2002::/16) and Teredo (2001::/32), whose
// embedded IPv4 address is reached through a relay on the public Internet
// rather than on this host's network, and the local-use NAT64 prefix
// 64:ff9b:1::/48, whose embedding depends on the site's translator. All three
// are rare enough that a false refusal would cost more than it protects.
var refused = []addrRange{
	// Instance metadata services: the classic SSRF target, as they hand out
	// cloud credentials. Listed before the ranges that contain them so the
	// error says why this address in particular is refused.
	{netip.MustParsePrefix("169.254.169.254/32"), classCloudMetadata}, // AWS, GCP, Azure, DigitalOcean, …
	{netip.MustParsePrefix("100.100.100.200/32"), classCloudMetadata}, // Alibaba Cloud
	{netip.MustParsePrefix("192.0.0.192/32"), classCloudMetadata},     // Oracle Cloud
	{netip.MustParsePrefix("fd00:ec2::254/128"), classCloudMetadata},  // AWS over IPv6
	{netip.MustParsePrefix("168.63.129.16/32"), classCloudMetadata},   // Azure WireServer

	// IPv4.
	{netip.MustParsePrefix("255.255.255.255/32"), classBroadcast},
	// 0.0.0.0/8 is "this network": connecting to any of it reaches this host
	// on Linux, so all of it counts as unspecified, not just 0.0.0.0.
	{netip.MustParsePrefix("0.0.0.0/8"), classUnspecified},
	{netip.MustParsePrefix("127.0.0.0/8"), classLoopback},
	{netip.MustParsePrefix("10.0.0.0/8"), classPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), classPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), classPrivate},
	{netip.MustParsePrefix("169.254.0.0/16"), classLinkLocal},
	{netip.MustParsePrefix("100.64.0.0/10"), classCGNAT},
	{netip.MustParsePrefix("224.0.0.0/4"), classMulticast},
	// Never routed on the Internet, so a public endpoint is never in them, but
	// operators do use them inside networks (198.18.0.0/15 for fake-IP DNS in
	// proxies, 240.0.0.0/4 in some clouds' internal fabric).
	{netip.MustParsePrefix("240.0.0.0/4"), classReserved},
	{netip.MustParsePrefix("192.0.0.0/24"), classReserved},
	{netip.MustParsePrefix("198.18.0.0/15"), classReserved},
	{netip.MustParsePrefix("192.0.2.0/24"), classDocumentation},
	{netip.MustParsePrefix("198.51.100.0/24"), classDocumentation},
	{netip.MustParsePrefix("203.0.113.0/24"), classDocumentation},

	// IPv6.
	{netip.MustParsePrefix("::/128"), classUnspecified},
	{netip.MustParsePrefix("::1/128"), classLoopback},
	// The deprecated IPv4-compatible form ::a.b.c.d; no stack should route it,
	// and one that did might reach the embedded IPv4 address.
	{netip.MustParsePrefix("::/96"), classReserved},
	{netip.MustParsePrefix("fe80::/10"), classLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), classSiteLocal}, // deprecated, but still routed by old internal networks
	{netip.MustParsePrefix("fc00::/7"), classPrivate},    // unique local addresses
	{netip.MustParsePrefix("ff00::/8"), classMulticast},
	{netip.MustParsePrefix("100::/64"), classReserved}, // discard-only
	{netip.MustParsePrefix("2001:db8::/32"), classDocumentation},
	{netip.MustParsePrefix("3fff::/20"), classDocumentation},
}

// nat64 is the well-known NAT64 prefix: 64:ff9b::10.0.0.1 reaches 10.0.0.1
// through the site's translator, so it is judged by the IPv4 address inside.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Classify returns "" for an address an endpoint may point at, or the name of
// the class that refuses it: "loopback", "private", "link-local",
// "site-local", "unspecified", "multicast", "broadcast", "cgnat",
// "cloud-metadata", "reserved", "documentation", or "invalid" for the zero
// Addr. An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is classified as its
// IPv4 address, and a NAT64 one (64:ff9b::10.0.0.1) as the IPv4 address it
// embeds. A zone (fe80::1%eth0) does not change the class.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return classInvalid
	}
	// Prefix.Contains never matches a zoned address, nor a mapped one against
	// an IPv4 prefix: both would slip through the table otherwise.
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		return Classify(netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, r := range refused {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	return ""
}
