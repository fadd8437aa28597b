package cluster

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// The runs' sizes: events published at a steady pace, each to 2 endpoints.
// Every event costs about ten replicated writes on 3 nodes: under -race a
// 2-core machine shared with other work moves 30 to 150 events a second,
// so the default keeps the package well within its minute. A longer soak:
// go test ./faulttest/cluster -args -events 20000.
var nodeLossEvents = flag.Int("events", 1000, "events published in the node-loss run")

const (
	shareEvents        = 100
	publishPace        = 2 * time.Millisecond
	nodeLossPublishers = 4
)

// publishBound bounds the wait for n events to be published: loose, at
// 20 a second.
func publishBound(n int) time.Duration { return waitDelivered + time.Duration(n)*50*time.Millisecond }

// TestCluster runs compose.yaml's topology in-process: 3 clustered NATS
// nodes on loopback with R3 streams, 2 dispatchers and 1 poller, each on its
// own connection to the whole cluster. Its phases run in order on the same
// cluster.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	p := startPipeline(t, c, pipelineOptions{endpoints: 2, dispatchers: 2, poller: true})

	t.Run("DispatchersShareWork", func(t *testing.T) { testDispatchersShareWork(t, p) })
	if t.Failed() {
		return
	}
	t.Run("NodeLossLosesNoAcceptedEvent", func(t *testing.T) { testNodeLoss(t, c, p) })
}

// Two dispatchers share the durable consumers: both deliver some of the
// work, and nothing is lost between them.
func testDispatchersShareWork(t *testing.T, p *pipeline) {
	pb := &publisher{p: p.producer, prefix: "share"}
	p.record(t, pb)
	// The endpoints' slots were all the first dispatcher's before the second
	// joined; it gives up half once it sees the other (a compare-and-set
	// round on R3). Events go out meanwhile, one per publishPace, until the
	// second dispatcher has made an attempt.
	warm := time.NewTicker(publishPace)
	defer warm.Stop()
	deadline := time.Now().Add(waitCluster)
	for i := 0; p.dispatchers[len(p.dispatchers)-1].attempts.Load() == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the last dispatcher made no attempt within %s of joining", waitCluster)
		}
		pb.one(context.Background(), shareEvents+i)
		<-warm.C
	}
	before := p.attempts()
	pb.run(context.Background(), shareEvents, publishPace, 2)
	res := pb.result()
	if res.refused != 0 {
		t.Fatalf("%d events not accepted by a healthy cluster; last error: %v", res.refused, res.lastErr)
	}
	defer func() { t.Logf("shared work: %s", p.tally(res.accepted)) }()
	p.waitDelivered(t, "accepted events", res.accepted)

	for i, n := range p.attempts() {
		n -= before[i]
		t.Logf("dispatcher %d: %d attempts (per endpoint: %v)", i+1, n, p.dispatchers[i].endpoints())
		if n == 0 {
			t.Errorf("dispatcher %d made no attempt: the work was not shared", i+1)
		}
	}
}

// The node that leads DELIVERIES is killed in the middle of a run: no
// accepted event (published, or polled by the poller) is lost, deliveries
// resume on the new leader, and the node rejoins when it comes back.
func testNodeLoss(t *testing.T, c *testCluster, p *pipeline) {
	pb := &publisher{p: p.producer, prefix: "ord", feed: p.feed}
	p.record(t, pb)
	before := p.attempts()
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pb.run(ctx, *nodeLossEvents, publishPace, nodeLossPublishers)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	streamstest.WaitFor(t, publishBound(*nodeLossEvents/2), "half the events accepted", func() bool {
		return pb.acceptedN.Load() >= int64(*nodeLossEvents/2)
	})
	// Deliveries must be under way when the leader goes, not only queued.
	streamstest.WaitFor(t, waitDelivered, "the first deliveries", func() bool {
		return p.receivers[0].has([]string{"ord-00000"})
	})
	leader := c.leaderOf(t, p.js, streams.StreamDeliveries, "")
	victim := c.node(leader)
	if victim == nil {
		t.Fatalf("DELIVERIES leader %q is not a test node", leader)
	}
	killedAt := pb.acceptedN.Load()
	pb.killed.Store(true)
	c.kill(victim)
	newLeader := c.leaderOf(t, p.js, streams.StreamDeliveries, leader)
	t.Logf("killed %s, the DELIVERIES leader, after %d events accepted; %s leads DELIVERIES now", leader, killedAt, newLeader)

	select {
	case <-done:
	case <-time.After(publishBound(*nodeLossEvents)):
		t.Fatalf("publishing did not end within %s", publishBound(*nodeLossEvents))
	}
	published := time.Since(began)
	res := pb.result()
	if res.afterKill == 0 {
		t.Fatalf("no event was accepted after the kill (%d refused; last error: %v)", res.refused, res.lastErr)
	}
	// Every change the poller acknowledged (its cursor moved past it) is an
	// accepted event too.
	changes, _ := p.feed.state()
	polled := p.feed.eventIDs(changes)
	// The claim is lost == 0: every accepted event reaches every endpoint.
	// The waits below assert it; the counts are reported however they end,
	// a timed-out wait being where they matter most.
	defer func() {
		events, feed := p.tally(res.accepted), p.tally(polled)
		t.Logf("node loss: published %d events: %s; %d not accepted, %d accepted after a retry, %d first published after the kill",
			*nodeLossEvents, events, res.refused, res.retried, res.afterKill)
		t.Logf("node loss: poller changes: %s", feed)
		for i, n := range p.attempts() {
			t.Logf("dispatcher %d: %d attempts", i+1, n-before[i])
		}
		t.Logf("node loss: publishing took %s", published.Round(time.Millisecond))
	}()
	p.waitDelivered(t, "accepted events", res.accepted)
	streamstest.WaitFor(t, waitDelivered, "the poller to acknowledge every change", func() bool {
		_, acked := p.feed.state()
		return acked == changes
	})
	p.waitDelivered(t, "polled changes", polled)
	t.Logf("node loss: every delivery done after %s", time.Since(began).Round(time.Millisecond))

	// The killed node comes back and catches up.
	c.restart(t, victim)
	streamstest.WaitFor(t, waitCluster, victim.name+" current again on DELIVERIES", func() bool {
		info, err := streamInfo(p.js, streams.StreamDeliveries)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
			return false
		}
		current := 0
		for _, r := range info.Cluster.Replicas {
			if r.Current && !r.Offline {
				current++
			}
		}
		return current == 2
	})
}
