package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// waitLong bounds every wait: loose, since the machine is shared.
const waitLong = 20 * time.Second

// feedMode is how a fakeFeed answers.
type feedMode int

const (
	feedOK feedMode = iota
	// feedDown: connection-level failure (HTTP 503; a Go source's
	// ErrUnreachable).
	feedDown
	// feedAuth: credentials refused (HTTP 401; ErrAuth).
	feedAuth
	// feedStuck: the page after the first has_more page repeats the cursor
	// it was asked for, with has_more still true.
	feedStuck
)

// fakeFeed is a change feed under the test's control: changes are served
// pageSize at a time, the cursor being the index of the next change.
type fakeFeed struct {
	mu       sync.Mutex
	changes  []Change
	pageSize int
	mode     feedMode
	polls    int
	sinces   []string
}

func newFeed(pageSize int, changes ...Change) *fakeFeed {
	return &fakeFeed{pageSize: pageSize, changes: changes}
}

// change is a valid change numbered n.
func change(n int) Change {
	return Change{
		ID:   "c" + strconv.Itoa(n),
		Type: "order.updated",
		Time: time.Date(2025, 1, 2, 3, 4, n%60, 0, time.UTC),
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

func changes(from, to int) []Change {
	var cs []Change
	for n := from; n <= to; n++ {
		cs = append(cs, change(n))
	}
	return cs
}

func (f *fakeFeed) add(cs ...Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, cs...)
}

func (f *fakeFeed) setMode(m feedMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

func (f *fakeFeed) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *fakeFeed) sinceLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sinces...)
}

// page answers a poll at since, counting it; err is one of the feed modes'
// errors, wrapping the poller's sentinels.
func (f *fakeFeed) page(since string) (Page, feedMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	f.sinces = append(f.sinces, since)
	if f.mode == feedDown || f.mode == feedAuth {
		return Page{}, f.mode
	}
	start, _ := strconv.Atoi(since)
	start = min(start, len(f.changes))
	end := min(start+f.pageSize, len(f.changes))
	pg := Page{Changes: append([]Change(nil), f.changes[start:end]...), NextCursor: strconv.Itoa(end), HasMore: end < len(f.changes)}
	if f.mode == feedStuck && start > 0 {
		pg.NextCursor, pg.HasMore = since, true
	}
	return pg, feedOK
}

// memSource is the in-memory Go implementation of Source over a fakeFeed.
type memSource struct{ feed *fakeFeed }

func (s memSource) Poll(ctx context.Context, cursor string) (Page, error) {
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	pg, mode := s.feed.page(cursor)
	switch mode {
	case feedDown:
		return Page{}, fmt.Errorf("%w: feed down", ErrUnreachable)
	case feedAuth:
		return Page{}, fmt.Errorf("%w: token expired", ErrAuth)
	}
	return pg, nil
}

// feedServer serves a fakeFeed over HTTP in DESIGN.md's format. It records
// the request headers and whether since was sent.
type feedServer struct {
	*httptest.Server
	feed *fakeFeed

	mu        sync.Mutex
	headers   []http.Header
	hadSince  []bool
	rawAnswer []byte // when set, the body of every 200 answer
}

func newFeedServer(t *testing.T, feed *fakeFeed) *feedServer {
	fs := &feedServer{feed: feed}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	fs.headers = append(fs.headers, r.Header.Clone())
	fs.hadSince = append(fs.hadSince, r.URL.Query().Has("since"))
	raw := fs.rawAnswer
	fs.mu.Unlock()
	pg, mode := fs.feed.page(r.URL.Query().Get("since"))
	switch mode {
	case feedDown:
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	case feedAuth:
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if raw != nil {
		_, _ = w.Write(raw)
		return
	}
	type wire struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Time string          `json:"time,omitempty"`
		Data json.RawMessage `json:"data,omitempty"`
	}
	out := struct {
		Changes    []wire `json:"changes"`
		NextCursor string `json:"next_cursor"`
		HasMore    bool   `json:"has_more"`
	}{Changes: []wire{}, NextCursor: pg.NextCursor, HasMore: pg.HasMore}
	for _, c := range pg.Changes {
		wc := wire{ID: c.ID, Type: c.Type, Data: c.Data}
		if !c.Time.IsZero() {
			wc.Time = c.Time.Format(time.RFC3339Nano)
		}
		out.Changes = append(out.Changes, wc)
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (fs *feedServer) requests() ([]http.Header, []bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]http.Header(nil), fs.headers...), append([]bool(nil), fs.hadSince...)
}

func (fs *feedServer) setRaw(b []byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rawAnswer = b
}

// fakeClock is an injected clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is a Config scaled for tests: millisecond ticks, any interval.
func testConfig(env *streamstest.Env) Config {
	return Config{
		JS:                    env.JS,
		AllowPrivate:          true,
		IntervalDefault:       time.Hour,
		ExpectedWindowDefault: time.Hour,
		MaxBackoff:            time.Hour,
		RequestTimeout:        5 * time.Second,
		Tick:                  2 * time.Millisecond,
		MinInterval:           time.Millisecond,
		LeaseTTL:              time.Second,
		Logger:                slog.New(slog.DiscardHandler),
	}
}

// newPoller makes a poller (not started) that is stopped when the test ends.
func newPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new poller: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

func start(t *testing.T, p *Poller) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
}

// readState reads source id's state from the bucket (nil if none).
func readState(t *testing.T, p *Poller, id string) *sourceState {
	t.Helper()
	st, _, _, err := streams.Get[sourceState](context.Background(), p.stateKV, id)
	if err != nil {
		t.Fatalf("read state %s: %v", id, err)
	}
	return st
}

// waitState waits until source id's stored state satisfies cond.
func waitState(t *testing.T, p *Poller, id, msg string, cond func(*sourceState) bool) *sourceState {
	t.Helper()
	var st *sourceState
	streamstest.WaitFor(t, waitLong, msg, func() bool {
		st = readState(t, p, id)
		return st != nil && cond(st)
	})
	return st
}

// readEvents returns the events stored in EVENTS on subjects matching
// filter, in order.
func readEvents(t *testing.T, env *streamstest.Env, filter string) []streams.Event {
	t.Helper()
	ctx := context.Background()
	s, err := env.JS.Stream(ctx, streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var out []streams.Event
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("read events %s: %v", filter, err)
		}
		seq = m.Sequence + 1
		var ev streams.Event
		if err := streams.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("decode event at %d: %v", m.Sequence, err)
		}
		out = append(out, ev)
	}
}

// sourceEvents are the events of source src.
func sourceEvents(t *testing.T, env *streamstest.Env, src string) []streams.Event {
	return readEvents(t, env, streams.SubjectEvents+"."+src+".>")
}

// statusEvents are the connection.status_changed events of source src.
func statusEvents(t *testing.T, env *streamstest.Env, src string) []streams.ConnectionStatusChanged {
	t.Helper()
	var out []streams.ConnectionStatusChanged
	for _, ev := range readEvents(t, env, streams.EventSubject(streams.OwnSource, streams.TypeConnectionStatusChanged)) {
		var d streams.ConnectionStatusChanged
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("decode status event %s: %v", ev.ID, err)
		}
		if d.Source != src {
			continue
		}
		if want := streams.OwnEventID(streams.TypeConnectionStatusChanged, src, d.Seq); ev.ID != want {
			t.Errorf("status event id = %q, want %q", ev.ID, want)
		}
		out = append(out, d)
	}
	return out
}

// publishAsProducer stores an event as the source's own producer would.
func publishAsProducer(t *testing.T, env *streamstest.Env, src string, c Change) {
	t.Helper()
	ev := &streams.Event{ID: src + ":" + c.ID, Type: c.Type, Source: src, Time: c.Time, Data: c.Data}
	if _, err := streams.PublishEvent(context.Background(), env.JS, ev); err != nil {
		t.Fatalf("publish as producer: %v", err)
	}
}
