package dlq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// waitJob waits until job id is no longer running and returns it.
func (b *testBundle) waitJob(t *testing.T, id string) jobView {
	t.Helper()
	var v jobView
	streamstest.WaitFor(t, 20*time.Second, "replay job "+id+" to end", func() bool {
		b.doJSON(t, "GET", "/v1/dlq/replays/"+id, nil, 200, &v)
		return v.State != jobRunning
	})
	return v
}

// checkOneDeliveryEach checks that endpoint got exactly one delivery per
// record in dls, replaying it.
func (b *testBundle) checkOneDeliveryEach(t *testing.T, endpoint string, dls []string) {
	t.Helper()
	ds := b.deliveries(t, endpoint)
	per := map[string]int{}
	for _, d := range ds {
		per[d.DeadLetterID]++
	}
	if len(ds) != len(dls) {
		t.Errorf("%s: %d deliveries, want %d", endpoint, len(ds), len(dls))
	}
	for _, id := range dls {
		if per[id] != 1 {
			t.Errorf("%s: %d deliveries replaying %s, want 1", endpoint, per[id], id)
		}
	}
}

// addDead writes n dead records for endpoint and returns their ids.
func (b *testBundle) addDead(t *testing.T, endpoint string, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range n {
		dl, _ := b.addRecord(t, rec{endpoint: endpoint, event: fmt.Sprintf("%s_ev%d", endpoint, i), deadAt: t0.Add(time.Duration(i) * time.Minute)})
		out[i] = dl.ID
	}
	return out
}

func TestBulkReplay(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.JobBatch = 2; c.PollInterval = time.Hour })
	b.addEndpoint(t, "ep_a", false)
	b.addEndpoint(t, "ep_b", false)
	b.addEndpoint(t, "ep_gone", true)
	want := b.addDead(t, "ep_a", 5)
	b.addRecord(t, rec{endpoint: "ep_a", event: "already", state: streams.DLQStateReplayed})
	b.addRecord(t, rec{endpoint: "ep_a", event: "old", reason: streams.ReasonEndpointGone})
	b.addDead(t, "ep_b", 2)
	b.addDead(t, "ep_gone", 1)
	// The runner picks the job up when this process creates it, not on
	// the (hour-long) poll.
	if err := b.svc.Start(b.ctx); err != nil {
		t.Fatal(err)
	}

	var created struct {
		Job     string `json:"job"`
		Matched int    `json:"matched"`
	}
	b.doJSON(t, "POST", "/v1/dlq/replay", map[string]string{"endpoint": "ep_a", "reason": "expired"}, 202, &created)
	if created.Matched != 5 || created.Job == "" {
		t.Fatalf("POST /v1/dlq/replay = %+v, want 5 matched", created)
	}
	v := b.waitJob(t, created.Job)
	if v.State != jobDone || v.Matched != 5 || v.Replayed != 5 || v.Skipped != 0 || v.Failed != 0 || v.Error != "" {
		t.Fatalf("job = %+v, want done with 5 replayed", v)
	}
	if v.Filter != (filterJSON{Endpoint: "ep_a", Reason: "expired", State: "dead"}) || !v.CreatedAt.Equal(t0) || v.UpdatedAt.IsZero() {
		t.Fatalf("job = %+v", v)
	}
	b.checkOneDeliveryEach(t, "ep_a", want)
	if n := len(b.deliveries(t, "ep_b")); n != 0 {
		t.Fatalf("ep_b got %d deliveries, filtered out", n)
	}
	for _, id := range want {
		if st := b.dlqState(t, id); st.State != streams.DLQStateReplayed {
			t.Fatalf("%s: state %s after the job", id, st.State)
		}
	}

	// A job over a deleted endpoint counts its records as failed.
	b.doJSON(t, "POST", "/v1/dlq/replay", map[string]string{"endpoint": "ep_gone"}, 202, &created)
	if v := b.waitJob(t, created.Job); v.State != jobDone || v.Matched != 1 || v.Failed != 1 || v.Replayed != 0 {
		t.Fatalf("job over a deleted endpoint = %+v, want done with 1 failed", v)
	}

	// Nothing left to replay on ep_a: done at once. A state other than
	// dead matches nothing to replay.
	for _, body := range []string{`{"endpoint":"ep_a","reason":"expired"}`, `{"state":"replayed"}`} {
		b.doJSON(t, "POST", "/v1/dlq/replay", body, 202, &created)
		if created.Matched != 0 {
			t.Fatalf("%s: matched %d, want 0", body, created.Matched)
		}
		if v := b.waitJob(t, created.Job); v.State != jobDone || v.Replayed != 0 {
			t.Fatalf("%s: job = %+v", body, v)
		}
	}
	if n := len(b.deliveries(t, "ep_a")); n != 5 {
		t.Fatalf("ep_a: %d deliveries after the empty jobs, want still 5", n)
	}
}

func TestBulkReplayOnlyUpToCreation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	want := b.addDead(t, "ep_a", 3)
	j, err := b.svc.createJob(b.ctx, Filter{Endpoint: "ep_a"})
	if err != nil {
		t.Fatal(err)
	}
	// Dead-lettered after the job was created: not part of it.
	later, _ := b.addRecord(t, rec{endpoint: "ep_a", event: "later"})
	if err := b.svc.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	if v := b.waitJob(t, j.ID); v.State != jobDone || v.Matched != 3 || v.Replayed != 3 {
		t.Fatalf("job = %+v", v)
	}
	b.checkOneDeliveryEach(t, "ep_a", want)
	if st := b.dlqState(t, later.ID); st.State != streams.DLQStateDead {
		t.Fatalf("a record newer than the job was replayed")
	}
}

func TestBulkReplayResumesAfterStop(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.JobBatch = 2 })
	b.addEndpoint(t, "ep_a", false)
	want := b.addDead(t, "ep_a", 7)
	stepped := make(chan struct{})
	// The first runner stops after its first batch.
	b.svc.afterStep = func(ctx context.Context, j *job) {
		close(stepped)
		<-ctx.Done()
	}
	if err := b.svc.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	var created struct{ Job string }
	b.doJSON(t, "POST", "/v1/dlq/replay", `{}`, 202, &created)
	<-stepped
	if err := b.svc.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	j, _, err := b.svc.getJob(b.ctx, created.Job)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobRunning || j.Replayed != 2 || j.Owner != "" {
		t.Fatalf("job after stop = %+v, want running with 2 replayed and no owner", j)
	}

	// Another process finishes it.
	other := b.newService(t, func(c *Config) { c.JobBatch = 2 })
	if err := other.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	v := b.waitJob(t, created.Job)
	if v.State != jobDone || v.Matched != 7 || v.Replayed != 7 || v.Skipped != 0 || v.Failed != 0 {
		t.Fatalf("job = %+v, want done with 7 replayed", v)
	}
	b.checkOneDeliveryEach(t, "ep_a", want)
}

func TestBulkReplayResumesAfterCrash(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addEndpoint(t, "ep_a", false)
	want := b.addDead(t, "ep_a", 6)
	j, err := b.svc.createJob(b.ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// A runner claimed it, replayed two records and published the third's
	// delivery, then died before saving any progress.
	j, rev, err := b.svc.getJob(b.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	j.Owner, j.LeaseUntil = "runner_crashed", t0.Add(JobLeaseDefault)
	if _, err := b.svc.saveJob(b.ctx, j, rev); err != nil {
		t.Fatal(err)
	}
	for _, id := range want[:2] {
		if _, err := b.svc.Replay(b.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	third, err := b.svc.load(b.ctx, want[2])
	if err != nil {
		t.Fatal(err)
	}
	d := streams.Delivery{Event: third.dl.Event, EndpointID: "ep_a", Generation: 1, DeadLetterID: want[2]}
	if _, err := b.env.JS.Publish(b.ctx, streams.DeliverySubject("ep_a"), mustMarshal(t, &d), jetstream.WithMsgID(d.MsgID())); err != nil {
		t.Fatal(err)
	}

	other := b.newService(t)
	// While the crashed runner's lease lasts, nobody takes the job.
	if _, _, claimed, err := other.claim(b.ctx, j.ID); err != nil || claimed {
		t.Fatalf("claim under a live lease = %v, %v", claimed, err)
	}
	b.clock.Add(JobLeaseDefault + time.Second)
	if err := other.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	v := b.waitJob(t, j.ID)
	if v.State != jobDone || v.Matched != 6 || v.Replayed != 4 || v.Skipped != 2 || v.Failed != 0 {
		t.Fatalf("job = %+v, want done: 4 replayed, 2 skipped (replayed before the crash)", v)
	}
	// The delivery published before the crash was not made twice.
	b.checkOneDeliveryEach(t, "ep_a", want)
}

func TestJobLease(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.JobLease = time.Minute })
	b.addEndpoint(t, "ep_a", false)
	b.addDead(t, "ep_a", 1)
	j, err := b.svc.createJob(b.ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	a, c := b.svc, b.newService(t, func(c *Config) { c.JobLease = time.Minute })
	if _, _, ok, err := a.claim(b.ctx, j.ID); err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	if _, _, ok, err := c.claim(b.ctx, j.ID); err != nil || ok {
		t.Fatalf("claim of a job leased by another runner = %v, %v; want refused", ok, err)
	}
	if _, _, ok, err := a.claim(b.ctx, j.ID); err != nil || !ok {
		t.Fatalf("the owner's own claim = %v, %v; want renewed", ok, err)
	}
	b.clock.Add(time.Minute + time.Second)
	got, _, ok, err := c.claim(b.ctx, j.ID)
	if err != nil || !ok || got.Owner != c.owner || !got.LeaseUntil.Equal(b.clock.Now().Add(time.Minute)) {
		t.Fatalf("claim after the lease expired = %+v, %v, %v", got, ok, err)
	}
	if _, _, ok, _ := a.claim(b.ctx, j.ID); ok {
		t.Fatal("the old owner took the job back under the new lease")
	}
	// A save by the runner that lost the job fails instead of overwriting.
	stale, rev, err := a.getJob(b.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := c.claim(b.ctx, j.ID); !ok {
		t.Fatal("owner could not renew")
	}
	if _, err := a.saveJob(b.ctx, stale, rev); err != errLostJob {
		t.Fatalf("stale save = %v, want errLostJob", err)
	}
}

func TestTwoRunnersReplayEachRecordOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.JobBatch = 1 })
	b.addEndpoint(t, "ep_a", false)
	want := b.addDead(t, "ep_a", 10)
	other := b.newService(t, func(c *Config) { c.JobBatch = 1 })
	for _, s := range []*Service{b.svc, other} {
		if err := s.Start(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	var created struct{ Job string }
	b.doJSON(t, "POST", "/v1/dlq/replay", `{"endpoint":"ep_a"}`, 202, &created)
	v := b.waitJob(t, created.Job)
	if v.State != jobDone || v.Replayed != 10 || v.Skipped != 0 {
		t.Fatalf("job = %+v, want 10 replayed", v)
	}
	b.checkOneDeliveryEach(t, "ep_a", want)
}
