package poller

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
