package netguard_test

import (
	"net/netip"
	"testing"

	"github.com/hookstream/hookstream/netguard"
)

func TestClassify(t *testing.T) {
	t.Parallel()

	tests := []struct {
		addr string
		want string
	}{
		// Public: allowed.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.216.34", ""},
		{"2606:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::8.8.8.8", ""}, // NAT64 of a public address is how IPv6-only hosts reach it
		{"2002:a00:1::1", ""},    // 6to4: left out on purpose
		{"2001:0:a00:1::1", ""},  // Teredo: left out on purpose
		{"172.32.0.1", ""},       // just past 172.16.0.0/12
		{"100.128.0.1", ""},      // just past 100.64.0.0/10
		{"169.253.255.255", ""},
		{"223.255.255.255", ""},

		// Loopback.
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"64:ff9b::127.0.0.1", "loopback"},

		// Private.
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:192.168.0.1", "private"},
		{"64:ff9b::10.0.0.1", "private"},
		{"64:ff9b::c0a8:101", "private"},
		{"fc00::1", "private"},
		{"fd12:3456:789a::1", "private"},

		// Link-local.
		{"169.254.0.1", "link-local"},
		{"::ffff:169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},

		// Site-local (deprecated, still refused).
		{"fec0::1", "site-local"},

		// Unspecified, and the rest of "this network".
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"::ffff:0.0.0.0", "unspecified"},

		// Multicast.
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"::ffff:224.0.0.251", "multicast"},

		// Broadcast.
		{"255.255.255.255", "broadcast"},
		{"::ffff:255.255.255.255", "broadcast"},

		// CGNAT.
		{"100.64.0.1", "cgnat"},
		{"100.127.255.254", "cgnat"},
		{"::ffff:100.64.0.1", "cgnat"},

		// Cloud metadata, ahead of the link-local, CGNAT and ULA ranges holding them.
		{"169.254.169.254", "cloud-metadata"},
		{"::ffff:169.254.169.254", "cloud-metadata"},
		{"64:ff9b::169.254.169.254", "cloud-metadata"},
		{"fd00:ec2::254", "cloud-metadata"},
		{"100.100.100.200", "cloud-metadata"},
		{"192.0.0.192", "cloud-metadata"},

		// Reserved and documentation ranges.
		{"240.0.0.1", "reserved"},
		{"198.18.0.1", "reserved"},
		{"192.0.0.1", "reserved"},
		{"::7f00:1", "reserved"}, // IPv4-compatible ::127.0.0.1
		{"100::1", "reserved"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.1", "documentation"},
		{"2001:db8::1", "documentation"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()

			if got := netguard.Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Fatalf("Classify(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestClassifyZeroAddr(t *testing.T) {
	t.Parallel()

	if got := netguard.Classify(netip.Addr{}); got == "" {
		t.Fatal("the zero Addr is allowed, want it refused")
	}
}
