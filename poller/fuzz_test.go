package poller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// sourceFieldRE matches a 4xx message that names a field of the source
// body (or the body itself), or an unknown field by its name.
var sourceFieldRE = regexp.MustCompile(`^((body|id|changes_url|interval|expected_window|headers): |[^\n]*: unknown field$)`)

// fuzzSourceIn mirrors the documented POST /v1/sources body, to judge a 201
// independently of the handler.
type fuzzSourceIn struct {
	ID             *string            `json:"id"`
	ChangesURL     *string            `json:"changes_url"`
	Interval       *string            `json:"interval"`
	ExpectedWindow *string            `json:"expected_window"`
	Headers        *map[string]string `json:"headers"`
}

// fuzzMinInterval is the fuzzed poller's smallest interval.
const fuzzMinInterval = time.Second

// FuzzSourceBody sends arbitrary bodies to POST /v1/sources through the real
// handler, behind the API server, on a real JetStream, with private
// addresses refused. It never panics or answers 5xx; every 4xx is
// {"error"} naming a field, never repeating a header value or the URL's
// password; a 201 comes only for a body valid by DESIGN.md's rules (checked
// here without the package's validators), shows no header value, and the
// source reads back as given.
func FuzzSourceBody(f *testing.F) {
	for _, seed := range []string{
		`{"id":"shop","changes_url":"https://shop.example.com/changes"}`,
		`{"id":"crm-2","changes_url":"http://crm.example.com:8080/feed?x=1","interval":"30s","expected_window":"15m","headers":{"Authorization":"Bearer tokenvalue123"}}`,
		`{"id":"pw","changes_url":"https://user:hunter2pass@feed.example.com/changes"}`,
		// Refused address classes.
		`{"id":"a","changes_url":"http://127.0.0.1/changes"}`,
		`{"id":"a","changes_url":"http://[::1]:9000/changes"}`,
		`{"id":"a","changes_url":"http://[::ffff:169.254.169.254]/"}`,
		`{"id":"a","changes_url":"http://169.254.169.254/latest/meta-data/"}`,
		`{"id":"a","changes_url":"http://192.168.0.10/"}`,
		`{"id":"a","changes_url":"http://100.100.100.200/"}`,
		`{"id":"a","changes_url":"http://[fc00::1]/"}`,
		`{"id":"a","changes_url":"http://017700000001/"}`,
		`{"id":"a","changes_url":"http://localhost:8080/"}`,
		// Bad fields.
		`{"changes_url":"https://example.com/"}`,
		`{"id":"hookstream","changes_url":"https://example.com/"}`,
		`{"id":"a.b","changes_url":"https://example.com/"}`,
		`{"id":"a"}`,
		`{"id":"a","changes_url":"gopher://example.com/"}`,
		`{"id":"a","changes_url":"https://example.com/","interval":"10ms"}`,
		`{"id":"a","changes_url":"https://example.com/","interval":"soon"}`,
		`{"id":"a","changes_url":"https://example.com/","expected_window":60}`,
		`{"id":"a","changes_url":"https://example.com/","headers":{"Host":"evil.example.com"}}`,
		`{"id":"a","changes_url":"https://example.com/","headers":{"X-Token":"secretvalue\r\nX-Other: 1"}}`,
		`{"id":"a","changes_url":"https://example.com/","headers":{"Bad Name":"secretvalue"}}`,
		`{"id":"a","changes_url":"https://example.com/","headers":["Authorization"]}`,
		`{"id":"a","changes_url":"https://example.com/","cursor":"5"}`,
		`{"id":"a","changes_url":"https://example.com/"}x`,
		``,
		`null`,
	} {
		f.Add(seed)
	}
	env := streamstest.Start(f)
	cfg := testConfig(env)
	cfg.AllowPrivate = false
	cfg.MinInterval = fuzzMinInterval
	p, err := New(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			f.Errorf("stop: %v", err)
		}
	})
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: p.Routes(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, body string) {
		code, answer := fuzzServe(t, h, http.MethodPost, "/v1/sources", body)
		hidden := fuzzHiddenValues(body)
		for _, v := range hidden {
			if bytes.Contains(answer, []byte(v)) {
				t.Fatalf("%d answer %s shows a header value or the URL password", code, answer)
			}
		}
		switch code {
		case http.StatusCreated:
			fuzzCheckSource(t, h, body, answer)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusConflict:
			msg := fuzzErrorOf(t, code, answer)
			if !sourceFieldRE.MatchString(msg) {
				t.Fatalf("%d %q does not name a field (body %q)", code, msg, body)
			}
		default:
			t.Fatalf("POST /v1/sources %q = %d %s; want 201, 400, 409 or 413", body, code, answer)
		}
	})
}

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

// plainValueRE is a value long and plain enough that finding it in an
// answer cannot be chance or JSON escaping.
var plainValueRE = regexp.MustCompile(`^[A-Za-z0-9]{8,}$`)

// fuzzHiddenValues returns the body's header values and URL password that
// the API must never show, leaving out any that also appear in what it may
// show (the id, the URL without its password, header names, durations).
func fuzzHiddenValues(body string) []string {
	var in map[string]any
	if json.Unmarshal([]byte(body), &in) != nil {
		return nil
	}
	shown := ""
	var candidates []string
	for k, v := range in {
		shown += k + " "
		s, ok := v.(string)
		if !ok {
			continue
		}
		if k == "changes_url" {
			if u, err := url.Parse(s); err == nil {
				if p, ok := u.User.Password(); ok {
					candidates = append(candidates, p)
				}
				s = u.Redacted()
			}
		}
		shown += s + " "
	}
	if hs, ok := in["headers"].(map[string]any); ok {
		for k, v := range hs {
			shown += k + " "
			if s, ok := v.(string); ok {
				candidates = append(candidates, s)
			}
		}
	}
	var out []string
	for _, c := range candidates {
		if plainValueRE.MatchString(c) && !strings.Contains(shown, c) {
			out = append(out, c)
		}
	}
	return out
}

// fuzzCheckSource checks that body, answered 201, is a valid source and
// that the source reads back as given.
func fuzzCheckSource(t *testing.T, h http.Handler, body string, answer []byte) {
	t.Helper()
	var in fuzzSourceIn
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("201 for a body that does not decode strictly: %q: %v", body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("201 for a body with data after the object: %q", body)
	}
	if in.ID == nil || !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(*in.ID) || *in.ID == streams.OwnSource {
		t.Fatalf("201 for an invalid id in %q", body)
	}
	if in.ChangesURL == nil {
		t.Fatalf("201 without changes_url: %q", body)
	}
	if why := fuzzInvalidURL(*in.ChangesURL); why != "" {
		t.Fatalf("201 for changes_url %q: %s", *in.ChangesURL, why)
	}
	for _, d := range []*string{in.Interval, in.ExpectedWindow} {
		if d == nil {
			continue
		}
		if v, err := time.ParseDuration(*d); err != nil || v < fuzzMinInterval {
			t.Fatalf("201 for a duration %q (%v)", *d, err)
		}
	}
	var names []string
	if in.Headers != nil {
		total := 0
		for k, v := range *in.Headers {
			names = append(names, k)
			total += len(k) + len(v)
			if k == "" || strings.ContainsAny(v, "\r\n\x00") || slices.Contains([]string{"host", "content-length", "transfer-encoding", "connection"}, strings.ToLower(k)) {
				t.Fatalf("201 for header %q", k)
			}
			for _, r := range k {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
					t.Fatalf("201 for header name %q", k)
				}
			}
		}
		if len(names) > 32 || total > 16<<10 {
			t.Fatalf("201 for %d headers of %d bytes", len(names), total)
		}
	}
	slices.Sort(names)
	if names == nil {
		names = []string{}
	}

	var got sourceJSON
	if err := json.Unmarshal(answer, &got); err != nil {
		t.Fatalf("201 answer %q: %v", answer, err)
	}
	u, _ := url.Parse(*in.ChangesURL)
	if got.ID != *in.ID || got.ChangesURL != u.Redacted() || !slices.Equal(got.Headers, names) || got.Status != StatusHealthy {
		t.Fatalf("201 answer %s does not match the body %q", answer, body)
	}
	code, shown := fuzzServe(t, h, http.MethodGet, "/v1/sources/"+got.ID, "")
	var back sourceJSON
	if code != http.StatusOK || json.Unmarshal(shown, &back) != nil {
		t.Fatalf("GET the new source %s = %d %s", got.ID, code, shown)
	}
	if back.ChangesURL != got.ChangesURL || !slices.Equal(back.Headers, names) || back.Interval != got.Interval || back.ExpectedWindow != got.ExpectedWindow {
		t.Fatalf("the new source reads back as %s, created as %s", shown, answer)
	}
	// Leave the id free for the next input.
	if code, out := fuzzServe(t, h, http.MethodDelete, "/v1/sources/"+got.ID, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE the new source = %d %s", code, out)
	}
}

// fuzzCGNAT is 100.64.0.0/10, which the standard library does not classify.
var fuzzCGNAT = netip.MustParsePrefix("100.64.0.0/10")

// fuzzInvalidURL says why raw may not be a changes_url with private
// addresses refused, or "" if it may. It uses only the standard library, as
// a second opinion on netguard's tables.
func fuzzInvalidURL(raw string) string {
	if raw == "" || len(raw) > 2048 {
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
