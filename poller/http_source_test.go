package poller

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestHTTPSourceRequests(t *testing.T) {
	t.Parallel()
	fs := newFeedServer(t, newFeed(2, changes(1, 3)...))
	src := NewHTTPSource(fs.URL+"/changes?tenant=acme", map[string]string{"Authorization": "Bearer s3cret", "X-Api-Version": "2"}, fs.Client())
	ctx := context.Background()
	pg, err := src.Poll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Poll(ctx, pg.NextCursor); err != nil {
		t.Fatal(err)
	}
	headers, hadSince := fs.requests()
	if len(headers) != 2 || hadSince[0] || !hadSince[1] {
		t.Fatalf("requests: %d, since sent %v; want no since on the first poll and since on the second", len(headers), hadSince)
	}
	if got := fs.feed.sinceLog(); got[1] != "2" {
		t.Errorf("second poll since = %q, want 2", got[1])
	}
	for _, h := range headers {
		if h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Api-Version") != "2" || h.Get("Accept") != "application/json" {
			t.Errorf("request headers = %v, want the source's headers and Accept: application/json", h)
		}
	}
}

func TestHTTPSourceKeepsTheURLsQuery(t *testing.T) {
	t.Parallel()
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query()
		_, _ = w.Write([]byte(`{"changes":[]}`))
	}))
	defer srv.Close()
	if _, err := NewHTTPSource(srv.URL+"/feed?tenant=acme", nil, srv.Client()).Poll(context.Background(), "a b&c"); err != nil {
		t.Fatal(err)
	}
	if got.Get("tenant") != "acme" || got.Get("since") != "a b&c" {
		t.Fatalf("query = %v, want tenant kept and since escaped", got)
	}
}

func TestHTTPSourceStatusCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		code int
		want error
	}{
		{401, ErrAuth}, {403, ErrAuth},
		{500, ErrUnreachable}, {502, ErrUnreachable}, {503, ErrUnreachable}, {408, ErrUnreachable}, {429, ErrUnreachable},
		{404, ErrBadFeed}, {400, ErrBadFeed}, {302, ErrBadFeed}, {204, ErrBadFeed},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.code == 302 {
				w.Header().Set("Location", "http://169.254.169.254/")
			}
			w.WriteHeader(c.code)
		}))
		src := NewHTTPSource(srv.URL+"/feed?token=t0ps3cret", nil, netguard.NewClient(&netguard.Dialer{AllowPrivate: true}, 1, time.Second))
		_, err := src.Poll(context.Background(), "")
		srv.Close()
		if !errors.Is(err, c.want) {
			t.Errorf("status %d: err = %v, want %v", c.code, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "t0ps3cret") {
			t.Errorf("status %d: error %q repeats the URL", c.code, err)
		}
	}
}

func TestHTTPSourceErrorsHideTheURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/feed?token=t0ps3cret"
	srv.Close() // nothing listens any more
	_, err := NewHTTPSource(u, nil, netguard.NewClient(&netguard.Dialer{AllowPrivate: true}, 1, time.Second)).Poll(context.Background(), "")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "pa55word") || strings.Contains(err.Error(), "t0ps3cret") {
		t.Fatalf("error %q repeats the URL's credentials", err)
	}
}

func TestHTTPSourceDefaultClientRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	fs := newFeedServer(t, newFeed(1, change(1)))
	_, err := NewHTTPSource(fs.URL, nil, nil).Poll(context.Background(), "")
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, netguard.ErrForbidden) {
		t.Fatalf("err = %v, want a refused address (ErrUnreachable, netguard.ErrForbidden)", err)
	}
	if n := fs.feed.pollCount(); n != 0 {
		t.Fatalf("feed reached %d times", n)
	}
}

func TestHTTPSourceTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 50 * time.Millisecond
	_, err := NewHTTPSource(srv.URL, nil, client).Poll(context.Background(), "")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v, want an unreachable timeout", err)
	}
}

func TestHTTPSourceBodyLimit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"changes":[],"pad":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", MaxFeedBody)))
		_, _ = w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	_, err := NewHTTPSource(srv.URL, nil, srv.Client()).Poll(context.Background(), "")
	if !errors.Is(err, ErrBadFeed) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a bad feed over the body limit", err)
	}
}

func TestDecodePage(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	good := []struct {
		name, body string
		want       Page
	}{
		{"Empty", `{"changes":[]}`, Page{Changes: []Change{}}},
		{"Full", `{"changes":[{"id":"a1","type":"order.created","time":"2025-05-01T10:00:00+02:00","data":{"x":1}}],"next_cursor":"c9","has_more":true}`,
			Page{Changes: []Change{{ID: "a1", Type: "order.created", Time: time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC), Data: []byte(`{"x":1}`)}}, NextCursor: "c9", HasMore: true}},
		{"NumbersAndNoTime", `{"changes":[{"id":17,"type":"a","time":null,"data":{}}],"next_cursor":18,"has_more":null}`,
			Page{Changes: []Change{{ID: "17", Type: "a", Time: now, Data: []byte(`{}`)}}, NextCursor: "18"}},
		{"UnknownFieldsIgnored", `{"changes":[{"id":"a","type":"a","data":{},"extra":1}],"total":3}`,
			Page{Changes: []Change{{ID: "a", Type: "a", Time: now, Data: []byte(`{}`)}}}},
	}
	for _, c := range good {
		got, err := decodePage([]byte(c.body), now)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got.Changes) != len(c.want.Changes) || got.NextCursor != c.want.NextCursor || got.HasMore != c.want.HasMore {
			t.Errorf("%s: page = %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i, w := range c.want.Changes {
			g := got.Changes[i]
			if g.ID != w.ID || g.Type != w.Type || !g.Time.Equal(w.Time) || string(g.Data) != string(w.Data) {
				t.Errorf("%s: change %d = %+v, want %+v", c.name, i, g, w)
			}
		}
	}
	bad := []struct{ name, body, want string }{
		{"NotJSON", `<html>502 Bad Gateway</html>`, "body: not a JSON object"},
		{"Array", `[]`, "body: not a JSON object"},
		{"Trailing", `{"changes":[]} {}`, "body: data after the JSON object"},
		{"NoChanges", `{"next_cursor":"x"}`, "changes: required"},
		{"ChangesNotArray", `{"changes":{}}`, "changes: must be an array"},
		{"CursorObject", `{"changes":[],"next_cursor":{}}`, "next_cursor: must be a string"},
		{"HasMoreString", `{"changes":[],"has_more":"yes"}`, "has_more: must be a boolean"},
	}
	for _, c := range bad {
		_, err := decodePage([]byte(c.body), now)
		if !errors.Is(err, ErrBadFeed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want a bad feed saying %q", c.name, err, c.want)
		}
	}
	// A change that is not valid does not fail its page: it comes back with
	// Err naming the field (and its id, when readable), for the poller to
	// skip; the valid change after it is read as usual.
	badChange := []struct{ name, change, wantID, want string }{
		{"ChangeNotObject", `"x"`, "", "must be a JSON object"},
		{"NoID", `{"type":"a","data":{}}`, "", "id: required"},
		{"EmptyID", `{"id":"","type":"a","data":{}}`, "", "id: required"},
		{"IDWithSpace", `{"id":"a b","type":"a","data":{}}`, "a b", "id: must not contain spaces"},
		{"IDBool", `{"id":true,"type":"a","data":{}}`, "", "id: must be a string"},
		{"NoType", `{"id":"a","data":{}}`, "a", "type: required"},
		{"BadType", `{"id":"a","type":"Order.Created","data":{}}`, "a", "type:"},
		{"TypeNumber", `{"id":"a","type":5,"data":{}}`, "a", "type: must be a string"},
		{"BadTime", `{"id":17,"type":"a","time":"yesterday","data":{}}`, "17", "time:"},
		{"TimeNumber", `{"id":"a","type":"a","time":1700000000,"data":{}}`, "a", "time: must be an RFC 3339 string"},
		{"NoData", `{"id":"a","type":"a"}`, "a", "data: required"},
		{"DataArray", `{"id":"a","type":"a","data":[1]}`, "a", "data: must be a JSON object"},
		{"DataString", `{"id":"a","type":"a","data":"{}"}`, "a", "data: must be a JSON object"},
	}
	for _, c := range badChange {
		pg, err := decodePage([]byte(`{"changes":[`+c.change+`,{"id":"ok","type":"a","data":{}}]}`), now)
		if err != nil {
			t.Errorf("%s: the page failed: %v", c.name, err)
			continue
		}
		if len(pg.Changes) != 2 || pg.Changes[0].Err == nil || !strings.HasPrefix(pg.Changes[0].Err.Error(), c.want) ||
			pg.Changes[0].ID != c.wantID || pg.Changes[1].Err != nil || pg.Changes[1].ID != "ok" {
			t.Errorf("%s: changes = %+v, want the first with id %q and an error saying %q, the second read", c.name, pg.Changes, c.wantID, c.want)
		}
	}
}

// FuzzDecodePage: the page decoder never panics, every error is ErrBadFeed,
// and every change of a page it accepts is valid or carries its Err.
func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{
		`{"changes":[]}`,
		`{"changes":[{"id":"a1","type":"order.created","time":"2025-05-01T10:00:00Z","data":{"x":1}}],"next_cursor":"c9","has_more":true}`,
		`{"changes":[{"id":17,"type":"a","data":{}}],"next_cursor":18}`,
		`{"changes":[{"id":"","type":"a","data":{}}]}`,
		`{"changes":[{"id":"a","type":"a","data":[1]}]}`,
		`{"changes":null}`, `null`, `[]`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		pg, err := decodePage(body, now)
		if err != nil {
			if !errors.Is(err, ErrBadFeed) {
				t.Fatalf("error %v is not ErrBadFeed", err)
			}
			return
		}
		for i, c := range pg.Changes {
			if c.Err != nil {
				continue
			}
			if err := streams.ValidateID(c.ID); err != nil {
				t.Fatalf("accepted change %d with id %q: %v", i, c.ID, err)
			}
			if err := streams.ValidateType(c.Type); err != nil {
				t.Fatalf("accepted change %d with type %q: %v", i, c.Type, err)
			}
			if err := streams.ValidateData(c.Data, MaxFeedBody); err != nil {
				t.Fatalf("accepted change %d with data %q: %v", i, c.Data, err)
			}
			if c.Time.IsZero() {
				t.Fatalf("accepted change %d without a time", i)
			}
		}
	})
}

// A feed whose pages cannot be read is stalled: the error is shown at once,
// and after UnreachableAfter polls in a row the source is unreachable (with
// its connection.status_changed naming the bad feed), polled with back-off,
// and healthy again once a page reads.
func TestPollerReportsAFeedThatIsNotJSON(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	fs := newFeedServer(t, newFeed(10, change(1)))
	fs.setRaw([]byte("<html>maintenance</html>"))
	cfg := testConfig(env)
	cfg.MaxBackoff = 20 * time.Millisecond
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	p := newPoller(t, cfg)
	if v := polls(t, reg, pollBadFeed); v != 0 {
		t.Fatalf("polls{bad_feed} = %v before any poll, want present at 0", v)
	}
	p.Register("erp", NewHTTPSource(fs.URL, nil, fs.Client()), 5*time.Millisecond, time.Hour)
	start(t, p)
	st := waitState(t, p, "erp", "the first poll recorded", func(st *sourceState) bool { return !st.LastPoll.IsZero() })
	if !strings.Contains(st.LastError, "bad feed: body: not a JSON object") || st.Cursor != "" {
		t.Fatalf("state = %+v, want last_error about JSON, cursor unchanged", st)
	}
	st = waitState(t, p, "erp", "unreachable, notified", func(st *sourceState) bool {
		return st.Status == StatusUnreachable && st.Notified == 1
	})
	if st.Failures < UnreachableAfterDefault {
		t.Errorf("unreachable after %d failures, want %d", st.Failures, UnreachableAfterDefault)
	}
	if v := polls(t, reg, pollBadFeed); v < UnreachableAfterDefault {
		t.Errorf("polls{bad_feed} = %v, want at least %d", v, UnreachableAfterDefault)
	}
	if n := len(sourceEvents(t, env, "erp")); n != 0 {
		t.Fatalf("%d events stored, want 0", n)
	}
	fs.setRaw(nil)
	waitState(t, p, "erp", "healthy again with the change stored", func(st *sourceState) bool {
		return st.Status == StatusHealthy && st.Cursor == "1" && st.Notified == 2
	})
	got := statusEvents(t, env, "erp")
	if len(got) != 2 || got[0].To != StatusUnreachable || !strings.Contains(got[0].Error, "bad feed: body: not a JSON object") || got[1].To != StatusHealthy {
		t.Fatalf("status events = %+v, want → unreachable (bad feed), → healthy", got)
	}
}

// A feed answering a malformed status line, which Go's error quotes whole,
// puts at most 1 KiB of it into the source's last error.
func TestPollerCutsAHostileFeedsError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				_, _ = io.WriteString(conn, "HTTP/1.1 abc"+strings.Repeat("ü", 20<<10)+"\r\n\r\n")
			})
		}
	})
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	client := netguard.NewClient(&netguard.Dialer{AllowPrivate: true}, 1, 5*time.Second)
	t.Cleanup(client.CloseIdleConnections)
	p.Register("erp", NewHTTPSource("http://"+ln.Addr().String()+"/changes", nil, client), time.Hour, time.Hour)
	start(t, p)
	st := waitState(t, p, "erp", "the poll recorded", func(st *sourceState) bool { return st.LastError != "" })
	if !strings.Contains(st.LastError, "malformed HTTP status code") || len(st.LastError) > 1<<10 || !utf8.ValidString(st.LastError) {
		t.Fatalf("last_error (%d bytes, valid UTF-8 %v) = %.120q…, want the malformed status in at most 1 KiB", len(st.LastError), utf8.ValidString(st.LastError), st.LastError)
	}
}

// polls is hookstream_poller_polls_total{result}.
func polls(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookstream_poller_polls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no hookstream_poller_polls_total{result=%q}", result)
	return 0
}
