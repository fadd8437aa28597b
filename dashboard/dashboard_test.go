package dashboard_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hookstream/hookstream/dashboard"
)

const testToken = "t0ken-for-tests"

var quiet = slog.New(slog.DiscardHandler)

// fakeAPI is a /v1 handler with canned answers that records what the
// dashboard asked. It checks the bearer token as the real server does.
type fakeAPI struct {
	t     *testing.T
	token string

	mu     sync.Mutex
	calls  []call
	answer map[string]fakeAnswer // "METHOD /path" → answer
}

type call struct {
	Method, Path string
	Query        url.Values
	Body         string
	Auth         string
}

type fakeAnswer struct {
	status int
	body   any
}

func newFakeAPI(t *testing.T, token string) *fakeAPI {
	f := &fakeAPI{t: t, token: token, answer: map[string]fakeAnswer{}}
	ep := map[string]any{
		"id": "ep_one", "url": "https://hooks.example.com/in", "event_types": []string{"order.*"},
		"description": "<script>alert(1)</script>", "status": "failing", "status_reason": "5 consecutive failures",
		"status_since": "2025-03-04T05:06:07Z", "created_at": "2025-03-01T00:00:00Z", "updated_at": "2025-03-01T00:00:00Z",
	}
	f.set("GET /v1/endpoints", 200, map[string]any{"items": []any{ep}, "next_cursor": ""})
	f.set("GET /v1/endpoints/ep_one", 200, ep)
	f.set("GET /v1/endpoints/ep_one/attempts", 200, map[string]any{"items": []any{
		map[string]any{"event_id": "po-2", "event_type": "order.created", "attempt": 2, "time": "2025-03-04T05:06:07Z",
			"duration": "1.5s", "status_code": 503, "response_body": "try later"},
		map[string]any{"event_id": "po-1", "event_type": "order.created", "attempt": 1, "time": "2025-03-04T05:00:00Z",
			"duration": "20ms", "status_code": 200},
	}, "next_cursor": ""})
	f.set("POST /v1/endpoints/ep_one/rotate-secret", 200, map[string]any{"id": "ep_one", "secret": "whsec_NEWSECRETvalue="})
	f.set("POST /v1/endpoints/ep_one/disable", 200, ep)
	rec := map[string]any{
		"id": "dl_1", "state": "dead", "reason": "expired", "endpoint_id": "ep_one", "url": "https://hooks.example.com/in",
		"event":         map[string]any{"id": "po-2", "type": "order.created", "source": "erp", "time": "2025-03-04T05:00:00Z", "data": map[string]any{"n": 1}},
		"attempts":      []any{map[string]any{"attempt": 1, "time": "2025-03-04T05:06:07Z", "duration": "1s", "status_code": 500}},
		"attempt_count": 1, "dead_at": "2025-03-04T06:00:00Z",
	}
	f.set("GET /v1/dlq", 200, map[string]any{"items": []any{rec}, "next_cursor": ""})
	f.set("GET /v1/dlq/dl_1", 200, rec)
	f.set("POST /v1/dlq/dl_1/replay", 202, rec)
	f.set("POST /v1/dlq/replay", 202, map[string]any{"job": "job_7", "matched": 1})
	f.set("GET /v1/dlq/replays/job_7", 200, map[string]any{"job": "job_7", "state": "running", "matched": 4, "replayed": 1,
		"created_at": "2025-03-04T06:00:00Z", "updated_at": "2025-03-04T06:00:01Z"})
	f.set("GET /v1/sources", 200, map[string]any{"items": []any{map[string]any{
		"id": "erp", "changes_url": "https://erp.example.com/changes", "status": "unreachable", "last_error": "source unreachable: 502",
		"cursor": "c-42", "interval": "1m0s", "expected_window": "15m0s", "failures": 3, "next_poll": "2025-03-04T06:30:00Z",
	}}, "next_cursor": ""})
	return f
}

func (f *fakeAPI) set(route string, status int, body any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[route] = fakeAnswer{status, body}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, call{r.Method, r.URL.EscapedPath(), r.URL.Query(), string(body), r.Header.Get("Authorization")})
	a, ok := f.answer[r.Method+" "+r.URL.Path]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"authorization: a valid bearer token is required"}`)
		return
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no " + r.URL.Path})
		return
	}
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(a.body)
}

// callsTo is the recorded calls of method path (escaped, as sent).
func (f *fakeAPI) callsTo(method, path string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Method == method && c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t    *testing.T
	srv  *httptest.Server
	c    *http.Client
	jar  *cookiejar.Jar
	last string // the body of the last page, for failure messages
}

func setup(t *testing.T, token string) (*fakeAPI, *browser) {
	t.Helper()
	api := newFakeAPI(t, token)
	d := dashboard.New(dashboard.Config{API: api, Token: token, Logger: quiet, Version: "v-test"})
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return api, &browser{t: t, srv: srv, c: c, jar: jar}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) answer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	b.last = string(body)
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as a same-origin browser form would (Origin and
// Sec-Fetch-Site set), plus any extra headers.
func (b *browser) post(path string, form url.Values, header ...string) answer {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	a := b.get(path)
	m := csrfRE.FindStringSubmatch(a.body)
	if m == nil {
		b.t.Fatalf("GET %s (%d): no csrf field in %s", path, a.status, a.body)
	}
	return m[1]
}

func (b *browser) sessionCookie() *http.Cookie {
	u, _ := url.Parse(b.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "hookstream_session" {
			return c
		}
	}
	return nil
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, body)
		}
	}
}

func TestPagesOpenWithoutToken(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	a := b.get("/")
	if a.status != http.StatusOK {
		t.Fatalf("GET / = %d: %s", a.status, a.body)
	}
	mustContain(t, "overview", a.body,
		"ep_one", "https://hooks.example.com/in", // endpoint and URL
		`badge b-failing`,                 // status
		"50 %",                            // one of the two attempts succeeded
		`datetime="2025-03-04T05:06:07Z"`, // last attempt, as a local-time <time>
		`/dlq?reason=expired&amp;state=dead`, "erp", `badge b-unreachable`)
	if strings.Contains(a.body, "Log out") {
		t.Error("a logout button without a token")
	}
	if ct := a.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content-type %q", ct)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	var sc *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "hookstream_session" {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", sc)
	}
	if got := api.callsTo("GET", "/v1/endpoints/ep_one/attempts"); len(got) != 1 || got[0].Auth != "" {
		t.Errorf("attempt calls %+v: want one, without a token", got)
	}
	if got := api.callsTo("GET", "/v1/dlq"); len(got) != 1 || got[0].Query.Get("state") != "dead" {
		t.Errorf("dlq count calls %+v: want one for state=dead", got)
	}
}

func TestCookieSecureBehindTLS(t *testing.T) {
	t.Parallel()
	_, b := setup(t, testToken)
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/login", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	a := b.do(req)
	cs := (&http.Response{Header: a.header}).Cookies()
	if len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookies %+v: want one Secure, HttpOnly, SameSite=Strict", cs)
	}
	if strings.Contains(cs[0].Value, testToken) {
		t.Fatal("the cookie holds the token")
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	api, b := setup(t, testToken)
	a := b.get("/dlq?state=dead")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/login?next="+url.QueryEscape("/dlq?state=dead") {
		t.Fatalf("GET /dlq before login = %d to %q, want 303 to the login form", a.status, a.header.Get("Location"))
	}
	if n := len(api.callsTo("GET", "/v1/dlq")); n != 0 {
		t.Fatalf("the API was called %d times before login", n)
	}
	csrf := b.csrf("/login?next=%2Fdlq%3Fstate%3Ddead")
	anon := b.sessionCookie()

	a = b.post("/login", url.Values{"csrf": {csrf}, "token": {"wrong"}, "next": {"/dlq?state=dead"}})
	if a.status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", a.status)
	}
	mustContain(t, "wrong token", a.body, "That is not the API token", `name="token"`)
	if a := b.get("/"); a.status != http.StatusSeeOther {
		t.Fatalf("after a wrong token GET / = %d, want a redirect to login", a.status)
	}

	a = b.post("/login", url.Values{"csrf": {csrf}, "token": {testToken}, "next": {"/dlq?state=dead"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/dlq?state=dead" {
		t.Fatalf("login = %d to %q, want 303 to /dlq?state=dead", a.status, a.header.Get("Location"))
	}
	if c := b.sessionCookie(); c == nil || c.Value == anon.Value {
		t.Fatal("login kept the anonymous session's cookie")
	}
	a = b.get("/dlq?state=dead")
	if a.status != http.StatusOK {
		t.Fatalf("GET /dlq after login = %d", a.status)
	}
	mustContain(t, "dlq", a.body, "dl_1", "Log out")
	for _, c := range api.callsTo("GET", "/v1/dlq") {
		if c.Auth != "Bearer "+testToken {
			t.Errorf("API called with Authorization %q", c.Auth)
		}
	}

	loggedIn := b.sessionCookie()
	a = b.post("/logout", url.Values{"csrf": {csrfRE.FindStringSubmatch(a.body)[1]}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/login?out=1" {
		t.Fatalf("logout = %d to %q", a.status, a.header.Get("Location"))
	}
	// The logged-out cookie is worth nothing even if it was kept.
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: loggedIn.Name, Value: loggedIn.Value})
	if a := (&browser{t: t, c: &http.Client{CheckRedirect: b.c.CheckRedirect}}).do(req); a.status != http.StatusSeeOther {
		t.Fatalf("GET / with the logged-out cookie = %d, want a redirect to login", a.status)
	}
}

func TestLoginRefusesOtherSitesNext(t *testing.T) {
	t.Parallel()
	_, b := setup(t, testToken)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		b.jar, _ = cookiejar.New(nil) // a new visitor each time
		b.c.Jar = b.jar
		a := b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "token": {testToken}, "next": {next}})
		if a.status != http.StatusSeeOther || a.header.Get("Location") != "/" {
			t.Errorf("next %q: %d to %q, want 303 to /", next, a.status, a.header.Get("Location"))
		}
	}
}

func TestStateChangesNeedCSRFAndSameOrigin(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	csrf := b.csrf("/dlq")
	_, other := setup(t, "")
	otherCSRF := other.csrf("/dlq")

	refused := []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {"x" + csrf[1:]}}, nil},
		{"another session's token", url.Values{"csrf": {otherCSRF}}, nil},
		{"cross-site", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site other origin", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "same-site"}},
		{"other Origin", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	}
	for _, tc := range refused {
		a := b.post("/dlq/dl_1/replay", tc.form, tc.header...)
		if a.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, a.status)
			continue
		}
		mustContain(t, tc.name, a.body, `role="alert"`, "Back to the overview")
	}
	if n := len(api.callsTo("POST", "/v1/dlq/dl_1/replay")); n != 0 {
		t.Fatalf("%d replays reached the API from refused forms", n)
	}
	a := b.post("/dlq/dl_1/replay", url.Values{"csrf": {csrf}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/dlq/dl_1?done=replayed" {
		t.Fatalf("replay = %d to %q", a.status, a.header.Get("Location"))
	}
	if n := len(api.callsTo("POST", "/v1/dlq/dl_1/replay")); n != 1 {
		t.Fatalf("%d replays reached the API, want 1", n)
	}
	a = b.get("/dlq/dl_1?done=replayed")
	mustContain(t, "after replay", a.body, "Replay sent")
}

func TestAPIErrorsAreMessages(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	api.set("GET /v1/endpoints", 503, map[string]string{"error": "nats: no responders"})
	api.set("GET /v1/dlq", 400, map[string]string{"error": "type: must be an event type or a prefix such as order.*, got \"Bad\""})
	a := b.get("/")
	if a.status != http.StatusOK {
		t.Fatalf("overview with the endpoints failing = %d", a.status)
	}
	mustContain(t, "overview", a.body, "hookstream cannot reach NATS right now (nats: no responders)", "erp")

	a = b.get("/dlq?type=Bad")
	if a.status != http.StatusBadRequest {
		t.Errorf("dlq with a bad filter = %d, want 400", a.status)
	}
	mustContain(t, "dlq", a.body, "Type: must be an event type", `value="Bad"`)

	a = b.get("/dlq/dl_missing")
	if a.status != http.StatusNotFound {
		t.Errorf("unknown record = %d, want 404", a.status)
	}
	mustContain(t, "unknown record", a.body, "No /v1/dlq/dl_missing.", "Back to the overview")

	a = b.get("/no/such/page")
	if a.status != http.StatusNotFound {
		t.Errorf("unknown page = %d", a.status)
	}

	api.set("POST /v1/dlq/dl_1/replay", 409, map[string]string{"error": "dl_1: already replayed"})
	a = b.post("/dlq/dl_1/replay", url.Values{"csrf": {b.csrf("/dlq/dl_1")}})
	if a.status != http.StatusConflict {
		t.Errorf("a second replay = %d, want the API's 409", a.status)
	}
	mustContain(t, "second replay", a.body, "Dl_1: already replayed.", "dl_1")
}

func TestTextIsEscaped(t *testing.T) {
	t.Parallel()
	_, b := setup(t, "")
	a := b.get("/endpoints/ep_one")
	if strings.Contains(a.body, "<script>alert") {
		t.Fatal("the endpoint's description was not escaped")
	}
	mustContain(t, "endpoint", a.body, "&lt;script&gt;alert(1)&lt;/script&gt;")
}

func TestEndpointPage(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	api.set("GET /v1/events/endpoint.status_changed:ep_one:1", 200, map[string]any{"id": "endpoint.status_changed:ep_one:1",
		"data": map[string]any{"from": "healthy", "to": "failing", "reason": "5 consecutive failures", "since": "2025-03-04T05:06:07Z"}})
	a := b.get("/endpoints/ep_one")
	if a.status != http.StatusOK {
		t.Fatalf("endpoint page = %d", a.status)
	}
	mustContain(t, "endpoint", a.body, "https://hooks.example.com/in", "<code>order.*</code>", "5 consecutive failures",
		"503 Service Unavailable", "try later", ">1.5s<", `action="/endpoints/ep_one/disable"`, `action="/endpoints/ep_one/rotate-secret"`,
		`badge b-healthy`) // the history: healthy → failing
	if strings.Contains(a.body, "whsec_") {
		t.Error("the endpoint page shows a secret")
	}
	// The history stops at the first change not stored.
	if n := len(api.callsTo("GET", "/v1/events/endpoint.status_changed:ep_one:2")); n != 1 {
		t.Errorf("looked up change 2 %d times", n)
	}
	if n := len(api.callsTo("GET", "/v1/events/endpoint.status_changed:ep_one:3")); n != 0 {
		t.Errorf("looked past the first missing change")
	}

	csrf := csrfRE.FindStringSubmatch(a.body)[1]
	a = b.post("/endpoints/ep_one/rotate-secret", url.Values{"csrf": {csrf}})
	if a.status != http.StatusOK {
		t.Fatalf("rotate = %d", a.status)
	}
	mustContain(t, "rotate", a.body, "whsec_NEWSECRETvalue=", "shown only this once")
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("the page with the secret has Cache-Control %q", a.header.Get("Cache-Control"))
	}
	if a := b.get("/endpoints/ep_one"); strings.Contains(a.body, "whsec_") {
		t.Error("the secret is shown again")
	}

	a = b.post("/endpoints/ep_one/disable", url.Values{"csrf": {csrf}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/endpoints/ep_one?done=disabled" {
		t.Fatalf("disable = %d to %q", a.status, a.header.Get("Location"))
	}
	if n := len(api.callsTo("POST", "/v1/endpoints/ep_one/disable")); n != 1 {
		t.Fatalf("disable calls %d", n)
	}
}

func TestDeadLetterFilters(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	// Without JavaScript the datetime-local inputs are sent and read as UTC.
	a := b.get("/dlq?endpoint=ep_one&reason=expired&type=order.*&state=dead&since_local=2025-03-04T05:06&until=2025-03-05T00:00:00Z&cursor=17")
	if a.status != http.StatusOK {
		t.Fatalf("dlq = %d: %s", a.status, a.body)
	}
	calls := api.callsTo("GET", "/v1/dlq")
	got := calls[len(calls)-1].Query
	want := url.Values{"endpoint": {"ep_one"}, "reason": {"expired"}, "type": {"order.*"}, "state": {"dead"},
		"since": {"2025-03-04T05:06:00Z"}, "until": {"2025-03-05T00:00:00Z"}, "cursor": {"17"}, "limit": {"50"}}
	if got.Encode() != want.Encode() {
		t.Errorf("API query %v, want %v", got, want)
	}
	mustContain(t, "dlq", a.body, `<option value="ep_one" selected>`, `<option value="expired" selected>`,
		`value="2025-03-04T05:06:00Z"`, "← First page", `action="/dlq/dl_1/replay"`, "Replay all matching")

	a = b.get("/dlq?since_local=yesterday")
	if a.status != http.StatusBadRequest {
		t.Errorf("a bad time = %d, want 400", a.status)
	}
	mustContain(t, "bad time", a.body, `Since: &#34;yesterday&#34; is not a date and time`)

	api.set("GET /v1/dlq", 200, map[string]any{"items": []any{}, "next_cursor": ""})
	mustContain(t, "empty dlq", b.get("/dlq").body, "No dead letters — good.")
	mustContain(t, "empty filtered dlq", b.get("/dlq?reason=expired").body, "No dead letters match this filter")
}

func TestReplayAll(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	csrf := b.csrf("/dlq")
	a := b.post("/dlq/replay", url.Values{"csrf": {csrf}, "endpoint": {"ep_one"}, "reason": {"expired"},
		"since": {"2025-03-04T05:06:00Z"}, "state": {"dead"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/dlq/replays/job_7" {
		t.Fatalf("replay all = %d to %q: %s", a.status, a.header.Get("Location"), a.body)
	}
	calls := api.callsTo("POST", "/v1/dlq/replay")
	if len(calls) != 1 {
		t.Fatalf("bulk replay calls %d", len(calls))
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(calls[0].Body), &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 3 || body["endpoint"] != "ep_one" || body["reason"] != "expired" || body["since"] != "2025-03-04T05:06:00Z" {
		t.Errorf("bulk replay body %v", body)
	}

	a = b.get("/dlq/replays/job_7")
	mustContain(t, "job", a.body, `data-job="/dlq/replays/job_7?format=json"`, `<progress id="job-progress" max="4" value="1">`,
		`http-equiv="refresh"`)
	a = b.get("/dlq/replays/job_7?format=json")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" || !strings.Contains(a.body, `"replayed":1`) {
		t.Errorf("job JSON = %d %q %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	if a := b.get("/dlq/replays/job_none?format=json"); a.status != http.StatusNotFound || !strings.Contains(a.body, `"error"`) {
		t.Errorf("unknown job JSON = %d %s", a.status, a.body)
	}
}

func TestEventAndSourcesPages(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	mustContain(t, "events form", b.get("/events").body, `name="id"`, "Enter an event")
	a := b.get("/events?id=po%2F1")
	if a.status != http.StatusNotFound {
		t.Errorf("unknown event = %d", a.status)
	}
	mustContain(t, "unknown event", a.body, "No event with id po/1 is stored")
	if n := len(api.callsTo("GET", "/v1/events/po%2F1")); n != 1 {
		t.Errorf("the event id was not sent as one path segment (%d calls)", n)
	}
	api.set("GET /v1/events/po/1", 200, map[string]any{"id": "po/1", "type": "order.created", "source": "erp",
		"time": "2025-03-04T05:00:00Z", "data": map[string]any{"order_id": "po/1"},
		"deliveries": []any{map[string]any{"endpoint": "ep_one", "state": "dead", "attempts": 3, "dead_letter_id": "dl_1"}}})
	a = b.get("/events?id=po%2F1")
	mustContain(t, "event", a.body, `&#34;order_id&#34;: &#34;po/1&#34;`, `badge b-dead`, `href="/dlq/dl_1"`)

	a = b.get("/sources")
	mustContain(t, "sources", a.body, "erp", "c-42", "source unreachable: 502", "3 failed polls in a row",
		`datetime="2025-03-04T06:30:00Z"`)
}

// A source that receives a provider's webhooks shows the URL to paste into
// the provider's settings (under the address the page was reached at, https
// behind a proxy that says so), its last push with the instance that sent
// it, and its last poll; one that only receives pushes shows no poll.
func TestSourcesPageShowsInbound(t *testing.T) {
	t.Parallel()
	api, b := setup(t, "")
	api.set("GET /v1/sources", 200, map[string]any{"items": []any{
		map[string]any{
			"id": "forum", "changes_url": "https://forum.example.com/changes.json", "status": "healthy", "interval": "1h0m0s",
			"expected_window": "15m0s", "inbound": map[string]any{"format": "discourse", "header": "", "id_header": "", "id_from": []any{}, "type": ""},
			"ingest_url": "/ingest/forum", "last_push": "2025-03-04T06:10:00Z", "last_push_instance": "https://forum.example.com",
			"last_poll": "2025-03-04T06:20:00Z", "next_poll": "2025-03-04T07:20:00Z",
		},
		map[string]any{
			"id": "gh", "changes_url": "", "status": "healthy", "interval": "1m0s", "expected_window": "15m0s",
			"inbound": map[string]any{"format": "github"}, "ingest_url": "/ingest/gh", "next_poll": "2025-03-04T05:00:00Z",
		},
	}, "next_cursor": ""})
	a := b.get("/sources")
	host := strings.TrimPrefix(b.srv.URL, "http://")
	mustContain(t, "sources", a.body, "receives discourse webhooks at", `<code class="url ingest">http://`+host+`/ingest/forum</code>`,
		`datetime="2025-03-04T06:10:00Z"`, "https://forum.example.com</span>", `datetime="2025-03-04T06:20:00Z"`,
		"receives github webhooks at", "/ingest/gh</code>", "pushes only, not polled")
	if strings.Contains(a.body, `datetime="2025-03-04T05:00:00Z"`) {
		t.Error("a source that is never polled shows a next poll")
	}
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/sources", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "sources behind TLS", string(body), `https://`+host+`/ingest/forum`)
}

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	_, b := setup(t, testToken)
	a := b.get("/login")
	m := regexp.MustCompile(`href="(/static/app\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no stylesheet link in %s", a.body)
	}
	css := b.get(m[1])
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || css.header.Get("Cache-Control") == "" {
		t.Errorf("GET %s = %d %q %q", m[1], css.status, css.header.Get("Content-Type"), css.header.Get("Cache-Control"))
	}
	if js := b.get("/static/app.js"); js.status != http.StatusOK || !strings.Contains(js.body, "localize") {
		t.Errorf("GET app.js = %d", js.status)
	}
}

// Another site cannot replace the session: SameSite=Strict keeps the
// cookie off requests it starts, so those get no new cookie either.
func TestOtherSitesCannotReplaceTheSession(t *testing.T) {
	t.Parallel()
	_, b := setup(t, testToken)
	for _, site := range []string{"cross-site", "same-site"} {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/dlq?state=dead", nil)
		req.Header.Set("Sec-Fetch-Site", site)
		a := (&browser{t: t, c: &http.Client{CheckRedirect: b.c.CheckRedirect}}).do(req)
		if a.status != http.StatusOK || a.header.Get("Set-Cookie") != "" {
			t.Errorf("GET from %s without a cookie: %d, Set-Cookie %q; want 200 and none", site, a.status, a.header.Get("Set-Cookie"))
		}
		mustContain(t, "hop from "+site, a.body, `http-equiv="refresh" content="0; url=/dlq?state=dead"`)
	}
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/logout", strings.NewReader("csrf=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	a := (&browser{t: t, c: &http.Client{CheckRedirect: b.c.CheckRedirect}}).do(req)
	if a.status != http.StatusForbidden || a.header.Get("Set-Cookie") != "" {
		t.Errorf("cross-site POST without a cookie: %d, Set-Cookie %q; want 403 and none", a.status, a.header.Get("Set-Cookie"))
	}
	// A first visit typed into the address bar gets its session.
	req, _ = http.NewRequest(http.MethodGet, b.srv.URL+"/login", nil)
	req.Header.Set("Sec-Fetch-Site", "none")
	if a := b.do(req); a.header.Get("Set-Cookie") == "" || !strings.Contains(a.body, `name="token"`) {
		t.Errorf("first visit: %d, Set-Cookie %q", a.status, a.header.Get("Set-Cookie"))
	}
}
