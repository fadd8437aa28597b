package dashboard_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// The pages on the real binary, through a plain HTTP client: every page
// reads the real API's answers, and a replay from the record's form
// delivers the event with its webhook-id. (The browser test does the same
// in Chromium where one is installed.)
func TestPagesOnTheBinary(t *testing.T) {
	t.Parallel()
	s := startServe(t, "flow-token")
	rc := newReceiver(t)
	epID, dlID := failingDelivery(t, s, rc, "po-flow-1")
	s.api(t, http.MethodPost, "/v1/sources", map[string]any{"id": "erp", "changes_url": rc.URL + "/changes", "interval": "1m"},
		http.StatusCreated, nil)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		if _, err := ioCopy(b, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.URL)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		if _, err := ioCopy(b, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	csrfOf := func(body string) string {
		t.Helper()
		m := csrfRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no csrf field in %s", body)
		}
		return m[1]
	}

	code, body := get("/")
	if code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("GET / before login = %d, want the login form: %s", code, body)
	}
	if code, body = post("/login", url.Values{"csrf": {csrfOf(body)}, "token": {"flow-token"}, "next": {"/"}}); code != http.StatusOK {
		t.Fatalf("login = %d: %s", code, body)
	}
	mustContain(t, "overview", body, epID, rc.URL+"/hook", "0 %", "waiting for a replay", `badge b-expired`, "erp")

	code, body = get("/endpoints/" + epID)
	if code != http.StatusOK {
		t.Fatalf("endpoint page = %d: %s", code, body)
	}
	mustContain(t, "endpoint page", body, "ERP order sync", "<code>order.*</code>", "503 Service Unavailable",
		"down for maintenance", "po-flow-1")

	code, body = get("/dlq?endpoint=" + epID + "&state=dead")
	if code != http.StatusOK {
		t.Fatalf("dlq page = %d: %s", code, body)
	}
	mustContain(t, "dlq page", body, dlID, "po-flow-1", `action="/dlq/`+dlID+`/replay"`)

	code, body = get("/events?id=po-flow-1")
	if code != http.StatusOK {
		t.Fatalf("event page = %d: %s", code, body)
	}
	mustContain(t, "event page", body, `&#34;total&#34;: 42`, `badge b-dead`, `href="/dlq/`+dlID+`"`)

	code, body = get("/sources")
	if code != http.StatusOK {
		t.Fatalf("sources page = %d: %s", code, body)
	}
	mustContain(t, "sources page", body, "erp", rc.URL+"/changes")

	rc.up.Store(true)
	code, body = post("/dlq/"+dlID+"/replay", url.Values{"csrf": {csrfOf(body)}})
	if code != http.StatusOK || !strings.Contains(body, "Replay sent") {
		t.Fatalf("replay = %d: %s", code, body)
	}
	streamstest.WaitFor(t, 30*time.Second, "the record to be delivered", func() bool {
		_, body = get("/dlq/" + dlID)
		return strings.Contains(body, `badge b-delivered`)
	})
	// Delivered once, under the event's id as webhook-id (the endpoint's
	// webhook.catchup, sent when it came back, is another event).
	if got, delivered := rc.count("po-flow-1"); delivered != 1 || got < 2 {
		t.Fatalf("the receiver got webhook-id po-flow-1 %d times, delivered %d; want failures, then one delivery", got, delivered)
	}
}
