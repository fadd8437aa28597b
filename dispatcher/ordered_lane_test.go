package dispatcher_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/dlq"
	"github.com/hookstream/hookstream/streams"
)

// laneLog is a receiver that records, in order, the event ids it answered
// 2xx and every request, and fails what fail says to.
type laneLog struct {
	mu       sync.Mutex
	ok       []string
	requests []string
	fail     func(id string, n int) bool
}

func (l *laneLog) respond(id string, n int) (int, http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, id)
	if l.fail != nil && l.fail(id, n) {
		return http.StatusInternalServerError, nil
	}
	l.ok = append(l.ok, id)
	return http.StatusOK, nil
}

func (l *laneLog) delivered() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ok)
}

func (l *laneLog) setFail(fn func(id string, n int) bool) {
	l.mu.Lock()
	l.fail = fn
	l.mu.Unlock()
}

func (b *bundle) publishKeyed(id, key string) {
	b.t.Helper()
	ev := &streams.Event{ID: id, Type: "po.line", Source: "test", Time: time.Now().UTC(), Data: []byte(`{}`), OrderingKey: key}
	if _, err := streams.PublishEvent(context.Background(), b.env.JS, ev); err != nil {
		b.t.Fatal(err)
	}
}

// A failed delivery holds its lane through its whole retry schedule: what
// follows in the lane (its key's next event, and another key's on the same
// lane) waits until it is dead-lettered, which releases the lane. A replay
// of the dead letter goes to the key's lane and is delivered after what
// the key has pending at that time.
func TestOrderedDeadLetterReleasesLaneAndReplayFollowsPending(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.RetryMaxAge = 2 * time.Second
	cfg.FailingAfter = 1000
	b := setup(t, cfg)
	r := newReceiver(t)
	log := &laneLog{fail: func(id string, _ int) bool { return id == "k-1" }}
	r.setRespond(log.respond)
	b.addEndpointWith("ep_lane", r.srv.URL, func(ep *streams.Endpoint) { ep.Ordered, ep.Partitions = true, 1 }, "po.*")
	b.publishKeyed("k-1", "k")
	b.publishKeyed("k-2", "k")
	b.publishKeyed("x-1", "x") // another key, the same (only) lane
	waitFor(t, "k-1 dead-lettered and the lane released", func() bool {
		return len(log.delivered()) == 2
	})
	if got := log.delivered(); !slices.Equal(got, []string{"k-2", "x-1"}) {
		t.Fatalf("delivered %v, want k-2 then x-1", got)
	}
	log.mu.Lock()
	reqs := slices.Clone(log.requests)
	log.mu.Unlock()
	if i := slices.Index(reqs, "k-2"); i < 2 || slices.Contains(reqs[i:], "k-1") {
		t.Fatalf("requests %v: k-2 must follow every attempt of k-1 (its retries held the lane)", reqs)
	}
	dead := b.deadLetters("ep_lane")
	if len(dead) != 1 || dead[0].Event.ID != "k-1" || dead[0].Reason != streams.ReasonExpired {
		t.Fatalf("dead letters %+v, want k-1 expired", dead)
	}

	// k-3 is pending (failing twice) when k-1 is replayed: the replay is
	// delivered after it.
	log.setFail(func(id string, n int) bool { return id == "k-3" && n <= 2 })
	b.publishKeyed("k-3", "k")
	waitFor(t, "k-3 attempted", func() bool { return r.count("k-3") >= 1 })
	svc, err := dlq.New(context.Background(), dlq.Config{JS: b.env.JS, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := svc.List(context.Background(), dlq.Filter{}, 10, "")
	if err != nil || len(recs) != 1 {
		t.Fatalf("dlq list = %v, %v", recs, err)
	}
	if _, err := svc.Replay(context.Background(), recs[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay delivered", func() bool { return len(log.delivered()) == 4 })
	if got := log.delivered(); !slices.Equal(got, []string{"k-2", "x-1", "k-3", "k-1"}) {
		t.Fatalf("delivered %v, want the replayed k-1 after k-3, which was pending at the replay", got)
	}
}

// A deleted ordered endpoint's lanes, held by retries, are dead-lettered
// (endpoint_deleted); then its lane consumers and its keys are removed.
func TestOrderedEndpointDeletedDrainsLanes(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 1000
	b := setup(t, cfg)
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) { return http.StatusInternalServerError, nil })
	b.addEndpointWith("ep_del", r.srv.URL, func(ep *streams.Endpoint) { ep.Ordered, ep.Partitions = true, 4 }, "po.*")
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, id := range ids {
		b.publishKeyed(id, "key-"+id)
	}
	waitFor(t, "the lanes' heads attempted", func() bool { return r.total() >= 4 })
	// Every event fanned out before the deletion: a fan-out after it skips
	// the deleted endpoint, and those events would have no delivery to
	// dead-letter.
	waitFor(t, "8 deliveries in the lanes", func() bool { return b.laneDeliveries("ep_del") == uint64(len(ids)) })
	_, _, err := streams.Update(context.Background(), b.kv(streams.BucketEndpoints), "ep_del", func(ep *streams.Endpoint) (*streams.Endpoint, error) {
		ep.Deleted, ep.UpdatedAt = true, time.Now().UTC()
		return ep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every delivery dead-lettered and the endpoint removed", func() bool {
		if len(b.deadLetters("ep_del")) < len(ids) {
			return false
		}
		_, err := b.kv(streams.BucketEndpoints).Get(context.Background(), "ep_del")
		return err != nil
	})
	for _, dl := range b.deadLetters("ep_del") {
		if dl.Reason != streams.ReasonEndpointDeleted {
			t.Fatalf("dead letter %s: reason %s, want endpoint_deleted", dl.Event.ID, dl.Reason)
		}
	}
	if n := len(b.deadLetters("ep_del")); n != len(ids) {
		t.Fatalf("%d dead letters, want %d", n, len(ids))
	}
	for lane := range 4 {
		if _, err := b.env.JS.Consumer(context.Background(), streams.StreamDeliveries, streams.LaneConsumer("ep_del", lane)); err != jetstream.ErrConsumerNotFound {
			t.Fatalf("lane %d consumer: %v, want removed", lane, err)
		}
	}
}

// A 410 from an ordered endpoint disables it and dead-letters what its
// lanes held then (endpoint_gone), the retries waiting in other lanes
// included: every lane is released.
func TestOrderedGoneReleasesLanes(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.FailingAfter = 1000
	b := setup(t, cfg)
	r := newReceiver(t)
	var mu sync.Mutex
	gone := false
	r.setRespond(func(id string, _ int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if id == "trigger" && gone {
			return http.StatusGone, nil
		}
		return http.StatusInternalServerError, nil
	})
	b.addEndpointWith("ep_gone", r.srv.URL, func(ep *streams.Endpoint) { ep.Ordered, ep.Partitions = true, 4 }, "po.*")
	// Two keys on each of lanes 0 to 2, retrying; the 410 comes on lane 3,
	// which nothing else holds.
	var ids []string
	perLane := map[int]int{}
	triggerKey := ""
	for i := 0; len(ids) < 6 || triggerKey == ""; i++ {
		key := fmt.Sprintf("key-%d", i)
		switch lane := streams.LaneOf(key, 4); {
		case lane == 3 && triggerKey == "":
			triggerKey = key
		case lane < 3 && perLane[lane] < 2:
			perLane[lane]++
			ids = append(ids, key)
			b.publishKeyed(key, key)
		}
	}
	waitFor(t, "the lanes' heads retrying", func() bool { return r.total() >= 6 })
	mu.Lock()
	gone = true
	mu.Unlock()
	b.publishKeyed("trigger", triggerKey)
	waitFor(t, "every delivery dead-lettered as endpoint_gone", func() bool {
		return len(b.deadLetters("ep_gone")) == len(ids)+1
	})
	for _, dl := range b.deadLetters("ep_gone") {
		if dl.Reason != streams.ReasonEndpointGone {
			t.Fatalf("dead letter %s: %s, want endpoint_gone", dl.Event.ID, dl.Reason)
		}
	}
	if h := b.health("ep_gone"); h.Status != streams.StatusDisabled {
		t.Fatalf("status %s, want disabled", h.Status)
	}
}
