package netguard_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/netguard"
)

func TestCheckHost(t *testing.T) {
	t.Parallel()

	tests := []struct {
		host    string
		wantMsg string // "" when allowed
	}{
		{"example.com", ""},
		{"hooks.example.com.", ""},
		{"8.8.8.8", ""},
		{"2606:4700::1111", ""},
		{"[2606:4700::1111]", ""},
		{"0x08080808", ""}, // a public address, however spelled
		{"mylocalhost.example", ""},
		{"127.0.0.1", "address not allowed: loopback address 127.0.0.1"},
		{"::1", "loopback address ::1"},
		{"[::1]", "loopback address ::1"},
		{"[::ffff:10.0.0.1]", "private address ::ffff:10.0.0.1"},
		{"[fe80::1%eth0]", "link-local address fe80::1"},
		{"169.254.169.254", "cloud-metadata address 169.254.169.254"},
		{"100.64.0.1", "cgnat address"},
		{"0.0.0.0", "unspecified address"},
		{"255.255.255.255", "broadcast address"},
		{"localhost", "loopback name localhost"},
		{"LocalHost.", "loopback name"},
		{"api.localhost", "loopback name"},
		{"", "empty host"},
		{"[]", "empty host"},
		// inet_aton spellings that glibc, curl and browsers resolve without DNS.
		{"127.1", "loopback address 127.0.0.1 (written 127.1)"},
		{"2130706433", "loopback address 127.0.0.1"},
		{"0x7f000001", "loopback address 127.0.0.1"},
		{"0x7f.0.0.1", "loopback address 127.0.0.1"},
		{"017700000001", "loopback address 127.0.0.1"},
		{"0177.0.0.1", "loopback address 127.0.0.1"},
		{"10.1", "private address 10.0.0.1"},
		{"192.168.257", "private address 192.168.1.1"},
		{"127.0.0.1.", "loopback address 127.0.0.1"},
		{"0", "unspecified address 0.0.0.0"},
		{"0x7f.0x.0x.1", "loopback address 127.0.0.1 (written 0x7f.0x.0x.1)"}, // a bare 0x is zero
		{"0x.0x.0x.0x", "unspecified address 0.0.0.0"},
		// Mapped as net/http maps a host before it dials (IDNA, UTS #46).
		{"１２７.０.０.１", "loopback address 127.0.0.1 (written １２７.０.０.１)"},
		{"１２７。０。０。１", "loopback address 127.0.0.1"}, // ideographic full stops
		{"１２７.１", "loopback address 127.0.0.1"},
		{"０ｘ７ｆ.1", "loopback address 127.0.0.1"},
		{"１６９.２５４.１６９.２５４", "cloud-metadata address 169.254.169.254"},
		{"ｌｏｃａｌｈｏｓｔ", "loopback name"},
		{"api.ＬＯＣＡＬＨＯＳＴ", "loopback name"},
		{"ｅｘａｍｐｌｅ.com", ""},
		{"bücher.example", ""},
		// Not IPv4 in any spelling: host names, checked at dial time.
		{"127.0.0.1.example", ""},
		{"1.2.3.4.5", ""},
		{"256.1.1.1", ""},
		{"0xfg.1", ""},
		{"09.1.1.1", ""}, // 09 is not octal
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()

			err := netguard.CheckHost(tt.host)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckHost(%q) = %v, want nil", tt.host, err)
				}
				return
			}
			if !errors.Is(err, netguard.ErrForbidden) {
				t.Fatalf("CheckHost(%q) = %v, want an error wrapping ErrForbidden", tt.host, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		wantMsg      string // "" when accepted
		forbidden    bool   // the error wraps ErrForbidden
	}{
		{name: "https", url: "https://hooks.example.com/in?x=1"},
		{name: "http with port", url: "http://hooks.example.com:8080/in"},
		{name: "upper-case scheme", url: "HTTPS://hooks.example.com/"},
		{name: "public literal", url: "https://8.8.8.8/"},
		{name: "public v6 literal", url: "https://[2606:4700::1111]:443/"},
		{name: "credentials", url: "https://user:pass@hooks.example.com/"},
		{name: "ftp scheme", url: "ftp://hooks.example.com/", wantMsg: "url: scheme must be http or https"},
		{name: "no scheme", url: "hooks.example.com/in", wantMsg: "url: scheme must be http or https"},
		{name: "javascript", url: "javascript:alert(1)", wantMsg: "url: scheme must be http or https"},
		{name: "missing host", url: "https:///path", wantMsg: "url: host required"},
		{name: "opaque", url: "http:hooks.example.com", wantMsg: "url: host required"},
		{name: "port only", url: "http://:8080/", wantMsg: "url: host required"},
		{name: "port zero", url: "http://hooks.example.com:0/", wantMsg: "url: port 0 out of range"},
		{name: "port too big", url: "http://hooks.example.com:65536/", wantMsg: "url: port 65536 out of range"},
		{name: "unparsable", url: "http://[::1/", wantMsg: "url: "},
		{
			name:    "unparsable without echoing credentials",
			url:     "http://user:s3cret@host:port/",
			wantMsg: "url: invalid port",
		},
		{name: "literal loopback", url: "http://127.0.0.1:8080/", wantMsg: "url: address not allowed: loopback address 127.0.0.1", forbidden: true},
		{name: "literal private", url: "https://10.0.0.5/hook", wantMsg: "url: address not allowed: private address 10.0.0.5", forbidden: true},
		{name: "literal v6 loopback", url: "http://[::1]/", wantMsg: "loopback address ::1", forbidden: true},
		{name: "literal mapped private", url: "http://[::ffff:192.168.0.1]/", wantMsg: "private address ::ffff:192.168.0.1", forbidden: true},
		{name: "literal zoned link-local", url: "http://[fe80::1%25eth0]/", wantMsg: "link-local address", forbidden: true},
		{name: "metadata", url: "http://169.254.169.254/latest/meta-data/", wantMsg: "cloud-metadata", forbidden: true},
		{name: "localhost", url: "http://localhost:3000/", wantMsg: "loopback name localhost", forbidden: true},
		{name: "decimal loopback", url: "http://2130706433/", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		// The spellings a dial maps to a refused address are refused at
		// creation too, not stored to fail at every delivery.
		{name: "full-width loopback", url: "http://１２７.０.０.１/", wantMsg: "url: address not allowed: loopback address 127.0.0.1", forbidden: true},
		{name: "full-width with port", url: "http://１２７.０.０.１:8080/hook", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		{name: "escaped full-width", url: "http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		{name: "full-width metadata", url: "http://１６９.２５４.１６９.２５４/latest/", wantMsg: "cloud-metadata", forbidden: true},
		{name: "full-width localhost", url: "http://ｌｏｃａｌｈｏｓｔ:3000/", wantMsg: "loopback name", forbidden: true},
		{name: "bare 0x parts", url: "http://0x7f.0x.0x.1/", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		{name: "short loopback", url: "http://127.1/", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		{name: "octal loopback", url: "http://0177.0.0.1/", wantMsg: "loopback address 127.0.0.1", forbidden: true},
		{name: "international name", url: "https://bücher.example/hook"},
		{name: "full-width name", url: "https://ｈｏｏｋｓ.example.com/"},
		{name: "unmappable host", url: "http://exa%E2%80%AEmple.com/", wantMsg: "url: host is not a valid domain name"},
		{name: "unmappable host with allowPrivate", url: "http://exa%E2%80%AEmple.com/", allowPrivate: true, wantMsg: "url: host is not a valid domain name"},
		{name: "number that is no address", url: "http://256.1.1.1/", wantMsg: "url: host ends in a number but is not an IPv4 address"},
		{name: "five parts", url: "http://1.2.3.4.5/", wantMsg: "ends in a number"},
		{name: "bad hex part", url: "http://0xfg.1/", allowPrivate: true, wantMsg: "ends in a number"},
		{name: "bad octal part", url: "http://09.1.1.1/", allowPrivate: true, wantMsg: "ends in a number"},
		{name: "name ending in a hex number", url: "http://hooks.0x1g/", wantMsg: ""},
		{name: "allowPrivate allows full-width loopback", url: "http://１２７.０.０.１/", allowPrivate: true},
		{name: "allowPrivate allows private", url: "http://10.0.0.5/hook", allowPrivate: true},
		{name: "allowPrivate allows loopback", url: "http://127.0.0.1:8080/", allowPrivate: true},
		{name: "allowPrivate allows localhost", url: "http://localhost:3000/", allowPrivate: true},
		{name: "allowPrivate still checks scheme", url: "file:///etc/passwd", allowPrivate: true, wantMsg: "url: scheme must be http or https"},
		{name: "allowPrivate still wants a host", url: "http:///", allowPrivate: true, wantMsg: "url: host required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := netguard.CheckURL(tt.url, tt.allowPrivate)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tt.url, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckURL(%q) = nil, want an error saying %q", tt.url, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "url: ") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not start with \"url: \" and say %q", err, tt.wantMsg)
			}
			if errors.Is(err, netguard.ErrForbidden) != tt.forbidden {
				t.Errorf("errors.Is(%v, ErrForbidden) = %t, want %t", err, !tt.forbidden, tt.forbidden)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q repeats the URL's password", err)
			}
		})
	}
}
