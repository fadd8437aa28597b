package poller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestReadyFollowsStartAndStop(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("Ready before Start = %v, want not started", err)
	}
	start(t, p)
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready after Start = %v", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Ready after Stop = %v, want stopped", err)
	}
}

// A watch ends as it does in production when the ordered consumer behind it
// cannot be recreated: here the sources bucket's stream is deleted, so that
// after the missed heartbeats (about 10s) the client's consumer reset finds
// no stream and closes the watch for good. Ready fails while the watch is
// down; once a starting role's streams.Ensure has re-created the bucket, the
// watch is opened again, a source created then is polled, and the sources
// lost with the old bucket are forgotten.
func TestSourcesWatchIsOpenedAgainAfterItEnds(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	cfg := testConfig(env)
	cfg.RewatchMax = 50 * time.Millisecond
	p := newPoller(t, cfg)
	start(t, p)
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	early := newFeedServer(t, newFeed(10, change(1)))
	putSource(t, p, "early", early.URL+"/changes")
	waitState(t, p, "early", "the early source polled", func(st *sourceState) bool { return st.Cursor == "1" })
	ctx := context.Background()
	if err := env.JS.DeleteStream(ctx, "KV_"+streams.BucketSources); err != nil {
		t.Fatal(err)
	}
	streamstest.WaitFor(t, 3*waitLong, "Ready to fail while the sources watch is down", func() bool {
		err := p.Ready()
		return err != nil && strings.Contains(err.Error(), streams.BucketSources)
	})
	// Still down while the bucket is missing: every attempt to watch it
	// fails.
	if err := p.Ready(); err == nil {
		t.Fatal("Ready while the bucket is missing")
	}

	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streams.Ensure(ensureCtx, env.JS, env.Config); err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	feed := newFeed(10, changes(1, 2)...)
	fs := newFeedServer(t, feed)
	putSource(t, p, "late", fs.URL+"/changes")
	waitState(t, p, "late", "the source created after the watch came back polled", func(st *sourceState) bool { return st.Cursor == "2" })
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready after the watch came back = %v", err)
	}
	// The view is the bucket's again: the source lost with the old bucket
	// is forgotten, not polled from a stale view for ever.
	if _, ok := p.specFor("early"); ok {
		t.Error("the source of the deleted bucket is still known after the watch came back")
	}
	if n := len(sourceEvents(t, env, "late")); n != 2 {
		t.Fatalf("%d events of the late source, want 2", n)
	}
}

// putSource stores a source as the API does.
func putSource(t *testing.T, p *Poller, id, changesURL string) {
	t.Helper()
	now := time.Now().UTC()
	b, err := streams.Marshal(&sourceConfig{ID: id, ChangesURL: changesURL, Interval: time.Hour, ExpectedWindow: time.Hour,
		Headers: map[string]string{}, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.sourcesKV.Put(context.Background(), id, b); err != nil {
		t.Fatalf("put source %s: %v", id, err)
	}
}
