package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// base is what every page shows around its content; each page's view
// embeds it.
type base struct {
	Title string
	// Nav names the current section of the navigation.
	Nav   string
	Flash string
	Error string
	// CSRF is the session's token for the page's forms.
	CSRF string
	// LoggedIn shows the logout button (only when a token is configured).
	LoggedIn bool
	Version  string
	// Refresh asks a browser without JavaScript to reload the page after
	// this many seconds (0: never), for progress that scripts poll.
	Refresh int
}

func (b *base) page() *base { return b }

// view is a page's data.
type view interface{ page() *base }

// pages are the parsed templates by page name, each with the layout.
var pages = parsePages()

func parsePages() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n))
	}
	return out
}

// render writes page name with v, completed with the session's CSRF token
// and the footer, rendered in full before anything is sent, so that a
// template error is an error page, not half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	b := v.page()
	se := sessionOf(r)
	b.CSRF = d.sessions.csrf(se)
	b.LoggedIn = d.cfg.Token != "" && se.auth
	b.Version = d.cfg.Version
	if b.Flash == "" {
		b.Flash = flashes[r.URL.Query().Get("done")]
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		d.cfg.Logger.Error("dashboard: render", "page", name, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintln(w, "This page could not be built; the server log has the details.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is a page that only says what went wrong.
type errorView struct {
	base
	Status int
}

// fail answers with an error page: the message and the way back, never a
// stack or a blank page.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := &errorView{Status: status}
	v.Title = http.StatusText(status)
	v.Error = msg
	d.render(w, r, status, "error", v)
}

// failAPI answers with the error page for a failed API call, with the
// API's status (404 for an unknown id, 503 when NATS is away).
func (d *Dashboard) failAPI(w http.ResponseWriter, r *http.Request, err error) {
	d.fail(w, r, statusOf(err), userMessage(err))
}

// statusOf is the status a page answers for a failed API call.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status >= 400 {
		return ae.Status
	}
	return http.StatusBadGateway
}

// flashes are the messages of ?done=… after a form's redirect: fixed
// texts, so that a link cannot make the page say anything else.
var flashes = map[string]string{
	"replayed": "Replay sent: the record is \"replayed\" until the new delivery succeeds, then \"delivered\".",
	"enabled":  "Endpoint enabled: its held deliveries are sent now.",
	"disabled": "Endpoint disabled: its deliveries are held (and dead-lettered if they pass their deadline).",
}

// assets maps a static file's name to its URL with a content hash, so that
// browsers may cache it and still see a new version at once.
var assets = hashAssets()

func hashAssets() map[string]string {
	out := map[string]string{}
	err := fs.WalkDir(staticFS, "static", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "static/")] = "/" + p + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=86400")
		}
		files.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"asset":      func(name string) string { return assets[name] },
	"ts":         timeHTML,
	"badge":      badge,
	"pct":        pct,
	"prettyJSON": prettyJSON,
	"pathEscape": url.PathEscape,
	"query":      query,
	"httpStatus": httpStatus,
	"trunc":      trunc,
	"join":       strings.Join,
	"plural":     plural,
	"inputTime":  inputTime,
	"list":       func(s ...string) []string { return s },
	"dur":        roundDuration,
}

// inputTime is an RFC 3339 time as the value of a datetime-local input, in
// UTC (the page's script shows it in local time).
func inputTime(rfc string) string {
	t, err := time.Parse(time.RFC3339, rfc)
	if err != nil {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05")
}

// timeHTML shows t in UTC, in a <time> element that the page's script
// rewrites to the viewer's local time, keeping UTC on hover.
func timeHTML(v any) template.HTML {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return `<span class="muted">—</span>`
	}
	u := t.UTC()
	utc := u.Format("2006-01-02 15:04:05 UTC")
	return template.HTML(`<time datetime="` + u.Format(time.RFC3339Nano) + `" title="` + utc + `">` + utc + `</time>`)
}

// badge shows a status or state word in its colour.
func badge(s string) template.HTML {
	if s == "" {
		return `<span class="muted">—</span>`
	}
	class := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '_' {
			return r
		}
		return -1
	}, s)
	text := template.HTMLEscapeString(strings.ReplaceAll(s, "_", " "))
	return template.HTML(`<span class="badge b-` + class + `">` + text + `</span>`)
}

// roundDuration shows a Go duration string to about three digits
// ("6.856305ms" as "6.86ms"); anything else as it is.
func roundDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

func pct(ok, n int) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%d %%", (ok*100+n/2)/n)
}

func prettyJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// query is "?k=v&…" of the pairs whose value is not empty ("" when none).
func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func httpStatus(code int) string {
	if code == 0 {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}

func trunc(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
