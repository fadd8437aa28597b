package poller

import (
	"context"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestDue(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const window = 15 * time.Minute
	state := func(status string, lastPoll, nextPoll, lastEvent time.Duration) *sourceState {
		return &sourceState{Status: status, LastPoll: now.Add(lastPoll), NextPoll: now.Add(nextPoll), LastEvent: now.Add(lastEvent)}
	}
	for _, c := range []struct {
		name      string
		st        *sourceState
		lastEvent time.Time
		want      dueReason
	}{
		{"NeverPolled", nil, time.Time{}, dueNow},
		{"IntervalCame", state(StatusHealthy, -time.Hour, 0, -time.Minute), time.Time{}, dueNow},
		{"BackoffCame", state(StatusUnreachable, -time.Hour, -time.Second, -time.Hour), time.Time{}, dueNow},
		{"NotYet", state(StatusHealthy, -time.Minute, time.Hour, -time.Hour), time.Time{}, notDue},
		{"SilentPastWindow", state(StatusHealthy, -20*time.Minute, time.Hour, -time.Hour), time.Time{}, dueGap},
		{"RecentEventFromTheProducer", state(StatusHealthy, -20*time.Minute, time.Hour, -time.Hour), now.Add(-time.Minute), notDue},
		{"RecentEventFromAPoll", state(StatusHealthy, -20*time.Minute, time.Hour, -time.Minute), time.Time{}, notDue},
		{"RecentPush", withPush(state(StatusHealthy, -20*time.Minute, time.Hour, -time.Hour), now.Add(-time.Minute)), time.Time{}, notDue},
		{"PushesStopped", withPush(state(StatusHealthy, -20*time.Minute, time.Hour, -time.Hour), now.Add(-16*time.Minute)), time.Time{}, dueGap},
		// A poll looked for events: the next gap poll is a window later.
		{"RecentGapPoll", state(StatusHealthy, -time.Minute, time.Hour, -time.Hour), time.Time{}, notDue},
		{"UnreachableKeepsItsBackoff", state(StatusUnreachable, -20*time.Minute, time.Hour, -time.Hour), time.Time{}, notDue},
		{"AuthRequiredKeepsItsBackoff", state(StatusAuthRequired, -20*time.Minute, time.Hour, -time.Hour), time.Time{}, notDue},
	} {
		if got := due(c.st, window, c.lastEvent, now); got != c.want {
			t.Errorf("%s: due = %d, want %d", c.name, got, c.want)
		}
	}
}

func withPush(st *sourceState, at time.Time) *sourceState {
	st.LastPush = at
	return st
}

// A source whose interval is far away but that sent nothing within its
// expected window is polled at once.
func TestGapPollsASilentSource(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	clock := newClock()
	t0 := clock.Now()
	cfg := testConfig(env)
	cfg.Now = clock.Now
	feed := newFeed(10)
	p := newPoller(t, cfg)
	p.Register("erp", memSource{feed}, time.Hour, 10*time.Minute)
	start(t, p)
	waitState(t, p, "erp", "first poll", func(st *sourceState) bool { return st.NextPoll.Equal(t0.Add(time.Hour)) })

	clock.Advance(11 * time.Minute)
	st := waitState(t, p, "erp", "gap poll", func(st *sourceState) bool { return st.LastPoll.Equal(t0.Add(11 * time.Minute)) })
	if n := feed.pollCount(); n != 2 {
		t.Fatalf("%d polls, want the first and one gap poll", n)
	}
	if !st.NextPoll.Equal(t0.Add(71 * time.Minute)) {
		t.Fatalf("next poll %s, want an interval after the gap poll", st.NextPoll)
	}
}

// checkGap asks EVENTS for the newest event of the source, whoever
// published it: the producer's recent event means no gap.
func TestCheckGapSeesTheProducersEvents(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	p := newPoller(t, testConfig(env))
	ctx := context.Background()
	now := time.Now()
	st := newState("shop", now.Add(-2*time.Hour))
	st.LastPoll, st.NextPoll = now.Add(-time.Hour), now.Add(time.Hour)
	p.cacheState("shop", st, 1)
	sp := spec{id: "shop", window: 10 * time.Minute}

	publishAsProducer(t, env, "shop2", change(1)) // another source: no help
	if gap, err := p.checkGap(ctx, sp); err != nil || !gap {
		t.Fatalf("checkGap without events = %v, %v; want a gap", gap, err)
	}
	publishAsProducer(t, env, "shop", change(2))
	if gap, err := p.checkGap(ctx, sp); err != nil || gap {
		t.Fatalf("checkGap after the producer's event = %v, %v; want no gap", gap, err)
	}
}
