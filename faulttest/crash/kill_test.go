package crash

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// Sizes and pace of the kill -9 test.
const (
	killEvents = 10000
	// killPublishers is how many HTTP clients publish at once.
	killPublishers = 16
	// killSlowDelay is how long the slow endpoint takes per request: with
	// the default 10 in flight it takes 10,000 deliveries in no less than
	// 10 s, so a backlog is waiting when the process is killed.
	killSlowDelay = 10 * time.Millisecond
	// killAtFraction is the part of the slow endpoint's deliveries made
	// before the kill.
	killAtFraction = 0.3
	// killDrainTimeout bounds the wait, after the restart, for every
	// accepted event to reach every endpoint.
	killDrainTimeout = 3 * time.Minute
)

// kill -9 of `hookstream serve` in the middle of 10,000 events to two
// endpoints (one slow, so that a real backlog waits in JetStream), then a
// restart on the same --data: every accepted event reaches every endpoint
// at least once. The duplicates are counted and reported; lost must be 0.
func TestKill9MidBacklogLosesNothing(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	flags := []string{"--ack-wait", "2s", "--delivery-timeout", "1s", "--retry-initial", "100ms", "--retry-min-delay", "50ms",
		"--retry-max-interval", "500ms", "--log-level", "warn"}
	p1 := startServe(t, data, flags...)
	a1 := newAPI(t, p1.url, killPublishers)

	fast, slow := newReceiver(t, 0), newReceiver(t, killSlowDelay)
	recv := map[string]*receiver{
		a1.addEndpoint(fast.srv.URL+"/hook", "crash.*"): fast,
		a1.addEndpoint(slow.srv.URL+"/hook", "crash.*"): slow,
	}
	name := map[*receiver]string{fast: "fast", slow: "slow"}

	ids := make([]string, killEvents)
	for i := range ids {
		ids[i] = fmt.Sprintf("kill-%05d", i)
	}
	start := time.Now()
	accepted, errs := publishAll(a1, ids, "crash.created", killPublishers)
	published := time.Since(start)
	if len(errs) > 0 {
		// The server is up throughout the publishing: nothing may fail.
		t.Errorf("%d of %d events not accepted; first errors: %v", len(ids)-len(accepted), len(ids), errs)
	}
	if len(accepted) == 0 {
		t.Fatal("no event accepted")
	}

	want := int(killAtFraction * float64(len(accepted)))
	streamstest.WaitFor(t, 60*time.Second, fmt.Sprintf("the slow endpoint to receive %d events", want), func() bool {
		return slow.distinct(accepted) >= want
	})
	p1.kill()
	atKillFast, atKillSlow := fast.distinct(accepted), slow.distinct(accepted)
	if atKillSlow == len(accepted) {
		t.Fatalf("the slow endpoint had every event before the kill: no backlog to test")
	}

	p2 := startServe(t, data, flags...)
	a2 := newAPI(t, p2.url, 4)
	restarted := time.Now()
	all := func() bool {
		for _, r := range recv {
			if r.distinct(accepted) < len(accepted) {
				return false
			}
		}
		return true
	}
	drained := eventually(killDrainTimeout, all)
	drainTime := time.Since(restarted)

	var delivered, duplicated, lost int
	var lostIDs, perEndpoint []string
	for epID, r := range recv {
		got, _ := r.counts()
		var dups, missing int
		for _, id := range accepted {
			switch c := got[id]; {
			case c == 0:
				missing++
				if len(lostIDs) < 10 {
					lostIDs = append(lostIDs, name[r]+"/"+id)
				}
			default:
				delivered++
				dups += c - 1
			}
		}
		duplicated += dups
		lost += missing
		perEndpoint = append(perEndpoint, fmt.Sprintf("%s endpoint %s: %d duplicated, %d lost", name[r], epID, dups, missing))
	}
	slices.Sort(perEndpoint)
	t.Logf("kill -9: published %d events in %s, accepted %d (×%d endpoints = %d deliveries); "+
		"at the kill the fast endpoint had %d and the slow one %d; after the restart everything arrived in %s",
		len(ids), published.Round(time.Millisecond), len(accepted), len(recv), len(accepted)*len(recv),
		atKillFast, atKillSlow, drainTime.Round(time.Millisecond))
	t.Logf("kill -9 result: accepted=%d events, deliveries due=%d delivered=%d duplicated=%d lost=%d (%s)",
		len(accepted), len(accepted)*len(recv), delivered, duplicated, lost, strings.Join(perEndpoint, "; "))
	if !drained || lost != 0 {
		t.Fatalf("%d deliveries lost (after %s), e.g. %v", lost, killDrainTimeout, lostIDs)
	}

	// The restarted process answers for the events it holds.
	for i := 0; i < len(accepted); i += max(1, len(accepted)/20) {
		id := accepted[i]
		var ev eventView
		streamstest.WaitFor(t, 30*time.Second, "event "+id+" delivered to both endpoints", func() bool {
			code, err := a2.do(http.MethodGet, "/v1/events/"+id, nil, &ev)
			if err != nil || code != http.StatusOK {
				t.Fatalf("GET /v1/events/%s: %d %v", id, code, err)
			}
			n := 0
			for _, d := range ev.Deliveries {
				if recv[d.Endpoint] != nil && d.State == "delivered" {
					n++
				}
			}
			return n == len(recv)
		})
		if ev.ID != id || ev.Type != "crash.created" || string(ev.Data) != fmt.Sprintf(`{"id":%q}`, id) || len(ev.Deliveries) != len(recv) {
			t.Errorf("GET /v1/events/%s = %+v", id, ev)
		}
	}
	p2.stop()
}
