package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/hookstream/hookstream/streams"
)

// slots shares each endpoint's concurrency out among the live dispatcher
// processes so that, together, they never have more than it in flight.
//
// Each endpoint has an allocation record in the members bucket,
// slots.<endpoint> = {member → slots held}, changed only by compare-and-set.
// A member's entry counts until its member key is gone (then it can send
// nothing: see members), so the entries of live members never add up to
// more than the concurrency: a process grows only into free slots, and
// shrinks by first lowering what it lets itself start, waiting for its sends
// to end, and only then writing the lower number. Each process aims at a
// fair share computed the same way by everyone from the sorted live members
// (the shares add up to the concurrency; with fewer slots than members, which
// members get one is rotated by the endpoint's id). Records are written when
// membership or an endpoint's concurrency changes, never per delivery.
//
// The rate limit follows the same allocation: a process holding k of an
// endpoint's c slots sends at most rate × k / c per second.
type slots struct {
	kv       jetstream.KeyValue // the members bucket
	members  *members
	onChange func(ep string)
	log      *slog.Logger
	// watchKV opens the watch on the records; tests replace it to end one.
	watchKV watchFunc

	mu      sync.Mutex
	eps     map[string]*endpointSlots
	recs    map[string]*slotRecord // the records as the watch reported them
	dirty   map[string]bool
	all     bool
	closing bool
	leased  bool          // the lease as run last saw it
	idle    chan struct{} // closed once closing and nothing is in use
	down    error
	kick    chan struct{}
}

// endpointSlots is this process's part of one endpoint.
type endpointSlots struct {
	conc int
	// self is the incarnation held belongs to: a new one holds nothing.
	self string
	// held is this process's entry in the record; limit is what it lets
	// itself have in use now (at most held, lowered first when shrinking);
	// used is what pulls reserved and sends hold.
	held, limit, used int
	forget            bool
}

// slotRecord is an endpoint's allocation record.
type slotRecord struct {
	V    int            `msgpack:"v"`
	Held map[string]int `msgpack:"held"`
}

func (r *slotRecord) EnvelopeVersion() (int, int) { return r.V, streams.RecordVersion }
func (r *slotRecord) SetEnvelopeVersion()         { r.V = streams.RecordVersion }

const slotsPrefix = "slots."

// maxSlotCAS bounds one record change's compare-and-set loop.
const maxSlotCAS = 64

// newSlots builds the allocator over the members bucket kv and m, which it
// asks about liveness and tells when it may leave. onChange(ep) is called
// when ep's share changes (it must not block).
func newSlots(kv jetstream.KeyValue, m *members, onChange func(ep string), log *slog.Logger) *slots {
	if log == nil {
		log = slog.Default()
	}
	a := &slots{
		kv: kv, members: m, onChange: onChange, log: log,
		eps: map[string]*endpointSlots{}, recs: map[string]*slotRecord{}, dirty: map[string]bool{},
		kick: make(chan struct{}, 1), down: errors.New("endpoint slots watch: not started"),
	}
	m.setOnChange(a.markAll)
	m.setBeforeLeave(a.drain)
	return a
}

// share is how many of ep's slots (conc is the endpoint's concurrency)
// this process may have in use now: 0 while another process holds them,
// while its own lease has run out, or once it is leaving. The worker is
// poked when it changes.
func (a *slots) share(ep string, conc int) int {
	self, _, leased := a.members.lease()
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entryLocked(ep, conc, self)
	if a.closing || !leased || e.self != self {
		return 0
	}
	return e.limit
}

// take reserves up to want of ep's slots for sends about to begin. It
// returns how many it gave (0: none now; onChange tells when share changes,
// and a send's end frees one) and the time by which those sends must have begun: one begun
// later could outlive this process's membership, so a pull waiting for a
// delivery must end by then. Every slot taken is given back with put: when
// its send ends, or at once when it was not used.
func (a *slots) take(ep string, conc, want int) (int, time.Time) {
	if want <= 0 {
		return 0, time.Time{}
	}
	self, until, leased := a.members.lease()
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entryLocked(ep, conc, self)
	if a.closing || !leased || e.self != self {
		return 0, time.Time{}
	}
	n := min(want, e.limit-e.used)
	if n <= 0 {
		return 0, time.Time{}
	}
	e.used += n
	return n, until
}

// entryLocked returns ep's entry, made or updated for conc; a.mu is held.
func (a *slots) entryLocked(ep string, conc int, self string) *endpointSlots {
	conc = max(conc, 0)
	e := a.eps[ep]
	if e == nil {
		e = &endpointSlots{conc: conc, self: self}
		a.eps[ep] = e
		a.markLocked(ep)
	}
	if e.forget {
		e.forget = false
		a.markLocked(ep)
	}
	if e.conc != conc {
		e.conc = conc
		e.limit = min(e.limit, conc)
		a.markLocked(ep)
	}
	return e
}

// put gives back n slots of ep taken with take.
func (a *slots) put(ep string, n int) {
	if n <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.eps[ep]
	if e == nil {
		return
	}
	e.used = max(0, e.used-n)
	if e.held > e.limit && e.used <= e.limit {
		// A shrink was waiting for this.
		a.markLocked(ep)
	}
	if a.closing && a.idle != nil {
		a.closeIfIdleLocked()
	}
}

// rate is this process's part of ep's rate limit r (per second; 0 for none):
// r × the slots it may use now / conc. It is 0 while it may use none.
func (a *slots) rate(ep string, conc int, r float64) rate.Limit {
	if r <= 0 {
		return rate.Inf
	}
	a.mu.Lock()
	limit := 0
	if e := a.eps[ep]; e != nil {
		limit = e.limit
	}
	a.mu.Unlock()
	return rate.Limit(r * float64(limit) / float64(max(1, conc)))
}

// forget gives up this process's slots of ep (its worker ended: the
// endpoint is gone) once none is in use.
func (a *slots) forget(ep string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.eps[ep]; e != nil {
		e.forget = true
		a.markLocked(ep)
	}
}

// err is nil while the watch on the allocation records is up. While it is
// down the limits still hold (every change is a compare-and-set); slots
// freed elsewhere are only noticed later.
func (a *slots) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.down
}

func (a *slots) setErr(err error) {
	a.mu.Lock()
	a.down = err
	a.mu.Unlock()
}

// drain stops every new send and waits until none is in use; the members
// run it before removing this process's key.
func (a *slots) drain(ctx context.Context) bool {
	a.mu.Lock()
	a.closing = true
	for _, e := range a.eps {
		e.limit = 0
	}
	if a.idle == nil {
		a.idle = make(chan struct{})
		a.closeIfIdleLocked()
	}
	idle := a.idle
	a.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *slots) closeIfIdleLocked() {
	select {
	case <-a.idle:
		return
	default:
	}
	for _, e := range a.eps {
		if e.used > 0 {
			return
		}
	}
	close(a.idle)
}

func (a *slots) markAll() {
	a.mu.Lock()
	a.all = true
	a.mu.Unlock()
	a.wake()
}

// markLocked asks the run loop to look at ep again; a.mu is held.
func (a *slots) markLocked(ep string) {
	a.dirty[ep] = true
	a.wake()
}

func (a *slots) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run keeps this process's allocations at its fair shares until ctx ends.
func (a *slots) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rewatch(ctx, a.log, "endpoint slots", a.setErr, a.session)
	}()
	defer wg.Wait()
	// Fencing, and slots a dead member held, show up with time alone.
	t := time.NewTicker(heartbeatEvery(a.members.ttl))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-t.C:
			a.markAll()
		}
		a.noticeLease()
		a.mu.Lock()
		var todo []string
		if a.all {
			for ep := range a.eps {
				todo = append(todo, ep)
			}
		} else {
			for ep := range a.dirty {
				todo = append(todo, ep)
			}
		}
		a.all = false
		clear(a.dirty)
		a.mu.Unlock()
		for _, ep := range todo {
			if ctx.Err() != nil {
				return
			}
			a.reconcile(ctx, ep)
		}
	}
}

// noticeLease tells every endpoint's worker when this process's lease runs
// out or comes back: share changes for all of them.
func (a *slots) noticeLease() {
	_, _, leased := a.members.lease()
	a.mu.Lock()
	if leased == a.leased {
		a.mu.Unlock()
		return
	}
	a.leased = leased
	eps := make([]string, 0, len(a.eps))
	for ep := range a.eps {
		eps = append(eps, ep)
	}
	a.mu.Unlock()
	if a.onChange == nil {
		return
	}
	for _, ep := range eps {
		a.onChange(ep)
	}
}

// fairShare is what this process aims to hold of conc slots among the sorted
// live members: conc/n each, the remainder going to the members that follow
// a position the endpoint's id picks, so that the shares add up to conc and
// no process gets the extra slot of every endpoint.
func fairShare(ep string, conc int, live []string, self string) int {
	n := len(live)
	i, found := slices.BinarySearch(live, self)
	if !found || conc <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(ep))
	start := int(h.Sum32() % uint32(n))
	if (i-start+n)%n < conc%n {
		return conc/n + 1
	}
	return conc / n
}

const (
	slotsKeep = iota
	slotsShrink
	slotsGrow
)

// reconcile moves this process's allocation of ep toward its share.
func (a *slots) reconcile(ctx context.Context, ep string) {
	self, _, leased := a.members.lease()
	live := a.members.list()
	a.mu.Lock()
	e := a.eps[ep]
	if e == nil {
		a.mu.Unlock()
		return
	}
	if e.self != self {
		// A new incarnation holds nothing; the old one's entry goes with
		// its key.
		e.self, e.held, e.limit = self, 0, 0
	}
	if r := a.recs[ep]; r != nil && r.Held[self] > e.held {
		// A write that timed out may still have been stored: what the
		// record holds for us is ours to use, and to give back.
		e.held = r.Held[self]
	}
	target := fairShare(ep, e.conc, live, self)
	if a.closing || e.forget {
		target = 0
	}
	// No new send past the share from now on; and what the record holds
	// for us, up to the share, may be used.
	changed := a.setLimitLocked(e, target)
	op := slotsKeep
	switch {
	case e.held > target && e.used <= target:
		op = slotsShrink
	case e.held < target && leased && a.mayGrowLocked(ep, self, e.conc):
		op = slotsGrow
	case e.held == 0 && e.used == 0 && e.forget:
		delete(a.eps, ep)
	}
	conc := e.conc
	a.mu.Unlock()
	if op != slotsKeep {
		held, err := a.write(ctx, ep, self, conc, target, op == slotsGrow)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("endpoint slots", "endpoint", ep, "err", err)
			}
		} else {
			a.mu.Lock()
			if e := a.eps[ep]; e != nil && e.self == self {
				e.held = held
				if a.setLimitLocked(e, target) {
					changed = true
				}
				if e.forget && e.held == 0 && e.used == 0 {
					delete(a.eps, ep)
				}
			}
			a.mu.Unlock()
		}
	}
	if changed && a.onChange != nil {
		a.onChange(ep)
	}
}

// setLimitLocked sets what e may have in use to min(held, target) (none
// while leaving) and reports whether that changed; a.mu is held.
func (a *slots) setLimitLocked(e *endpointSlots, target int) bool {
	l := min(e.held, target)
	if a.closing || e.forget {
		l = 0
	}
	if l == e.limit {
		return false
	}
	e.limit = l
	return true
}

// mayGrowLocked tells from the watched record whether a grow may find a
// free slot, so that a full record costs no write; a.mu is held.
func (a *slots) mayGrowLocked(ep, self string, conc int) bool {
	rec := a.recs[ep]
	if rec == nil || a.down != nil {
		// No record, or the one held may be stale: only the stream can tell.
		return true
	}
	used := 0
	for m, n := range rec.Held {
		if m == self || a.members.liveNow(m) {
			used += n
		} else if !a.members.knownGone(m) {
			// Only the stream can tell.
			return true
		}
	}
	return used < conc
}

// write changes this process's entry in ep's record by compare-and-set:
// growing takes only free slots (up to target), shrinking lowers it to
// target. Entries of members that are gone are dropped on the way. It
// returns the entry as the record now holds it.
func (a *slots) write(ctx context.Context, ep, self string, conc, target int, grow bool) (int, error) {
	key := slotsPrefix + ep
	for range maxSlotCAS {
		rec := &slotRecord{}
		var rev uint64
		found := false
		e, err := a.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("read %s: %w", key, err)
		default:
			if err := streams.Unmarshal(e.Value(), rec); err != nil {
				return 0, fmt.Errorf("read %s: %w", key, err)
			}
			rev, found = e.Revision(), true
		}
		if rec.Held == nil {
			rec.Held = map[string]int{}
		}
		changed := false
		for m := range rec.Held {
			if m != self && a.members.isGone(ctx, m) {
				delete(rec.Held, m)
				changed = true
			}
		}
		mine := rec.Held[self]
		if grow {
			sum := 0
			for _, n := range rec.Held {
				sum += n
			}
			if add := min(target-mine, conc-sum); add > 0 {
				rec.Held[self] = mine + add
				changed = true
			}
		} else if mine > target {
			rec.Held[self] = target
			if target == 0 {
				delete(rec.Held, self)
			}
			changed = true
		}
		if !changed {
			return mine, nil
		}
		switch {
		case len(rec.Held) == 0 && found:
			err = a.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case len(rec.Held) == 0:
		default:
			var b []byte
			if b, err = streams.Marshal(rec); err != nil {
				return 0, err
			}
			if found {
				_, err = a.kv.Update(ctx, key, b, rev)
			} else {
				_, err = a.kv.Create(ctx, key, b)
			}
		}
		if streams.IsConflict(err) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("write %s: %w", key, err)
		}
		return rec.Held[self], nil
	}
	return 0, fmt.Errorf("write %s: still contended after %d tries", key, maxSlotCAS)
}

// session watches the allocation records once, so that slots freed by
// another process (or with a dead one) are taken up at once.
func (a *slots) session(ctx context.Context, up func()) error {
	openWatch := a.watchKV
	if openWatch == nil {
		openWatch = watchKeys
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := openWatch(wctx, a.kv, slotsPrefix+"*")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	seen := map[string]bool{}
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errWatchEnded
			}
			if e == nil {
				if initial {
					initial = false
					a.mu.Lock()
					for ep := range a.recs {
						if !seen[ep] {
							delete(a.recs, ep)
						}
					}
					a.mu.Unlock()
					up()
					a.markAll()
				}
				continue
			}
			ep := strings.TrimPrefix(e.Key(), slotsPrefix)
			if initial {
				seen[ep] = true
			}
			var rec *slotRecord
			if e.Operation() == jetstream.KeyValuePut {
				rec = &slotRecord{}
				if err := streams.Unmarshal(e.Value(), rec); err != nil {
					rec = nil
				}
			}
			a.mu.Lock()
			if rec != nil {
				a.recs[ep] = rec
			} else {
				delete(a.recs, ep)
			}
			if a.eps[ep] != nil {
				a.markLocked(ep)
			}
			a.mu.Unlock()
		}
	}
}
