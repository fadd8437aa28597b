package poller

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// TestHTTPSourceConformance runs the shared suite on the built-in HTTP
// adapter, over an httptest feed.
func TestHTTPSourceConformance(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, feed *fakeFeed) Source {
		fs := newFeedServer(t, feed)
		return NewHTTPSource(fs.URL+"/changes", map[string]string{"Authorization": "Bearer s3cret"}, fs.Client())
	})
}

// TestGoSourceConformance runs the shared suite on a plugged-in Go Source.
func TestGoSourceConformance(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, feed *fakeFeed) Source { return memSource{feed: feed} })
}

// testSource is the suite every Source passes, on its own and through a
// poller. newSource makes the implementation under test over a feed the
// test controls.
func testSource(t *testing.T, newSource func(t *testing.T, feed *fakeFeed) Source) {
	const id = "shop"

	// run registers the source with a started poller on a fresh server.
	run := func(t *testing.T, feed *fakeFeed, interval time.Duration, mutate func(*Config)) (*streamstest.Env, *Poller) {
		env := streamstest.Start(t)
		cfg := testConfig(env)
		if mutate != nil {
			mutate(&cfg)
		}
		p := newPoller(t, cfg)
		p.Register(id, newSource(t, feed), interval, time.Hour)
		start(t, p)
		return env, p
	}

	t.Run("PagesFollowTheCursor", func(t *testing.T) {
		t.Parallel()
		src := newSource(t, newFeed(3, changes(1, 7)...))
		ctx := context.Background()
		for _, step := range []struct {
			cursor, next string
			ids          []string
			more         bool
		}{
			{"", "3", []string{"c1", "c2", "c3"}, true},
			{"3", "6", []string{"c4", "c5", "c6"}, true},
			{"6", "7", []string{"c7"}, false},
			{"7", "7", nil, false},
		} {
			pg, err := src.Poll(ctx, step.cursor)
			if err != nil {
				t.Fatalf("poll %q: %v", step.cursor, err)
			}
			var ids []string
			for _, c := range pg.Changes {
				ids = append(ids, c.ID)
			}
			if !slices.Equal(ids, step.ids) || pg.NextCursor != step.next || pg.HasMore != step.more {
				t.Fatalf("poll %q = ids %v next %q more %v, want %v %q %v", step.cursor, ids, pg.NextCursor, pg.HasMore, step.ids, step.next, step.more)
			}
		}
	})

	t.Run("ChangesKeepTheirFields", func(t *testing.T) {
		t.Parallel()
		want := change(42)
		pg, err := newSource(t, newFeed(10, want)).Poll(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(pg.Changes) != 1 {
			t.Fatalf("got %d changes, want 1", len(pg.Changes))
		}
		got := pg.Changes[0]
		if got.ID != want.ID || got.Type != want.Type || !got.Time.Equal(want.Time) || !jsonEqual(t, got.Data, want.Data) {
			t.Fatalf("change = %+v (data %s), want %+v (data %s)", got, got.Data, want, want.Data)
		}
	})

	t.Run("ErrorsAreClassified", func(t *testing.T) {
		t.Parallel()
		feed := newFeed(10, change(1))
		src := newSource(t, feed)
		for _, c := range []struct {
			mode feedMode
			want error
		}{{feedDown, ErrUnreachable}, {feedAuth, ErrAuth}} {
			feed.setMode(c.mode)
			if _, err := src.Poll(context.Background(), ""); !errors.Is(err, c.want) {
				t.Errorf("mode %d: err = %v, want %v", c.mode, err, c.want)
			}
		}
	})

	t.Run("EachChangeStoredOnce", func(t *testing.T) {
		t.Parallel()
		cs := changes(1, 5)
		cs[4].Time = time.Time{} // no time: the time of the poll
		feed := newFeed(2, cs...)
		env := streamstest.Start(t)
		// The source's own producer already published two of them.
		publishAsProducer(t, env, id, cs[1])
		publishAsProducer(t, env, id, cs[3])
		cfg := testConfig(env)
		p := newPoller(t, cfg)
		p.Register(id, newSource(t, feed), 5*time.Millisecond, time.Hour)
		start(t, p)

		waitState(t, p, id, "cursor 5", func(st *sourceState) bool { return st.Cursor == "5" })
		evs := sourceEvents(t, env, id)
		if got := eventIDs(evs); !slices.Equal(got, []string{"shop:c2", "shop:c4", "shop:c1", "shop:c3", "shop:c5"}) {
			t.Fatalf("events = %v, want each change once (c2, c4 by the producer)", got)
		}
		for i, ev := range evs {
			want := cs[slices.IndexFunc(cs, func(c Change) bool { return id+":"+c.ID == ev.ID })]
			if ev.Source != id || ev.Type != want.Type || !jsonEqual(t, ev.Data, want.Data) || ev.Target != "" {
				t.Errorf("event %d = %+v, want source %s type %s data %s", i, ev, id, want.Type, want.Data)
			}
			if ev.Time.IsZero() || (!want.Time.IsZero() && !ev.Time.Equal(want.Time)) {
				t.Errorf("event %s time = %s, want %s (or the poll time)", ev.ID, ev.Time, want.Time)
			}
		}

		// Later: one change the producer never sent, and an old one the feed
		// sends again. The missed one is stored once, the old one not again.
		feed.add(change(6), change(3))
		waitState(t, p, id, "cursor 7", func(st *sourceState) bool { return st.Cursor == "7" })
		if got := eventIDs(sourceEvents(t, env, id)); !slices.Equal(got, []string{"shop:c2", "shop:c4", "shop:c1", "shop:c3", "shop:c5", "shop:c6"}) {
			t.Fatalf("events = %v, want c6 added once and nothing else", got)
		}
	})

	// One invalid change does not stall the feed: the page's valid changes
	// are published, the cursor moves past it, and the skipped change is
	// recorded on the source with its place and reason.
	t.Run("InvalidChangeSkippedAndRecorded", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			name    string
			bad     func(*Change)
			wantID  string
			wantWhy string
		}{
			{"NoID", func(c *Change) { c.ID = "" }, "", "id: required"},
			{"NoType", func(c *Change) { c.Type = "" }, "c2", "type: required"},
			{"BadType", func(c *Change) { c.Type = "Order Updated" }, "c2", "type: \"Order Updated\" must be"},
			{"DataNotObject", func(c *Change) { c.Data = json.RawMessage(`[1,2]`) }, "c2", "data: must be a JSON object"},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				bad := change(2)
				c.bad(&bad)
				feed := newFeed(10, change(1), bad, change(3))
				env, p := run(t, feed, 5*time.Millisecond, nil)
				st := waitState(t, p, id, "cursor past the page", func(st *sourceState) bool { return st.Cursor == "3" })
				if got := eventIDs(sourceEvents(t, env, id)); !slices.Equal(got, []string{"shop:c1", "shop:c3"}) {
					t.Errorf("events = %v, want the page's two valid changes", got)
				}
				if st.Status != StatusHealthy || st.Failures != 0 || st.Skipped != 1 || len(st.SkippedRecent) != 1 {
					t.Fatalf("state = status %s failures %d skipped %d %+v, want healthy, no failure, one skipped", st.Status, st.Failures, st.Skipped, st.SkippedRecent)
				}
				sk := st.SkippedRecent[0]
				if sk.Index != 1 || sk.Cursor != "" || sk.ID != c.wantID || !strings.HasPrefix(sk.Reason, c.wantWhy) || sk.At.IsZero() {
					t.Errorf("skipped = %+v, want changes[1] of the first page, id %q, reason %q", sk, c.wantID, c.wantWhy)
				}
				if !strings.Contains(st.LastError, ErrBadFeed.Error()) || !strings.Contains(st.LastError, "changes[1]") || !strings.Contains(st.LastError, c.wantWhy) {
					t.Errorf("last_error = %q, want it to name changes[1] and say %q", st.LastError, c.wantWhy)
				}
				// The feed goes on; the skipped change is not counted again.
				feed.add(change(4))
				st = waitState(t, p, id, "cursor 4", func(st *sourceState) bool { return st.Cursor == "4" })
				if got := eventIDs(sourceEvents(t, env, id)); !slices.Equal(got, []string{"shop:c1", "shop:c3", "shop:c4"}) {
					t.Errorf("events = %v, want c4 after the page", got)
				}
				if st.Skipped != 1 {
					t.Errorf("skipped = %d, want the one", st.Skipped)
				}
			})
		}
	})

	t.Run("CursorThatDoesNotAdvance", func(t *testing.T) {
		t.Parallel()
		feed := newFeed(2, changes(1, 4)...)
		feed.setMode(feedStuck)
		env, p := run(t, feed, time.Hour, nil)
		st := waitState(t, p, id, "the poll recorded", func(st *sourceState) bool { return !st.LastPoll.IsZero() })
		if !strings.Contains(st.LastError, "did not advance") {
			t.Errorf("last_error = %q, want it to say the cursor did not advance", st.LastError)
		}
		// The first page was fine and is stored; the stuck one is not, and
		// the poll stopped there instead of asking again and again.
		if got := eventIDs(sourceEvents(t, env, id)); !slices.Equal(got, []string{"shop:c1", "shop:c2"}) {
			t.Errorf("events = %v, want the first page only", got)
		}
		if st.Cursor != "2" {
			t.Errorf("cursor = %q, want 2", st.Cursor)
		}
		if n := feed.pollCount(); n != 2 {
			t.Errorf("feed polled %d times, want 2", n)
		}
	})

	t.Run("StatusFollowsTheFeed", func(t *testing.T) {
		t.Parallel()
		feed := newFeed(10, change(1))
		feed.setMode(feedDown)
		env, p := run(t, feed, 5*time.Millisecond, func(c *Config) {
			c.UnreachableAfter = 2
			c.MaxBackoff = 20 * time.Millisecond
		})
		st := waitState(t, p, id, "unreachable", func(st *sourceState) bool { return st.Status == StatusUnreachable })
		if st.Failures < 2 || !strings.Contains(st.LastError, ErrUnreachable.Error()) {
			t.Errorf("unreachable with failures %d, last_error %q", st.Failures, st.LastError)
		}
		feed.setMode(feedOK)
		waitState(t, p, id, "healthy again", func(st *sourceState) bool {
			return st.Status == StatusHealthy && st.Transitions == 2 && st.Notified == 2
		})
		polls := feed.pollCount()
		streamstest.WaitFor(t, waitLong, "more polls", func() bool { return feed.pollCount() >= polls+3 })
		got := statusEvents(t, env, id)
		if len(got) != 2 {
			t.Fatalf("got %d connection.status_changed, want 2: %+v", len(got), got)
		}
		if got[0].From != StatusHealthy || got[0].To != StatusUnreachable || got[0].Seq != 1 || !strings.Contains(got[0].Error, ErrUnreachable.Error()) {
			t.Errorf("first status event = %+v, want healthy → unreachable with the error", got[0])
		}
		if got[1].From != StatusUnreachable || got[1].To != StatusHealthy || got[1].Seq != 2 || got[1].Error != "" {
			t.Errorf("second status event = %+v, want unreachable → healthy", got[1])
		}
		if evs := sourceEvents(t, env, id); len(evs) != 1 {
			t.Errorf("got %d events, want the one change once", len(evs))
		}
	})

	t.Run("AuthRequired", func(t *testing.T) {
		t.Parallel()
		feed := newFeed(10, change(1))
		feed.setMode(feedAuth)
		env, p := run(t, feed, time.Hour, nil)
		st := waitState(t, p, id, "auth_required", func(st *sourceState) bool {
			return st.Status == StatusAuthRequired && st.Notified == 1
		})
		if st.Failures != 1 || !strings.Contains(st.LastError, ErrAuth.Error()) {
			t.Errorf("auth_required after %d failures with last_error %q, want 1 and the auth error", st.Failures, st.LastError)
		}
		if got := statusEvents(t, env, id); len(got) != 1 || got[0].To != StatusAuthRequired {
			t.Errorf("status events = %+v, want one to auth_required", got)
		}
	})
}

func eventIDs(evs []streams.Event) []string {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
