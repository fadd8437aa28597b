package dashboard

import (
	"strings"
	"testing"
	"time"
)

func TestSessionCookies(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newSessions("tok", time.Hour, clock)
	se := s.fresh(true)
	v := s.encode(se)
	if strings.Contains(v, "tok") {
		t.Fatalf("cookie %q holds the token", v)
	}
	if got, ok := s.decode(v); !ok || got.id != se.id || !got.auth {
		t.Fatalf("decode(encode) = %+v, %v", got, ok)
	}

	// Another process with the same token accepts it; one with another
	// token, or none, does not.
	if _, ok := newSessions("tok", time.Hour, clock).decode(v); !ok {
		t.Error("another process with the same token refused the session")
	}
	for _, other := range []*sessions{newSessions("other", time.Hour, clock), newSessions("", time.Hour, clock)} {
		if _, ok := other.decode(v); ok {
			t.Error("a process with another key accepted the session")
		}
	}

	// Any change to the signed part is refused: the flag above all.
	forged := strings.Replace(v, ".a.", ".n.", 1)
	if _, ok := s.decode(forged); ok {
		t.Error("a changed flag was accepted")
	}
	anon := s.encode(s.fresh(false))
	if _, ok := s.decode(strings.Replace(anon, ".n.", ".a.", 1)); ok {
		t.Error("an anonymous session made authenticated was accepted")
	}
	for _, bad := range []string{"", ".", "v1", v + "x", "v2" + v[2:], strings.Replace(v, "v1.", "v1..", 1)} {
		if _, ok := s.decode(bad); ok {
			t.Errorf("decode(%q) accepted", bad)
		}
	}

	// Expiry and logout.
	late := newSessions("tok", time.Hour, func() time.Time { return now.Add(time.Hour) })
	if _, ok := late.decode(v); ok {
		t.Error("an expired session was accepted")
	}
	s.revoke(se)
	if _, ok := s.decode(v); ok {
		t.Error("a logged-out session was accepted")
	}

	// CSRF tokens are per session.
	a, b := s.fresh(true), s.fresh(true)
	if !s.checkCSRF(a, s.csrf(a)) || s.checkCSRF(a, s.csrf(b)) || s.checkCSRF(a, "") {
		t.Error("CSRF tokens are not bound to their session")
	}
}

func TestRevokedIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	s := newSessions("tok", time.Hour, func() time.Time { return now })
	for range maxRevoked + 10 {
		s.revoke(s.fresh(true))
	}
	if n := len(s.revoked); n > maxRevoked {
		t.Fatalf("%d logged-out sessions remembered, want at most %d", n, maxRevoked)
	}
}

func TestTokenMatches(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]bool{"tok": true, "to": false, "tokk": false, "": false, "TOK": false} {
		if tokenMatches(got, "tok") != want {
			t.Errorf("tokenMatches(%q, tok) = %v", got, !want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/dlq?state=dead": "/dlq?state=dead", "/": "/", "": "/", "dlq": "/",
		"//evil.example": "/", "/\\evil.example": "/", "https://evil.example/": "/", "javascript:alert(1)": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRoundDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"6.856305ms": "6.86ms", "497.722µs": "498µs", "1.234567s": "1.23s", "2m3.456s": "2m3.46s", "x": "x", "0s": "0s",
	} {
		if got := roundDuration(in); got != want {
			t.Errorf("roundDuration(%q) = %q, want %q", in, got, want)
		}
	}
}
