package dlq

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/streams"
)

func TestReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	dl, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "ord:1", generation: 2})
	b.clock.Add(5 * time.Minute)

	var r Record
	b.doJSON(t, "POST", "/v1/dlq/"+dl.ID+"/replay", nil, 202, &r)
	if r.ID != dl.ID || r.State != streams.DLQStateReplayed || r.ReplayGeneration != 3 || r.Generation != 2 {
		t.Fatalf("replay answered %+v, want the record replayed as generation 3", r)
	}
	ds := b.deliveries(t, "ep_a")
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if d.Generation != 3 || d.DeadLetterID != dl.ID || d.EndpointID != "ep_a" || d.Event.ID != "ord:1" ||
		d.Event.Type != dl.Event.Type || string(d.Event.Data) != string(dl.Event.Data) || !d.Event.Time.Equal(dl.Event.Time) {
		t.Fatalf("delivery = %+v, want generation 3 of the same event for %s", d.Delivery, dl.ID)
	}
	if want := streams.DeliveryMsgID("ord:1", "ep_a", 3); d.msgID != want {
		t.Fatalf("Nats-Msg-Id = %q, want %q", d.msgID, want)
	}
	st := b.dlqState(t, dl.ID)
	if st.State != streams.DLQStateReplayed || st.ReplayGeneration != 3 || !st.UpdatedAt.Equal(b.clock.Now()) {
		t.Fatalf("state = %+v, want replayed generation 3 at now", st)
	}
	var got Record
	b.doJSON(t, "GET", "/v1/dlq/"+dl.ID, nil, 200, &got)
	if got.State != "replayed" || got.ReplayGeneration != 3 {
		t.Fatalf("GET after replay = %s gen %d", got.State, got.ReplayGeneration)
	}

	// Again: refused, and still one delivery.
	code, p := b.do(t, "POST", "/v1/dlq/"+dl.ID+"/replay", nil)
	if code != 409 || !strings.Contains(errorOf(t, p), "already replayed") {
		t.Fatalf("second replay = %d %s, want 409 already replayed", code, p)
	}
	if n := len(b.deliveries(t, "ep_a")); n != 1 {
		t.Fatalf("%d deliveries after a second replay, want 1", n)
	}

	// Once the dispatcher marks it delivered, a replay is refused too.
	if _, _, err := streams.Update[streams.DLQState](b.ctx, b.kv(t, streams.BucketDLQState), dl.ID, func(cur *streams.DLQState) (*streams.DLQState, error) {
		cur.State = streams.DLQStateDelivered
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := b.svc.Replay(b.ctx, dl.ID)
	if !errors.Is(err, httpjson.ErrConflict) || !strings.Contains(err.Error(), "already delivered") {
		t.Fatalf("replay of a delivered record: %v, want a conflict: already delivered", err)
	}
}

func TestConcurrentReplaysMakeOneDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	dl, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1"})
	// Two processes replaying at once.
	other := b.newService(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		svc := b.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Go(func() { _, errs[i] = svc.Replay(b.ctx, dl.ID) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, httpjson.ErrConflict):
			t.Fatalf("replay: %v, want success or conflict", err)
		}
	}
	if ok == 0 {
		t.Fatal("no replay succeeded")
	}
	if ds := b.deliveries(t, "ep_a"); len(ds) != 1 || ds[0].Generation != 1 {
		t.Fatalf("%d deliveries, want exactly 1 of generation 1", len(ds))
	}
	if st := b.dlqState(t, dl.ID); st.State != streams.DLQStateReplayed || st.ReplayGeneration != 1 {
		t.Fatalf("state = %+v", st)
	}
}

func TestReplayToDeletedEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_deleting", true)
	for _, ep := range []string{"ep_deleting", "ep_never"} {
		dl, _ := b.addRecord(t, rec{endpoint: ep, event: "ord_1", reason: streams.ReasonEndpointDeleted})
		code, p := b.do(t, "POST", "/v1/dlq/"+dl.ID+"/replay", nil)
		if code != 409 || !strings.Contains(errorOf(t, p), "endpoint "+ep+" is deleted") {
			t.Errorf("replay to %s = %d %s, want 409 naming the deleted endpoint", ep, code, p)
		}
		if n := len(b.deliveries(t, ep)); n != 0 {
			t.Errorf("%s: %d deliveries, want none", ep, n)
		}
		if st := b.dlqState(t, dl.ID); st.State != streams.DLQStateDead {
			t.Errorf("%s: state %s, want still dead", ep, st.State)
		}
	}
}

func TestReplayAfterCrashBeforeMark(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	dl, seq := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1"})
	// A replay that published and crashed before marking the record: the
	// next replay's delivery is a duplicate of the first.
	m := match{dl: dl, st: b.dlqState(t, dl.ID), seq: seq}
	d := streams.Delivery{Event: dl.Event, EndpointID: "ep_a", Generation: 1, DeadLetterID: dl.ID}
	data, err := streams.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.JS.Publish(b.ctx, streams.DeliverySubject("ep_a"), data, jetstream.WithMsgID(d.MsgID())); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.replay(b.ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(b.deliveries(t, "ep_a")); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
	if st := b.dlqState(t, dl.ID); st.State != streams.DLQStateReplayed {
		t.Fatalf("state %s, want replayed", st.State)
	}
}

func TestReplayWritesAMissingState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	// The dispatcher crashed between the record and its state: a scan
	// still finds it dead, and replaying it writes the state.
	dl, seq := b.addRecord(t, rec{endpoint: "ep_a", event: "ord_1", noState: true})
	// A bulk job counts from the states: it does not see this one (and an
	// empty state bucket does not hold the count up).
	if j, err := b.svc.createJob(b.ctx, Filter{}); err != nil || j.Matched != 0 || j.State != jobDone {
		t.Fatalf("createJob = %+v, %v; want nothing matched", j, err)
	}
	found, _, err := b.svc.scan(b.ctx, Filter{State: streams.DLQStateDead}, 1, 10, 0)
	if err != nil || len(found) != 1 || found[0].st != nil {
		t.Fatalf("scan = %v, %v; want the record without a state", found, err)
	}
	r, err := b.svc.replay(b.ctx, found[0], nil)
	if err != nil || r.State != streams.DLQStateReplayed {
		t.Fatalf("replay = %+v, %v", r, err)
	}
	st := b.dlqState(t, dl.ID)
	if st == nil || st.State != streams.DLQStateReplayed || st.Seq != seq || st.EndpointID != "ep_a" || st.EventType != dl.Event.Type || st.ReplayGeneration != 1 {
		t.Fatalf("state = %+v", st)
	}
	if n := len(b.deliveries(t, "ep_a")); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

// A record that set aside bytes no version could read holds no event to
// send: replaying it is refused and publishes nothing.
func TestReplayOfAnUndecodableRecordIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	dl, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "undecodable:ep_a:7", reason: streams.ReasonUndecodable})
	code, p := b.do(t, "POST", "/v1/dlq/"+dl.ID+"/replay", nil)
	if code != 409 || !strings.Contains(errorOf(t, p), "cannot be replayed") {
		t.Fatalf("replay = %d %s, want 409", code, p)
	}
	if n := len(b.deliveries(t, "ep_a")); n != 0 {
		t.Fatalf("%d deliveries, want none", n)
	}
}
