package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie's name.
const cookieName = "hookstream_session"

// maxRevoked bounds the logged-out sessions remembered until they expire.
const maxRevoked = 10000

// session is one browser's session. Every visitor has one, signed, in a
// cookie: anonymous until it logs in (or authenticated from the start when
// no token is configured), so that even the login form has a CSRF token.
// The cookie holds the session's id, expiry and flag and their HMAC, never
// the token.
type session struct {
	id   string
	exp  time.Time
	auth bool
}

// sessions signs and checks session cookies and the CSRF tokens bound to
// them.
//
// With a token, the signing key is derived from it, so that every api
// process with the same token accepts the same sessions (several api
// replicas behind one address) and a new token ends every session. Without
// one, the key is random per process: a session then only binds CSRF
// tokens, and a restart starts new ones.
type sessions struct {
	key []byte
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // logged-out session ids until their expiry
}

func newSessions(token string, ttl time.Duration, now func() time.Time) *sessions {
	var key []byte
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("hookstream dashboard session key v1"))
		key = m.Sum(nil)
	} else {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails (crypto/rand)
	}
	return &sessions{key: key, ttl: ttl, now: now, revoked: map[string]time.Time{}}
}

// fresh is a new session with a new random id.
func (s *sessions) fresh(auth bool) session {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return session{id: base64.RawURLEncoding.EncodeToString(b), exp: s.now().Add(s.ttl).Truncate(time.Second), auth: auth}
}

// encode is a session's cookie value: v1.<id>.<expiry unix>.<a|n>.<mac>.
func (s *sessions) encode(se session) string {
	flag := "n"
	if se.auth {
		flag = "a"
	}
	payload := "v1." + se.id + "." + strconv.FormatInt(se.exp.Unix(), 10) + "." + flag
	return payload + "." + s.mac("session|"+payload)
}

// decode checks a cookie value: well-formed, signed by this key, not
// expired, not logged out.
func (s *sessions) decode(v string) (session, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return session{}, false
	}
	payload, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(s.mac("session|"+payload))) {
		return session{}, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 4 || parts[0] != "v1" || (parts[3] != "a" && parts[3] != "n") {
		return session{}, false
	}
	unix, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return session{}, false
	}
	se := session{id: parts[1], exp: time.Unix(unix, 0), auth: parts[3] == "a"}
	if !s.now().Before(se.exp) || s.isRevoked(se.id) {
		return session{}, false
	}
	return se, true
}

// read is the request's valid session, if it has one.
func (s *sessions) read(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	return s.decode(c.Value)
}

// cookie is the Set-Cookie for se. It is Secure when the request came over
// TLS, directly or through a proxy that says so in X-Forwarded-Proto (a
// client that forges that header only keeps its own cookie off plain
// HTTP).
func (s *sessions) cookie(r *http.Request, se session) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName,
		Value:    s.encode(se),
		Path:     "/",
		Expires:  se.exp,
		MaxAge:   int(se.exp.Sub(s.now()).Seconds()),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   overTLS(r),
	}
}

func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// revoke ends se in this process (logout). Other processes still accept
// its cookie, which the browser no longer has, until it expires.
func (s *sessions) revoke(se session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, exp := range s.revoked {
		if !now.Before(exp) {
			delete(s.revoked, id)
		}
	}
	if len(s.revoked) >= maxRevoked {
		// Forget the one closest to expiring: it is the least useful.
		first := ""
		for id, exp := range s.revoked {
			if first == "" || exp.Before(s.revoked[first]) {
				first = id
			}
		}
		delete(s.revoked, first)
	}
	s.revoked[se.id] = se.exp
}

func (s *sessions) isRevoked(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[id]
	return ok
}

// csrf is the CSRF token of se's forms.
func (s *sessions) csrf(se session) string { return s.mac("csrf|" + se.id) }

// checkCSRF compares a form's token with se's in constant time.
func (s *sessions) checkCSRF(se session, got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf(se))) == 1
}

func (s *sessions) mac(msg string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenMatches compares a submitted token with the configured one in
// constant time; hashing both first keeps even their lengths from showing.
func tokenMatches(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
