package dispatcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// The shares add up to the concurrency whatever the count of members, and
// with fewer slots than members, which members get one depends on the
// endpoint.
func TestShareAddsUpAndRotates(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 5; n++ {
		live := make([]string, n)
		for i := range live {
			live[i] = fmt.Sprintf("m%d", i)
		}
		for conc := 0; conc <= 23; conc++ {
			sum := 0
			for _, self := range live {
				s := fairShare("ep", conc, live, self)
				if s < conc/n || s > conc/n+1 {
					t.Fatalf("n=%d conc=%d: share %d of %s is not fair", n, conc, s, self)
				}
				sum += s
			}
			if sum != conc {
				t.Fatalf("n=%d conc=%d: shares add up to %d", n, conc, sum)
			}
		}
	}
	if s := fairShare("ep", 5, []string{"a", "b"}, "c"); s != 0 {
		t.Fatalf("a process missing from the live members got %d", s)
	}
	live := []string{"a", "b", "c"}
	holders := map[string]bool{}
	for i := range 30 {
		for _, self := range live {
			if fairShare(fmt.Sprintf("ep_%d", i), 1, live, self) == 1 {
				holders[self] = true
			}
		}
	}
	if len(holders) != 3 {
		t.Fatalf("with concurrency 1, the slot of 30 endpoints went to %v only", holders)
	}
}

// stWorld is several simulated dispatcher processes, each with its own
// connection, members and allocator, sending to one endpoint.
type stWorld struct {
	t    *testing.T
	env  *streamstest.Env
	ep   string
	conc int
	ttl  time.Duration

	inflight, peak, sent atomic.Int64
	// grantedFenced counts slots handed out to a process whose lease had
	// run out.
	grantedFenced atomic.Int64
}

type stProc struct {
	name   string
	nc     *nats.Conn
	m      *members
	a      *slots
	poke   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func newSTWorld(t *testing.T, conc int) *stWorld {
	return &stWorld{t: t, env: streamstest.Start(t), ep: "ep_slots", conc: conc, ttl: 2 * time.Second}
}

// start runs a process with senders goroutines that take one slot at a
// time and hold it for a few milliseconds, like a send.
func (w *stWorld) start(name string, senders int) *stProc {
	w.t.Helper()
	return w.startWith(name, senders, nil)
}

// startWith is start with edit applied to the process before it runs.
func (w *stWorld) startWith(name string, senders int, edit func(p *stProc)) *stProc {
	w.t.Helper()
	nc, js := w.env.Connect(w.t, name)
	kv, err := js.KeyValue(context.Background(), streams.BucketMembers)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &stProc{name: name, nc: nc, poke: make(chan struct{}, 1)}
	p.m = &members{js: js, kv: kv, id: name, ttl: w.ttl, live: map[string]bool{}}
	p.a = newSlots(kv, p.m, func(string) {
		select {
		case p.poke <- struct{}{}:
		default:
		}
	}, nil)
	if edit != nil {
		edit(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.m.run(ctx)
	}()
	go func() {
		defer p.wg.Done()
		p.a.run(ctx)
	}()
	for range senders {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			w.send(ctx, p)
		}()
	}
	w.t.Cleanup(p.stop)
	return p
}

func (w *stWorld) send(ctx context.Context, p *stProc) {
	idle := time.NewTicker(10 * time.Millisecond)
	defer idle.Stop()
	for ctx.Err() == nil {
		n, until := p.a.take(w.ep, w.conc, 1)
		if n == 0 {
			select {
			case <-ctx.Done():
			case <-p.poke:
			case <-idle.C:
			}
			continue
		}
		if !time.Now().Before(until) {
			w.grantedFenced.Add(1)
		}
		cur := w.inflight.Add(1)
		for {
			pk := w.peak.Load()
			if cur <= pk || w.peak.CompareAndSwap(pk, cur) {
				break
			}
		}
		// The send: a few milliseconds, well inside a delivery timeout.
		hold := time.NewTimer(time.Duration(2+rand.IntN(15)) * time.Millisecond)
		<-hold.C
		w.inflight.Add(-1)
		w.sent.Add(1)
		p.a.put(w.ep, 1)
	}
}

// stop ends the process gracefully: no new send, those in flight end, then
// its member key goes.
func (p *stProc) stop() {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
}

// cutOff closes the process's connection while it keeps running: its
// heartbeats fail, and it must stop starting sends before the others can
// see it gone.
func (p *stProc) cutOff() { p.nc.Close() }

// usable is how many of the endpoint's slots p could hand out now.
func (w *stWorld) usable(p *stProc) int { return p.a.share(w.ep, w.conc) }

func (w *stWorld) usables(ps ...*stProc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = w.usable(p)
	}
	return out
}

// settled waits until ps (the live processes) together may use every slot.
func (w *stWorld) settled(what string, ps ...*stProc) {
	w.t.Helper()
	wtWait(w.t, what, func() bool {
		sum := 0
		for _, u := range w.usables(ps...) {
			sum += u
		}
		return sum == w.conc
	})
}

// progress waits until n more sends were made.
func (w *stWorld) progress(what string, n int64) {
	w.t.Helper()
	from := w.sent.Load()
	wtWait(w.t, what, func() bool { return w.sent.Load() >= from+n })
}

func (w *stWorld) check() {
	w.t.Helper()
	if p := w.peak.Load(); p > int64(w.conc) {
		w.t.Fatalf("%d sends in flight at once across processes, over the endpoint's concurrency of %d", p, w.conc)
	}
	if n := w.grantedFenced.Load(); n > 0 {
		w.t.Fatalf("%d slots handed out past a process's lease", n)
	}
	kv, err := w.env.JS.KeyValue(context.Background(), streams.BucketMembers)
	if err != nil {
		w.t.Fatal(err)
	}
	rec, _, _, err := streams.Get[slotRecord](context.Background(), kv, slotsPrefix+w.ep)
	if err != nil {
		w.t.Fatal(err)
	}
	if rec != nil {
		sum := 0
		for m, n := range rec.Held {
			if _, err := kv.Get(context.Background(), membersPrefix+m); err == nil {
				sum += n
			}
		}
		if sum > w.conc {
			w.t.Fatalf("live members hold %d slots in %v, over the concurrency of %d", sum, rec.Held, w.conc)
		}
	}
}

// With concurrency 1 and three dispatchers, exactly one may send at a time,
// and the other two hold nothing.
func TestSlotsConcurrencyOneAmongThree(t *testing.T) {
	t.Parallel()
	w := newSTWorld(t, 1)
	p1, p2, p3 := w.start("p1", 3), w.start("p2", 3), w.start("p3", 3)
	w.settled("one of three to hold the slot", p1, p2, p3)
	w.progress("sends", 30)
	u := w.usables(p1, p2, p3)
	slices.Sort(u)
	if !slices.Equal(u, []int{0, 0, 1}) {
		t.Fatalf("usable slots %v, want one process with 1 and two with 0", u)
	}
	w.check()
}

// The sum of what the processes may have in flight never exceeds the
// endpoint's concurrency while members join, leave, and one is cut off from
// NATS while still running; the slots of those gone are taken up.
func TestSlotsHoldWhileMembersJoinAndLeave(t *testing.T) {
	t.Parallel()
	w := newSTWorld(t, 3)
	p1 := w.start("p1", 4)
	w.settled("p1 alone to hold every slot", p1)
	w.progress("sends from p1", 20)

	p2, p3, p4 := w.start("p2", 4), w.start("p3", 4), w.start("p4", 4)
	w.settled("four processes to share three slots", p1, p2, p3, p4)
	w.progress("sends from four", 20)
	w.check()

	p2.stop()
	p3.cutOff()
	w.settled("p1 and p4 to take over p2's slots and, once its key expired, p3's", p1, p4)
	w.progress("sends after two left", 20)
	w.check()

	p5 := w.start("p5", 4)
	w.settled("a newcomer to get its share", p1, p4, p5)
	wtWait(t, "every live process to hold one slot", func() bool { return slices.Equal(w.usables(p1, p4, p5), []int{1, 1, 1}) })
	w.progress("sends from three", 20)
	w.check()
	if u := w.usable(p3); u != 0 {
		t.Fatalf("the process cut off from NATS may still use %d slots", u)
	}
}

// The watch on the allocation records is opened again when it ends. While
// it is down the limit still holds and slots freed by another process are
// still taken up, only later.
func TestSlotsWatchComesBack(t *testing.T) {
	t.Parallel()
	w := newSTWorld(t, 1)
	// An endpoint whose one slot goes to p2 once both are live: p1 must
	// give it up, and p2 learn of it.
	for i := 0; ; i++ {
		w.ep = fmt.Sprintf("ep_%d", i)
		if fairShare(w.ep, 1, []string{"p1", "p2"}, "p2") == 1 {
			break
		}
	}
	p1 := w.start("p1", 2)
	w.settled("p1 to hold the slot", p1)
	ws := &wtWatches{}
	ws.refuse.Store(true)
	p2 := w.startWith("p2", 2, func(p *stProc) { p.a.watchKV = ws.watch })
	wtWait(t, "p2's slots watch to be tried again", func() bool { return ws.refused.Load() >= 2 })
	if err := p2.a.err(); err == nil {
		t.Fatal("slots err is nil while the watch is down")
	}
	wtWait(t, "p2 to get the slot p1 gave up", func() bool { return slices.Equal(w.usables(p1, p2), []int{0, 1}) })
	w.progress("sends", 10)

	ws.allow()
	wtWait(t, "p2's slots watch up", func() bool { return p2.a.err() == nil })
	ws.end()
	wtWait(t, "p2's slots watch down", func() bool { return p2.a.err() != nil })
	ws.allow()
	wtWait(t, "p2's slots watch up again", func() bool { return p2.a.err() == nil && ws.opened.Load() == 2 })
	w.progress("sends", 10)
	w.check()
}

// A member's TTL must leave room for its sends to end after it fenced
// itself; the default follows the delivery timeout.
func TestConfigMemberTTLAboveTwiceDeliveryTimeout(t *testing.T) {
	t.Parallel()
	if got := (Config{}).WithDefaults().MemberTTL; got != 30*time.Second {
		t.Fatalf("default member TTL %s, want 30s", got)
	}
	c := Config{DeliveryTimeout: 20 * time.Second, AckWait: time.Minute}.WithDefaults()
	if c.MemberTTL != time.Minute {
		t.Fatalf("member TTL %s with a 20s delivery timeout, want 1m", c.MemberTTL)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.MemberTTL = 40 * time.Second
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "member-ttl") {
		t.Fatalf("member TTL of 2 × delivery timeout accepted: %v", err)
	}
	if fenceAfter(c.MemberTTL)+c.DeliveryTimeout >= c.MemberTTL {
		t.Fatal("a send begun just before fencing could outlive the member key")
	}
}
