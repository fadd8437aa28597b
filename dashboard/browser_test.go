package dashboard_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// screenshotsEnv, set to 1, makes the browser test also write its
// screenshots into docs/ (the README shows them); otherwise they go only
// to a temp dir, so a test run leaves the tree clean.
const screenshotsEnv = "HOOKSTREAM_SCREENSHOTS"

// chromium finds a Chromium or Chrome binary on PATH.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserSession starts headless Chromium for the test and returns its
// context, stopped (browser process included) when the test ends.
func browserSession(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 860),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
	})
	// Start the browser now, outside any timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	return ctx
}

// step runs actions with a deadline, failing the test with what it was
// doing.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// screenshot saves the page as name.png in dir, and into docs/ when
// screenshotsEnv is set.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{dir}
	if os.Getenv(screenshotsEnv) == "1" {
		dirs = append(dirs, filepath.Join("..", "docs"))
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowser drives headless Chromium against the real binary: the login
// form, an endpoint that fails until its dead letter shows on the DLQ page,
// a cross-site form refused, Replay pressed until the record is delivered
// with the same webhook-id, Replay all matching with its progress, and
// logout. It saves screenshots of the
// overview and the DLQ page (into docs/ with HOOKSTREAM_SCREENSHOTS=1).
func TestBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("no chromium, chromium-browser or google-chrome on PATH: skipping the browser test " +
			"(apt-get install -y chromium; .ci/run installs it)")
	}
	t.Parallel()
	const token = "browser-test-token"
	s := startServe(t, token)

	// A healthy endpoint and source, so the overview shows both kinds.
	warehouse := newReceiver(t)
	warehouse.up.Store(true)
	var wh struct{ ID string }
	s.api(t, http.MethodPost, "/v1/endpoints", map[string]any{
		"url": warehouse.URL + "/hook", "event_types": []string{"order.*"}, "description": "Warehouse",
	}, http.StatusCreated, &wh)
	s.api(t, http.MethodPost, "/v1/sources", map[string]any{"id": "erp", "changes_url": warehouse.URL + "/changes", "interval": "1m"},
		http.StatusCreated, nil)
	erp := newReceiver(t)
	epID, dlID := failingDelivery(t, s, erp, "po-1001")
	for _, id := range []string{"po-1002", "po-1003"} {
		s.api(t, http.MethodPost, "/v1/events", map[string]any{"id": id, "type": "order.updated", "source": "erp",
			"data": map[string]any{"order_id": id}}, http.StatusAccepted, nil)
	}
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	streamstest.WaitFor(t, 30*time.Second, "three dead letters", func() bool {
		s.api(t, http.MethodGet, "/v1/dlq?endpoint="+epID, nil, http.StatusOK, &list)
		return len(list.Items) == 3
	})
	streamstest.WaitFor(t, 30*time.Second, "the warehouse's attempt log", func() bool {
		s.api(t, http.MethodGet, "/v1/endpoints/"+wh.ID+"/attempts", nil, http.StatusOK, &list)
		return len(list.Items) == 3
	})

	ctx := browserSession(t, exe)
	shots := t.TempDir()
	step(t, ctx, "show times in Berlin", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Berlin"})
		return err
	}))

	// Login: the pages send to the form; a wrong token is refused with a
	// message; the right one opens the overview.
	step(t, ctx, "open the dashboard", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	step(t, ctx, "log in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")))
	if got := text(t, ctx, ".flash.error"); !strings.Contains(got, "not the API token") {
		t.Errorf("wrong token: %q", got)
	}
	step(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/endpoints/`+epID+`"]`)))
	cookies, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies.Cookies) != 1 || !cookies.Cookies[0].HTTPOnly || cookies.Cookies[0].SameSite != network.CookieSameSiteStrict ||
		strings.Contains(cookies.Cookies[0].Value, token) {
		t.Fatalf("cookies %+v: want one session cookie, HttpOnly, SameSite=Strict, without the token", cookies.Cookies)
	}
	if got := text(t, ctx, "main"); !strings.Contains(got, "3 waiting for a replay") || !strings.Contains(got, "100 %") {
		t.Errorf("overview: want 3 dead letters and the warehouse at 100 %%:\n%s", got)
	}
	screenshot(t, ctx, shots, "dashboard-overview")

	// The dead letter on the DLQ page.
	row := "#dl-" + dlID
	step(t, ctx, "see the dead letter", chromedp.Navigate(s.URL+"/dlq?state=dead"), chromedp.WaitVisible(chromedp.CSS(row+" button")))
	if got := text(t, ctx, row); !strings.Contains(got, "po-1001") || !strings.Contains(got, "dead") {
		t.Errorf("DLQ row: %q", got)
	}
	screenshot(t, ctx, shots, "dashboard-dlq")
	step(t, ctx, "phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(row+" button")))
	screenshot(t, ctx, shots, "dashboard-dlq-phone")
	step(t, ctx, "desktop width", chromedp.EmulateViewport(1280, 860), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(row+" button")))

	// A form on another site that posts the replay, even with this
	// session's CSRF token copied into it, is refused: from another port
	// of this host (same site: the cookie is sent) and from another host
	// name (cross-site: it is not).
	csrf, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(row+` input[name="csrf"]`), "value"))
	if err != nil || !csrf.Exists {
		t.Fatalf("csrf field: %v", err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/link" {
			fmt.Fprintf(w, `<!doctype html><a id="go" href="%s">the dead letters</a>`, html.EscapeString(s.URL+"/dlq?state=dead"))
			return
		}
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s"><input type="hidden" name="csrf" value="%s"></form>`+
			`<script>document.forms[0].submit()</script>`, html.EscapeString(s.URL+"/dlq/"+dlID+"/replay"), html.EscapeString(csrf.Value))
	}))
	t.Cleanup(evil.Close)
	for _, origin := range []string{evil.URL, strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)} {
		step(t, ctx, "a cross-site form from "+origin, chromedp.Navigate(origin+"/"), chromedp.WaitVisible(chromedp.CSS(".flash.error")))
		if got := text(t, ctx, ".flash.error"); !strings.Contains(got, "sent from another site") {
			t.Errorf("form from %s: %q", origin, got)
		}
	}
	var rec struct{ State string }
	s.api(t, http.MethodGet, "/v1/dlq/"+dlID, nil, http.StatusOK, &rec)
	if rec.State != "dead" {
		t.Fatalf("after the cross-site forms the record is %q, want dead", rec.State)
	}
	// Those requests did not end the session, and a link from another site
	// opens the page logged in (SameSite=Strict keeps the cookie off the
	// link's request; the page sends the browser on from this origin).
	step(t, ctx, "follow a link from another site", chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)+"/link"),
		chromedp.Click(chromedp.ID("go")), chromedp.WaitVisible(chromedp.CSS(row+" button")))

	// The time filter takes the viewer's local time (Berlin here) and
	// sends UTC.
	setSince := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[string](`document.getElementById("f-since").value = "2000-01-01T00:00:00"`)(ctx, tg)
		return err
	})
	// The old page has the same row: wait for the filtered page's address
	// before looking at it.
	step(t, ctx, "filter by a local time", setSince,
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)),
		waitLocation("since="),
		chromedp.WaitVisible(chromedp.CSS(row+" button")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "since=1999-12-31T23%3A00%3A00Z") || strings.Contains(loc, "since_local") {
		t.Errorf("filtered at %s, want since=1999-12-31T23:00:00Z (midnight in Berlin) and no since_local", loc)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("f-since"))); v != "2000-01-01T00:00" {
		t.Errorf("the since input shows %q after the filter, want the local time 2000-01-01T00:00", v)
	}

	// Replay: the record page follows it from replayed to delivered.
	erp.up.Store(true)
	step(t, ctx, "press Replay", chromedp.Navigate(s.URL+"/dlq?state=dead"), chromedp.WaitVisible(chromedp.CSS(row+" button")),
		chromedp.Click(chromedp.CSS(row+" button")), chromedp.WaitVisible(chromedp.CSS("#record-state .b-delivered")))
	if got, delivered := erp.count("po-1001"); delivered != 1 || got < 2 {
		t.Errorf("the receiver got webhook-id po-1001 %d times, delivered %d: want failures, then one delivery", got, delivered)
	}
	if _, delivered := erp.count("po-1002"); delivered != 0 {
		t.Errorf("po-1002 was delivered without a replay")
	}

	// Replay all matching, confirmed in the dialog: the job page shows its
	// progress until it is done, and the other two are delivered.
	dctx, stopDialogs := context.WithCancel(ctx)
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	dialogsDone := make(chan struct{})
	var confirmed atomic.Int32
	go func() {
		defer close(dialogsDone)
		for _, err := range dialogs {
			if err != nil {
				return
			}
			confirmed.Add(1)
			_, _ = chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	bulk := `form[action="/dlq/replay"] button`
	step(t, ctx, "replay all matching", chromedp.Navigate(s.URL+"/dlq?state=dead&endpoint="+epID), chromedp.WaitVisible(chromedp.CSS(bulk)),
		chromedp.Click(chromedp.CSS(bulk)), chromedp.WaitVisible(chromedp.CSS("#job-state .b-done")))
	stopDialogs()
	<-dialogsDone
	if confirmed.Load() != 1 {
		t.Errorf("%d confirm dialogs, want 1", confirmed.Load())
	}
	if got := text(t, ctx, `[data-field="replayed"]`); got != "2" {
		t.Errorf("the job replayed %q, want 2", got)
	}
	streamstest.WaitFor(t, 30*time.Second, "po-1002 and po-1003 delivered", func() bool {
		_, a := erp.count("po-1002")
		_, b := erp.count("po-1003")
		return a == 1 && b == 1
	})

	step(t, ctx, "log out", chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.ID("token")))
	if got := text(t, ctx, ".flash.ok"); !strings.Contains(got, "logged out") {
		t.Errorf("after logout: %q", got)
	}
	step(t, ctx, "the pages need a login again", chromedp.Navigate(s.URL+"/dlq"), chromedp.WaitVisible(chromedp.ID("token")))
}

// waitLocation waits until the tab's address contains want: a form's
// submit navigates, and the old page may match everything else looked for.
func waitLocation(want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			// Errors while the tab navigates are expected: look again.
			if loc, err := chromedp.Location()(ctx, tg); err == nil && strings.Contains(loc, want) {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("address never contained %q: %w", want, ctx.Err())
			case <-tick.C:
			}
		}
	}
}
