package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{
		{0, time.Minute}, {1, 2 * time.Minute}, {2, 4 * time.Minute}, {4, 16 * time.Minute},
		{5, 30 * time.Minute}, {6, 30 * time.Minute}, {1000, 30 * time.Minute},
	} {
		if got := backoff(time.Minute, MaxBackoffDefault, c.failures); got != c.want {
			t.Errorf("backoff(1m, 30m, %d) = %s, want %s", c.failures, got, c.want)
		}
	}
}

// A feed that goes down: unreachable after 3 failed polls, polls backing
// off from the interval up to the cap, healthy again at the first success
// followed at once by a catch-up poll, and exactly two
// connection.status_changed. The clock is injected, so every next poll is
// asserted exactly.
func TestUnreachableBacksOffAndRecovers(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	clock := newClock()
	t0 := clock.Now()
	cfg := testConfig(env)
	cfg.Now = clock.Now
	cfg.MaxBackoff = 4 * time.Minute
	feed := newFeed(10, change(1))
	feed.setMode(feedDown)
	p := newPoller(t, cfg)
	p.Register("crm", memSource{feed}, time.Minute, time.Hour)
	start(t, p)

	// step waits until poll n is recorded with the status and the next poll
	// it asks for.
	step := func(n int, status string, next time.Duration) *sourceState {
		t.Helper()
		st := waitState(t, p, "crm", fmt.Sprintf("poll %d: %s, next in %s", n, status, next), func(st *sourceState) bool {
			return feed.pollCount() == n && st.Status == status && st.NextPoll.Equal(clock.Now().Add(next))
		})
		if got := feed.pollCount(); got != n {
			t.Fatalf("%d polls, want %d", got, n)
		}
		return st
	}
	step(1, StatusHealthy, time.Minute)
	clock.Advance(time.Minute)
	step(2, StatusHealthy, time.Minute)
	clock.Advance(time.Minute)
	st := step(3, StatusUnreachable, 2*time.Minute)
	if st.Failures != 3 || !strings.Contains(st.LastError, "feed down") {
		t.Fatalf("unreachable with %d failures and last_error %q", st.Failures, st.LastError)
	}
	clock.Advance(2 * time.Minute)
	step(4, StatusUnreachable, 4*time.Minute)
	clock.Advance(4 * time.Minute)
	step(5, StatusUnreachable, 4*time.Minute) // capped

	feed.setMode(feedOK)
	clock.Advance(4 * time.Minute)
	// Poll 6 succeeds and asks for a catch-up poll at once (the clock does
	// not move); poll 7 is that catch-up poll.
	st = step(7, StatusHealthy, time.Minute)
	if got := feed.sinceLog()[5:]; !slices.Equal(got, []string{"", "1"}) {
		t.Fatalf("after recovery polled from %v, want the recovery poll then the catch-up poll", got)
	}
	if st.Failures != 0 || !st.LastSuccess.Equal(clock.Now()) || st.LastError == "" {
		t.Fatalf("recovered state = %+v, want failures 0, last_success now, the last error kept", st)
	}

	waitState(t, p, "crm", "both status changes published", func(st *sourceState) bool { return st.Notified == 2 })
	got := statusEvents(t, env, "crm")
	want := []streams.ConnectionStatusChanged{
		{Source: "crm", From: StatusHealthy, To: StatusUnreachable, Error: st.LastError, Since: t0.Add(2 * time.Minute), Seq: 1},
		{Source: "crm", From: StatusUnreachable, To: StatusHealthy, Since: t0.Add(12 * time.Minute), Seq: 2},
	}
	if len(got) != 2 {
		t.Fatalf("got %d connection.status_changed, want 2: %+v", len(got), got)
	}
	for i := range want {
		if got[i].Source != want[i].Source || got[i].From != want[i].From || got[i].To != want[i].To ||
			!got[i].Since.Equal(want[i].Since) || got[i].Seq != want[i].Seq || got[i].Error != want[i].Error {
			t.Errorf("status event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// auth_required at the first 401, with back-off; a later success returns
// the source to healthy.
func TestAuthRequiredBacksOff(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	clock := newClock()
	cfg := testConfig(env)
	cfg.Now = clock.Now
	feed := newFeed(10)
	feed.setMode(feedAuth)
	p := newPoller(t, cfg)
	p.Register("erp", memSource{feed}, time.Minute, time.Hour)
	start(t, p)
	waitState(t, p, "erp", "auth_required, next poll in 2m", func(st *sourceState) bool {
		return st.Status == StatusAuthRequired && st.NextPoll.Equal(clock.Now().Add(2*time.Minute))
	})
	clock.Advance(2 * time.Minute)
	waitState(t, p, "erp", "auth_required, next poll in 4m", func(st *sourceState) bool {
		return st.Status == StatusAuthRequired && st.NextPoll.Equal(clock.Now().Add(4*time.Minute)) && st.Failures == 2
	})
	feed.setMode(feedOK)
	clock.Advance(4 * time.Minute)
	waitState(t, p, "erp", "healthy", func(st *sourceState) bool { return st.Status == StatusHealthy && st.Notified == 2 })
	got := statusEvents(t, env, "erp")
	if len(got) != 2 || got[0].To != StatusAuthRequired || got[1].From != StatusAuthRequired || got[1].To != StatusHealthy {
		t.Fatalf("status events = %+v, want healthy → auth_required → healthy", got)
	}
}

// The outbox: a status change recorded but never published (a crash between
// the two) is published by the next poller, once, under its own id, even if
// it had in fact been published already.
func TestOutboxPublishesAnUnsentStatusChangeOnce(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	cfg := testConfig(env)
	p := newPoller(t, cfg)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, id := range []string{"erp", "crm"} {
		st := newState(id, now.Add(-time.Hour))
		st.LastPoll, st.NextPoll = now, now.Add(time.Hour)
		st.transition(StatusUnreachable, "source unreachable: status 503", now)
		b, err := streams.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.stateKV.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		p.Register(id, memSource{newFeed(1)}, time.Hour, time.Hour)
	}
	// crm's event made it to EVENTS before the crash; erp's did not.
	data, _ := json.Marshal(streams.ConnectionStatusChanged{Source: "crm", From: StatusHealthy, To: StatusUnreachable, Error: "source unreachable: status 503", Since: now, Seq: 1})
	if _, err := streams.PublishEvent(ctx, env.JS, &streams.Event{ID: streams.OwnEventID(streams.TypeConnectionStatusChanged, "crm", 1),
		Type: streams.TypeConnectionStatusChanged, Source: streams.OwnSource, Time: now, Data: data}); err != nil {
		t.Fatal(err)
	}
	start(t, p)
	for _, id := range []string{"erp", "crm"} {
		waitState(t, p, id, id+" notified", func(st *sourceState) bool { return st.Notified == 1 })
		got := statusEvents(t, env, id)
		if len(got) != 1 || got[0].To != StatusUnreachable || got[0].Error != "source unreachable: status 503" || !got[0].Since.Equal(now) {
			t.Errorf("%s: status events = %+v, want the one recorded change", id, got)
		}
	}
}
