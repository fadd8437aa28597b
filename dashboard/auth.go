package dashboard

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// maxFormBytes bounds a form's body; the dashboard's forms are small.
const maxFormBytes = 64 << 10

type sessionKey struct{}

// sessionOf is the request's session, set by withSession; the zero session
// (anonymous) outside it.
func sessionOf(r *http.Request) session {
	se, _ := r.Context().Value(sessionKey{}).(session)
	return se
}

// open serves h to anyone (the login form), with a session.
func (d *Dashboard) open(h http.HandlerFunc) http.Handler { return d.withSession(h, false) }

// protected serves h to a logged-in session (any session when no token is
// configured) and sends others to the login form.
func (d *Dashboard) protected(h http.HandlerFunc) http.Handler { return d.withSession(h, true) }

// withSession gives the request a session (a new anonymous one when its
// cookie is missing, expired or forged) and guards state changes: a POST
// must come from this origin (Sec-Fetch-Site, else Origin, checked by
// http.CrossOriginProtection) and carry its session's CSRF token.
func (d *Dashboard) withSession(h http.HandlerFunc, needAuth bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		se, had := d.sessions.read(r)
		if !had {
			// The browser may hold a session it did not send: SameSite=Strict
			// keeps it off requests that another site started. A new cookie
			// would replace it, so another site could log the user out. A
			// POST without one never gets one (it cannot pass the CSRF check
			// anyway); a GET from another site is sent on to the same URL from
			// this origin, which does send the cookie.
			switch site := r.Header.Get("Sec-Fetch-Site"); {
			case r.Method != http.MethodGet && r.Method != http.MethodHead:
				se = session{}
			case site == "cross-site" || site == "same-site":
				hop(w, r)
				return
			default:
				se = d.sessions.fresh(d.cfg.Token == "")
				http.SetCookie(w, d.sessions.cookie(r, se))
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, se))
		post := r.Method == http.MethodPost
		if post {
			if err := d.origins.Check(r); err != nil {
				d.cfg.Logger.Warn("dashboard: cross-origin form refused", "path", r.URL.Path,
					"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
				d.fail(w, r, http.StatusForbidden, "This form was sent from another site, so it was refused. "+
					"Open the dashboard itself and use its forms.")
				return
			}
		}
		if needAuth && !se.auth {
			next := "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if post {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !had || !d.sessions.checkCSRF(se, r.PostFormValue("csrf")) {
				d.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this dashboard. "+
					"Reload the page and try again.")
				return
			}
		}
		h(w, r)
	})
}

// hopPage reloads its URL at once, from this origin.
var hopPage = template.Must(template.New("hop").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={{.}}">
<title>hookstream</title></head><body><p><a href="{{.}}">Open the hookstream dashboard</a></p></body></html>
`))

func hop(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = hopPage.Execute(w, r.URL.RequestURI())
}

// loginView is the login page.
type loginView struct {
	base
	Next string
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if d.cfg.Token == "" || sessionOf(r).auth {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	v := &loginView{Next: next}
	if r.URL.Query().Get("out") != "" {
		v.Flash = "You are logged out."
	}
	d.render(w, r, http.StatusOK, "login", v)
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if d.cfg.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !tokenMatches(r.PostFormValue("token"), d.cfg.Token) {
		d.cfg.Logger.Warn("dashboard: login refused", "remote", r.RemoteAddr)
		v := &loginView{Next: next}
		v.Error = "That is not the API token. It is the value of --api-token (HOOKSTREAM_API_TOKEN) on the server."
		d.render(w, r, http.StatusUnauthorized, "login", v)
		return
	}
	// A new id on login, so that a session id seen before it is worth
	// nothing after.
	se := d.sessions.fresh(true)
	http.SetCookie(w, d.sessions.cookie(r, se))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	// Only a login is worth remembering as ended; without a token there is
	// none, and an anonymous session grants nothing.
	if se := sessionOf(r); se.auth && d.cfg.Token != "" {
		d.sessions.revoke(se)
	}
	http.SetCookie(w, d.sessions.cookie(r, d.sessions.fresh(d.cfg.Token == "")))
	if d.cfg.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}

// safeNext is where to go after login: a path on this site, "/" for
// anything else (an open redirect would let a link send a fresh login to
// another site).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}
