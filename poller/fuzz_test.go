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
var sourceFieldRE = regexp.MustCompile(`^((body|id|changes_url|interval|expected_window|headers|inbound(\.[a-z_]+(\[\d+\])?)?): |[^\n]*: unknown field$)`)

// fuzzSourceIn mirrors the documented POST /v1/sources body, to judge a 201
// independently of the handler.
type fuzzSourceIn struct {
	ID             *string            `json:"id"`
	ChangesURL     *string            `json:"changes_url"`
	Interval       *string            `json:"interval"`
	ExpectedWindow *string            `json:"expected_window"`
	Headers        *map[string]string `json:"headers"`
	Inbound        *struct {
		Format   *string   `json:"format"`
		Secret   *string   `json:"secret"`
		Header   *string   `json:"header"`
		IDHeader *string   `json:"id_header"`
		IDFrom   *[]string `json:"id_from"`
		Type     *string   `json:"type"`
	} `json:"inbound"`
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
		// Inbound settings.
		`{"id":"forum","inbound":{"format":"discourse","secret":"0123456789abcdefSECRETvalue"}}`,
		`{"id":"gh","changes_url":"https://example.com/","inbound":{"format":"github","id_from":["/issue/id","/issue/updated_at"]}}`,
		`{"id":"std","inbound":{"format":"standard","type":"billing.event"}}`,
		`{"id":"h","inbound":{"format":"hmac-sha256","secret":"0123456789abcdefSECRETvalue","header":"X-Signature","id_header":"X-Id"}}`,
		`{"id":"h","inbound":{"format":"hmac-sha256","secret":"shortSECRET1"}}`,
		`{"id":"h","inbound":{"format":"standard","secret":"whsec_notbase64SECRET"}}`,
		`{"id":"h","inbound":{"format":"github","header":"X-Sig"}}`,
		`{"id":"h","inbound":{"format":"github","id_from":["x"]}}`,
		`{"id":"h","inbound":null}`,
		`{"id":"h","changes_url":"","inbound":{"format":"stripe"}}`,
		`{"id":"h","inbound":[]}`,
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
			if secret := fuzzInboundSecret(body); secret != "" && bytes.Contains(answer, []byte(secret)) {
				t.Fatalf("%d answer %s repeats the inbound secret", code, answer)
			}
			msg := fuzzErrorOf(t, code, answer)
			if !sourceFieldRE.MatchString(msg) {
				t.Fatalf("%d %q does not name a field (body %q)", code, msg, body)
			}
		default:
			t.Fatalf("POST /v1/sources %q = %d %s; want 201, 400, 409 or 413", body, code, answer)
		}
	})
}

func fuzzServe(t testing.TB, h http.Handler, method, path, body string) (int, []byte) {
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

// fuzzInboundSecret is the body's inbound secret when it is long and plain
// enough to look for in an answer.
func fuzzInboundSecret(body string) string {
	var in struct {
		Inbound struct {
			Secret string `json:"secret"`
		} `json:"inbound"`
	}
	if json.Unmarshal([]byte(body), &in) != nil || !plainValueRE.MatchString(in.Inbound.Secret) || strings.Contains(strings.Replace(body, in.Inbound.Secret, "", 1), in.Inbound.Secret) {
		return ""
	}
	return in.Inbound.Secret
}

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
	polled := in.ChangesURL != nil && *in.ChangesURL != ""
	if !polled && in.Inbound == nil {
		t.Fatalf("201 without changes_url or inbound: %q", body)
	}
	if polled {
		if why := fuzzInvalidURL(*in.ChangesURL); why != "" {
			t.Fatalf("201 for changes_url %q: %s", *in.ChangesURL, why)
		}
	}
	if in.Inbound != nil {
		if in.Inbound.Format == nil || !slices.Contains([]string{"standard", "discourse", "github", "hmac-sha256"}, *in.Inbound.Format) {
			t.Fatalf("201 for an inbound without a known format: %q", body)
		}
		if s := in.Inbound.Secret; s != nil && (*s == "" || *in.Inbound.Format != "standard" && len(*s) < 16 ||
			*in.Inbound.Format == "standard" && !strings.HasPrefix(*s, "whsec_")) {
			t.Fatalf("201 for inbound secret %q", *s)
		}
		if *in.Inbound.Format == "hmac-sha256" && (in.Inbound.Header == nil || *in.Inbound.Header == "") {
			t.Fatalf("201 for hmac-sha256 without its header: %q", body)
		}
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
	wantURL := ""
	if polled {
		u, _ := url.Parse(*in.ChangesURL)
		wantURL = u.Redacted()
	}
	if got.ID != *in.ID || got.ChangesURL != wantURL || !slices.Equal(got.Headers, names) || got.Status != StatusHealthy {
		t.Fatalf("201 answer %s does not match the body %q", answer, body)
	}
	if (in.Inbound != nil) != (got.Inbound != nil) || got.Inbound != nil && (got.Inbound.Secret == "" || got.IngestURL != IngestPath(got.ID)) {
		t.Fatalf("201 answer %s: inbound, its secret and ingest_url do not match the body %q", answer, body)
	}
	code, shown := fuzzServe(t, h, http.MethodGet, "/v1/sources/"+got.ID, "")
	var back sourceJSON
	if code != http.StatusOK || json.Unmarshal(shown, &back) != nil {
		t.Fatalf("GET the new source %s = %d %s", got.ID, code, shown)
	}
	if back.ChangesURL != got.ChangesURL || !slices.Equal(back.Headers, names) || back.Interval != got.Interval || back.ExpectedWindow != got.ExpectedWindow {
		t.Fatalf("the new source reads back as %s, created as %s", shown, answer)
	}
	if got.Inbound != nil && (back.Inbound == nil || back.Inbound.Secret != "" || bytes.Contains(shown, []byte(got.Inbound.Secret))) {
		t.Fatalf("the new source reads back as %s: want its inbound settings without the secret", shown)
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

// FuzzIngest sends arbitrary pushes to POST /ingest/forum (a discourse
// source) through the real route, behind the API server, on a real
// JetStream. It never panics or answers 5xx; every answer is JSON; a 202
// comes only for a push whose signature is the HMAC of its body under the
// source's secret and whose body is a JSON object, and the event stored
// under the id it names holds exactly that body; a 401 never shows the
// secret.
func FuzzIngest(f *testing.F) {
	good := `{"post":{"id":7}}`
	f.Add("sha256="+hexHMAC(testSecret, good), "41", "post_created", good)
	f.Add("sha256="+hexHMAC(testSecret, "[]"), "41", "post_created", "[]")
	f.Add("sha256="+hexHMAC(testSecret, good), "a b", "post_created", good)
	f.Add("sha256="+hexHMAC(testSecret, good), "41", "Post Created!", good)
	f.Add("sha256="+hexHMAC("wrong-secret-but-long-enough", good), "41", "post_created", good)
	f.Add("sha256=", "", "", "")
	f.Add(hexHMAC(testSecret, good), "41", "post_created", good)
	env := streamstest.Start(f)
	cfg := testConfig(env)
	cfg.MaxEventData = 4096
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
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: p.Routes(), Public: p.PublicRoutes(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	stream, err := env.JS.Stream(context.Background(), streams.StreamEvents)
	if err != nil {
		f.Fatal(err)
	}
	if code, out := fuzzServe(f, h, http.MethodPost, "/v1/sources", `{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`); code != http.StatusCreated {
		f.Fatalf("create = %d %s", code, out)
	}
	f.Fuzz(func(t *testing.T, sig, eventID, event, body string) {
		req := httptest.NewRequest(http.MethodPost, "/ingest/forum", strings.NewReader(body))
		for k, v := range map[string]string{"X-Discourse-Event-Signature": sig, "X-Discourse-Event-Id": eventID, "X-Discourse-Event": event} {
			req.Header[k] = []string{v}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		answer := rec.Body.Bytes()
		var m map[string]any
		if err := json.Unmarshal(answer, &m); err != nil {
			t.Fatalf("%d answer %q is not JSON", rec.Code, answer)
		}
		signed := strings.EqualFold(strings.TrimSpace(sig), "sha256="+hexHMAC(testSecret, body))
		switch rec.Code {
		case http.StatusAccepted:
			if !signed {
				t.Fatalf("202 for signature %q of body %q", sig, body)
			}
			if m["duplicate"] == true {
				return
			}
			// The inputs run one at a time: the newest event is this one.
			msg, err := stream.GetLastMsgForSubject(context.Background(), streams.SubjectEvents+".forum.>")
			if err != nil {
				t.Fatal(err)
			}
			var ev streams.Event
			if err := streams.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.ID != m["id"] || string(ev.Data) != body || ev.Source != "forum" || !strings.HasPrefix(ev.Type, "discourse.") {
				t.Fatalf("202 %s: stored %+v; want the body", answer, ev)
			}
		case http.StatusUnauthorized:
			if signed {
				t.Fatalf("401 %s for a push signed right", answer)
			}
			if strings.Contains(string(answer), testSecret) {
				t.Fatalf("401 shows the secret: %s", answer)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !signed && rec.Code == http.StatusBadRequest {
				t.Fatalf("400 %s before the signature was checked", answer)
			}
		default:
			t.Fatalf("push = %d %s", rec.Code, answer)
		}
	})
}
