package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// A crash after the page's publishes were acknowledged and before its
// cursor was saved: on restart the page is polled again and nothing is
// stored twice.
func TestCrashBeforeCursorSaveStoresNothingTwice(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	feed := newFeed(10, changes(1, 5)...)
	fs := newFeedServer(t, feed)
	cfg := testConfig(env)

	first := newPoller(t, cfg)
	var crashes atomic.Int32
	first.hooks.afterPublish = func(string) bool { crashes.Add(1); return true }
	first.Register("shop", NewHTTPSource(fs.URL, nil, fs.Client()), time.Hour, time.Hour)
	start(t, first)
	streamstest.WaitFor(t, waitLong, "a publish without its cursor save", func() bool { return crashes.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(sourceEvents(t, env, "shop")); n != 5 {
		t.Fatalf("%d events before the restart, want the page's 5", n)
	}
	if st := readState(t, first, "shop"); st.Cursor != "" {
		t.Fatalf("cursor %q saved by the crashed poll", st.Cursor)
	}

	second := newPoller(t, cfg)
	second.Register("shop", NewHTTPSource(fs.URL, nil, fs.Client()), time.Hour, time.Hour)
	start(t, second)
	waitState(t, second, "shop", "cursor 5 after the restart", func(st *sourceState) bool { return st.Cursor == "5" })
	if got := eventIDs(sourceEvents(t, env, "shop")); !slices.Equal(got, []string{"shop:c1", "shop:c2", "shop:c3", "shop:c4", "shop:c5"}) {
		t.Fatalf("events after the restart = %v, want each change once", got)
	}
	for i, since := range feed.sinceLog() {
		if since != "" {
			t.Fatalf("poll %d was from %q, want every poll from the unsaved start", i, since)
		}
	}
}

func TestOnePollFollowsHasMore(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		maxPages int
	}{
		{"InOnePoll", 0},
		// Two pages per poll: the rest is polled at the next tick, not
		// after the interval.
		{"PageLimit", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := streamstest.Start(t)
			feed := newFeed(2, changes(1, 7)...)
			cfg := testConfig(env)
			cfg.MaxPagesPerPoll = c.maxPages
			p := newPoller(t, cfg)
			p.Register("shop", memSource{feed}, time.Hour, time.Hour)
			start(t, p)
			st := waitState(t, p, "shop", "cursor 7, next poll after the interval", func(st *sourceState) bool {
				return st.Cursor == "7" && st.NextPoll.Sub(st.LastPoll) > 30*time.Minute
			})
			if got := feed.sinceLog(); !slices.Equal(got, []string{"", "2", "4", "6"}) {
				t.Fatalf("polled from %v, want each page once", got)
			}
			if n := len(sourceEvents(t, env, "shop")); n != 7 || st.Failures != 0 {
				t.Fatalf("%d events, %d failures; want 7 and none", n, st.Failures)
			}
		})
	}
}

// exclusiveSource fails the test if two polls of it ever overlap.
type exclusiveSource struct {
	t      *testing.T
	src    Source
	mu     sync.Mutex
	active bool
}

func (s *exclusiveSource) Poll(ctx context.Context, cursor string) (Page, error) {
	s.mu.Lock()
	if s.active {
		s.t.Error("two pollers polled one source at once")
	}
	s.active = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active = false
		s.mu.Unlock()
	}()
	// Stay in the poll for a moment, so that an overlap has a chance.
	select {
	case <-time.After(time.Millisecond):
	case <-ctx.Done():
	}
	return s.src.Poll(ctx, cursor)
}

// Two pollers on one source: the lease keeps their polls apart, and each
// change is stored once.
func TestPollersShareASource(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	feed := newFeed(3, changes(1, 10)...)
	src := &exclusiveSource{t: t, src: memSource{feed}}
	var pollers []*Poller
	for range 2 {
		_, js := env.Connect(t, "poller")
		cfg := testConfig(env)
		cfg.JS = js
		p := newPoller(t, cfg)
		p.Register("shop", src, 2*time.Millisecond, time.Hour)
		pollers = append(pollers, p)
	}
	for _, p := range pollers {
		start(t, p)
	}
	waitState(t, pollers[0], "shop", "cursor 10", func(st *sourceState) bool { return st.Cursor == "10" })
	feed.add(changes(11, 20)...)
	waitState(t, pollers[1], "shop", "cursor 20", func(st *sourceState) bool { return st.Cursor == "20" })
	got := eventIDs(sourceEvents(t, env, "shop"))
	if len(got) != 20 {
		t.Fatalf("%d events stored, want 20: %v", len(got), got)
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != 20 {
		t.Fatalf("an event stored twice: %v", got)
	}
}

func TestStopWithoutStartAndTwice(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	ctx := context.Background()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop without start: %v", err)
	}
	start(t, p)
	if err := p.Start(ctx); err == nil {
		t.Fatal("second start succeeded")
	}
	for range 2 {
		if err := p.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	if err := p.Start(ctx); err == nil {
		t.Fatal("start after stop succeeded")
	}
}

// blockingSource never answers until its context ends.
type blockingSource struct{ entered chan struct{} }

func (s blockingSource) Poll(ctx context.Context, _ string) (Page, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return Page{}, ctx.Err()
}

// Stop is bounded by its context: a poll that does not finish is cancelled,
// and nothing is recorded for it.
func TestStopCancelsAPollInFlight(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	src := blockingSource{entered: make(chan struct{}, 1)}
	p.Register("slow", src, time.Hour, time.Hour)
	start(t, p)
	streamstest.WaitFor(t, waitLong, "the poll to start", func() bool { return len(src.entered) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err == nil {
		t.Fatal("stop returned nil although a poll outlived its context")
	}
	if st := readState(t, p, "slow"); st == nil || !st.LastPoll.IsZero() || st.Failures != 0 {
		t.Fatalf("state after a cancelled poll = %+v, want nothing recorded", st)
	}
}

// staticSource answers the same page to every poll, counting them.
type staticSource struct {
	page  Page
	polls atomic.Int32
}

func (s *staticSource) Poll(ctx context.Context, _ string) (Page, error) {
	s.polls.Add(1)
	return s.page, ctx.Err()
}

// A hostile page of invalid changes cannot grow the source's state: the
// record keeps the last 10, with bounded text, and the same page polled
// again from the same cursor is not counted again. The API shows them.
func TestSkippedChangesAreBoundedAndCountedOnce(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	var cs []Change
	for i := range 15 {
		c := change(i)
		// What a Source could not read, quoting the feed at length.
		c.Err = fmt.Errorf("time: %q is not RFC 3339", strings.Repeat("Ü", 2000))
		cs = append(cs, c)
	}
	cs = append(cs, change(99))
	src := &staticSource{page: Page{Changes: cs}} // no next cursor: polled from "" again and again
	p := newPoller(t, testConfig(env))
	p.Register("shop", src, 2*time.Millisecond, time.Hour)
	start(t, p)
	streamstest.WaitFor(t, waitLong, "the page polled 5 times", func() bool { return src.polls.Load() >= 5 })
	st := waitState(t, p, "shop", "the skips recorded", func(st *sourceState) bool { return st.Skipped > 0 })
	if st.Skipped != 15 || len(st.SkippedRecent) != maxSkippedKept {
		t.Fatalf("skipped %d, %d kept; want 15 once, the last %d kept", st.Skipped, len(st.SkippedRecent), maxSkippedKept)
	}
	for i, sk := range st.SkippedRecent {
		if sk.Index != 5+i || sk.ID != cs[5+i].ID || len(sk.Reason) > maxSkippedReason || !utf8.ValidString(sk.Reason) || !strings.HasPrefix(sk.Reason, "time: ") {
			t.Errorf("kept skip %d = index %d id %q reason (%d bytes) %.40q", i, sk.Index, sk.ID, len(sk.Reason), sk.Reason)
		}
	}
	if len(st.LastError) > 1024 || !strings.Contains(st.LastError, "(and 14 more)") {
		t.Errorf("last_error (%d bytes) = %.200q, want the first skip and the count", len(st.LastError), st.LastError)
	}
	if got := eventIDs(sourceEvents(t, env, "shop")); !slices.Equal(got, []string{"shop:c99"}) {
		t.Errorf("events = %v, want the valid change once", got)
	}
	c := &sourceConfig{ID: "shop"}
	b, err := json.Marshal(view(c, st))
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		SkippedChanges int `json:"skipped_changes"`
		LastSkipped    []struct {
			Index  int    `json:"index"`
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"last_skipped"`
	}
	if err := json.Unmarshal(b, &shown); err != nil {
		t.Fatal(err)
	}
	if shown.SkippedChanges != 15 || len(shown.LastSkipped) != maxSkippedKept || shown.LastSkipped[9].ID != "c14" {
		t.Errorf("the API shows %s", b)
	}
}
