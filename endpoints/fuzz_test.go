package endpoints_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/webhook"
)

// fuzzMaxEventTypes is the fuzzed registry's limit on type filters, small
// so that the fuzzer reaches it.
const fuzzMaxEventTypes = 4

// endpointFieldRE matches a 4xx message that names a field of the create
// body (or the body itself), or an unknown field by its name.
var endpointFieldRE = regexp.MustCompile(`^((body|url|event_types(\[\d+\])?|secret|description|rate_limit|concurrency): |[^\n]*: unknown field$)`)

// fuzzTypeFilterRE is DESIGN.md's type grammar, with the filter forms.
var fuzzTypeFilterRE = regexp.MustCompile(`^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$`)

// fuzzCreateIn mirrors the documented POST /v1/endpoints body, to judge a 201
// independently of the handler.
type fuzzCreateIn struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Secret      string   `json:"secret"`
	Description string   `json:"description"`
	RateLimit   float64  `json:"rate_limit"`
	Concurrency int      `json:"concurrency"`
}

// FuzzCreateBody sends arbitrary bodies to POST /v1/endpoints through the
// real handler, behind the API server, on a real JetStream, with private
// endpoints refused. It never panics or answers 5xx; every 4xx is
// {"error"} naming a field, never repeating the body's secret or URL
// password; a 201 comes only for a body that is valid by DESIGN.md's rules
// (checked here without the package's own validators), and the endpoint it
// made reads back as it was given.
func FuzzCreateBody(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://example.com/hook","event_types":["order.*"]}`,
		`{"url":"http://hooks.example.com:8443/in?x=1","event_types":["order.created","order.created","*"],"description":"crm","rate_limit":2.5,"concurrency":3}`,
		`{"url":"https://example.com/hook","event_types":["invoice.paid"],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`,
		`{"url":"https://user:hunter2pass@example.com/hook","event_types":["a"]}`,
		// Refused address classes, as IP literals and loopback names.
		`{"url":"http://127.0.0.1:8080/hook","event_types":["a"]}`,
		`{"url":"http://[::1]/hook","event_types":["a"]}`,
		`{"url":"http://[::ffff:127.0.0.1]/hook","event_types":["a"]}`,
		`{"url":"http://169.254.169.254/latest/meta-data","event_types":["a"]}`,
		`{"url":"http://10.0.0.1/","event_types":["a"]}`,
		`{"url":"http://100.64.0.1/","event_types":["a"]}`,
		`{"url":"http://[fd00::1]/","event_types":["a"]}`,
		`{"url":"http://[fe80::1%25eth0]/","event_types":["a"]}`,
		`{"url":"http://224.0.0.1/","event_types":["a"]}`,
		`{"url":"http://0.0.0.0/","event_types":["a"]}`,
		`{"url":"http://0x7f.1/","event_types":["a"]}`,
		`{"url":"http://2130706433/","event_types":["a"]}`,
		`{"url":"http://0x7f.0x.0x.1/","event_types":["a"]}`,
		`{"url":"http://１２７.０.０.１/","event_types":["a"]}`,
		`{"url":"http://１６９。２５４。１６９。２５４/","event_types":["a"]}`,
		`{"url":"https://user@example.com/hook?token=t0ken","event_types":["a"]}`,
		`{"url":"http://localhost/","event_types":["a"]}`,
		`{"url":"http://app.localhost./","event_types":["a"]}`,
		// Bad fields, one at a time.
		`{"url":"ftp://example.com/","event_types":["a"]}`,
		`{"url":"https:///nohost","event_types":["a"]}`,
		`{"url":"https://example.com:99999/","event_types":["a"]}`,
		`{"url":"","event_types":["a"]}`,
		`{"url":"https://example.com/","event_types":[]}`,
		`{"url":"https://example.com/","event_types":["Order.Created"]}`,
		`{"url":"https://example.com/","event_types":["a","b","c","d","e"]}`,
		`{"url":"https://example.com/","event_types":["a"],"secret":"whsec_short"}`,
		`{"url":"https://example.com/","event_types":["a"],"secret":"not-a-secret-at-all"}`,
		`{"url":"https://example.com/","event_types":["a"],"rate_limit":-1}`,
		`{"url":"https://example.com/","event_types":["a"],"concurrency":1.5}`,
		`{"url":"https://example.com/","event_types":["a"],"concurrency":100000}`,
		`{"url":"https://example.com/","event_types":"a"}`,
		`{"url":"https://example.com/","event_types":["a"],"status":"disabled"}`,
		`{"url":"https://example.com/","event_types":["a"]} {}`,
		`{"url":`,
		``,
		`null`,
		`[]`,
	} {
		f.Add(seed)
	}
	b := setup(f, endpoints.Config{MaxEventTypes: fuzzMaxEventTypes})
	h := b.srv.Config.Handler

	f.Fuzz(func(t *testing.T, body string) {
		code, answer := fuzzServe(t, h, http.MethodPost, "/v1/endpoints", body)
		switch {
		case code == http.StatusCreated:
			fuzzCheckCreated(t, h, body, answer)
		case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
			msg := fuzzErrorOf(t, code, answer)
			if !endpointFieldRE.MatchString(msg) {
				t.Fatalf("%d %q does not name a field (body %q)", code, msg, body)
			}
			for _, s := range fuzzSecretsIn(body) {
				if strings.Contains(msg, s) {
					t.Fatalf("%d %q repeats a secret or password of the body", code, msg)
				}
			}
		default:
			t.Fatalf("POST /v1/endpoints %q = %d %s; want 201, 400 or 413", body, code, answer)
		}
	})
}

// fuzzServe runs one request through h and returns the status and the body.
func fuzzServe(t *testing.T, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	raw, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, raw
}

// fuzzErrorOf checks answer is {"error": "<non-empty>"} and returns the message.
func fuzzErrorOf(t *testing.T, code int, answer []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(answer, &m); err != nil {
		t.Fatalf("%d answer %q is not JSON: %v", code, answer, err)
	}
	msg, ok := m["error"].(string)
	if len(m) != 1 || !ok || msg == "" {
		t.Fatalf("%d answer %q is not {\"error\": \"…\"}", code, answer)
	}
	return msg
}

// fuzzSecretsIn returns the body's secret and URL password, when long enough
// that finding one in a message cannot be chance.
func fuzzSecretsIn(body string) []string {
	var in map[string]any
	if json.Unmarshal([]byte(body), &in) != nil {
		return nil
	}
	var out []string
	if s, ok := in["secret"].(string); ok && len(s) >= 8 {
		out = append(out, s)
	}
	if s, ok := in["url"].(string); ok {
		if u, err := url.Parse(s); err == nil {
			if p, ok := u.User.Password(); ok && len(p) >= 8 {
				out = append(out, p)
			}
		}
	}
	return out
}

// fuzzCheckCreated checks that body, answered 201, is valid and that the
// endpoint made from it reads back as given.
func fuzzCheckCreated(t *testing.T, h http.Handler, body string, answer []byte) {
	t.Helper()
	var in fuzzCreateIn
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("201 for a body that does not decode strictly: %q: %v", body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("201 for a body with data after the object: %q", body)
	}
	if why := fuzzInvalidURL(in.URL); why != "" {
		t.Fatalf("201 for url %q: %s", in.URL, why)
	}
	var types []string
	for _, ft := range in.EventTypes {
		if !fuzzTypeFilterRE.MatchString(ft) || len(strings.TrimSuffix(ft, ".*")) > 128 {
			t.Fatalf("201 for type filter %q", ft)
		}
		if !slices.Contains(types, ft) {
			types = append(types, ft)
		}
	}
	if len(types) == 0 || len(types) > fuzzMaxEventTypes {
		t.Fatalf("201 for %d type filters", len(types))
	}
	if utf8.RuneCountInString(in.Description) > 1024 || !(in.RateLimit >= 0 && in.RateLimit <= 100000) || in.Concurrency < 0 || in.Concurrency > 1000 {
		t.Fatalf("201 for description/rate_limit/concurrency out of range: %+v", in)
	}
	if in.Secret != "" {
		if key, err := webhook.ParseSecret(in.Secret); err != nil || len(key) < 24 || len(key) > 64 {
			t.Fatalf("201 for an invalid secret (%v)", err)
		}
	}

	var got struct {
		ID         string   `json:"id"`
		URL        string   `json:"url"`
		EventTypes []string `json:"event_types"`
		Secret     string   `json:"secret"`
		Status     string   `json:"status"`
	}
	if err := json.Unmarshal(answer, &got); err != nil {
		t.Fatalf("201 answer %q: %v", answer, err)
	}
	// A user name, password or query value in the URL is never shown back.
	wantURL := netguard.RedactURL(in.URL)
	if got.ID == "" || got.URL != wantURL || !slices.Equal(got.EventTypes, types) || got.Status != "healthy" {
		t.Fatalf("201 answer %s does not match the body %q", answer, body)
	}
	if _, err := webhook.ParseSecret(got.Secret); err != nil || (in.Secret != "" && got.Secret != in.Secret) {
		t.Fatalf("201 answer's secret is not the one given or a valid new one (%v)", err)
	}
	code, shown := fuzzServe(t, h, http.MethodGet, "/v1/endpoints/"+got.ID, "")
	var back struct {
		URL        string   `json:"url"`
		EventTypes []string `json:"event_types"`
		Secret     *string  `json:"secret"`
	}
	if code != http.StatusOK || json.Unmarshal(shown, &back) != nil {
		t.Fatalf("GET the new endpoint %s = %d %s", got.ID, code, shown)
	}
	if back.URL != wantURL || !slices.Equal(back.EventTypes, types) || back.Secret != nil {
		t.Fatalf("the new endpoint reads back as %s, created from %q", shown, body)
	}
}

// fuzzCGNAT is 100.64.0.0/10, which the standard library does not classify.
var fuzzCGNAT = netip.MustParsePrefix("100.64.0.0/10")

// fuzzInvalidURL says why raw may not be an endpoint URL with private
// addresses refused, or "" if it may. It uses only the standard library, as
// a second opinion on netguard's tables.
func fuzzInvalidURL(raw string) string {
	if raw == "" || utf8.RuneCountInString(raw) > 2048 {
		return "empty or too long"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "does not parse: " + err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "scheme " + u.Scheme
	}
	host := u.Hostname()
	if host == "" {
		return "no host"
	}
	if name := strings.ToLower(strings.TrimSuffix(host, ".")); name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return "a loopback name"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.WithZone("").Unmap()
		switch {
		case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
			ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), ip.IsUnspecified(), fuzzCGNAT.Contains(ip),
			ip.Is4() && ip.As4()[0] == 0:
			return "an internal IP literal " + ip.String()
		}
	}
	return ""
}
