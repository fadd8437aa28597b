package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// members follows the live dispatcher processes, so that each endpoint's
// concurrency and rate limit are shared out among them and hold across the
// whole deployment. Each process refreshes a key with a TTL; a process that
// dies drops out when its key expires.
//
// A process's membership is an incarnation: its key name. Once a process's
// heartbeat has not been acknowledged for long enough that its key may have
// expired, the others may have taken over what it held, so it never uses
// that name again: it heartbeats under a new one and starts from nothing.
// A name seen gone is gone for good, which is what lets another process
// free a dead member's share of an endpoint without asking it.
type members struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	id  string // this process; its incarnations are named after it
	ttl time.Duration
	// log defaults to slog.Default().
	log *slog.Logger
	// watchKV opens the watch; tests replace it to end one.
	watchKV watchFunc

	mu   sync.Mutex
	live map[string]bool
	// gone holds the names seen gone (expired, purged, or missing from a
	// watch's initial values after being live), with when.
	gone map[string]time.Time
	// inc numbers this process's incarnations; lastOK is when the last
	// heartbeat acknowledged under the current one was sent.
	inc    int
	lastOK time.Time
	down   error // nil while the watch is up
	loaded chan struct{}
	// onChange is told of every change of the live set or of this
	// process's lease; it must not block.
	onChange func()
	// beforeLeave, when set, runs before the process removes its key on
	// the way out: it reports whether nothing is in flight any more (the
	// key is left to expire otherwise).
	beforeLeave func(ctx context.Context) bool
}

const membersPrefix = "dispatcher."

// fenceAfter is how long after its last acknowledged heartbeat was sent a
// process may still start sends, and retireAfter when it gives up the
// incarnation. A key lives at least ttl after that send; a send started in
// time ends DeliveryTimeout later, which Config.Validate keeps below ttl/2,
// so nothing this process started is still in flight when another process
// may see its key gone. The margin covers the time from a message's arrival
// to its send.
func fenceAfter(ttl time.Duration) time.Duration { return ttl/2 - fenceMargin(ttl) }

func retireAfter(ttl time.Duration) time.Duration { return ttl - fenceMargin(ttl) }

func fenceMargin(ttl time.Duration) time.Duration { return min(ttl/10, time.Second) }

// heartbeatEvery spaces the heartbeats: several fit in fenceAfter, so one
// lost heartbeat does not fence the process.
func heartbeatEvery(ttl time.Duration) time.Duration { return ttl / 6 }

func (m *members) logger() *slog.Logger {
	if m.log == nil {
		return slog.Default()
	}
	return m.log
}

// name is this process's current incarnation; m.mu is held.
func (m *members) name() string {
	if m.inc == 0 {
		return m.id
	}
	return m.id + "-" + strconv.Itoa(m.inc)
}

func (m *members) changed() {
	m.mu.Lock()
	fn := m.onChange
	m.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (m *members) setOnChange(fn func()) {
	m.mu.Lock()
	m.onChange = fn
	m.mu.Unlock()
}

func (m *members) setBeforeLeave(fn func(ctx context.Context) bool) {
	m.mu.Lock()
	m.beforeLeave = fn
	m.mu.Unlock()
}

func (m *members) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(1, len(m.live))
}

// list returns the live members' names, sorted: every process that sees
// the same members computes the same shares.
func (m *members) list() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.live))
	for id := range m.live {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// liveNow reports whether name is in the live set (no I/O).
func (m *members) liveNow(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[name]
}

// knownGone reports whether name was seen gone (no I/O).
func (m *members) knownGone(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.gone[name].IsZero()
}

// lease returns this process's current incarnation and until when it may
// start sends (ok is false when that time has passed: it is fenced).
func (m *members) lease() (self string, until time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	self = m.name()
	if m.lastOK.IsZero() {
		return self, time.Time{}, false
	}
	until = m.lastOK.Add(fenceAfter(m.ttl))
	return self, until, time.Now().Before(until)
}

// err is nil while the membership watch is up.
func (m *members) err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down == nil && m.loaded == nil {
		return errors.New("members watch: not started")
	}
	return m.down
}

func (m *members) setErr(err error) {
	m.mu.Lock()
	m.down = err
	m.mu.Unlock()
}

// loadedC is closed once the watch's initial values are in; m.mu is held.
func (m *members) loadedC() chan struct{} {
	if m.loaded == nil {
		m.loaded = make(chan struct{})
		m.down = errors.New("members watch: not loaded yet")
	}
	return m.loaded
}

// waitLoaded waits until the membership is loaded for the first time.
func (m *members) waitLoaded(ctx context.Context) error {
	m.mu.Lock()
	c := m.loadedC()
	m.mu.Unlock()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *members) heartbeat(ctx context.Context) error {
	m.mu.Lock()
	if !m.lastOK.IsZero() && time.Since(m.lastOK) >= retireAfter(m.ttl) {
		m.retire()
	}
	self, prev := m.name(), m.lastOK
	m.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, fenceAfter(m.ttl))
	defer cancel()
	sent := time.Now()
	_, err := m.js.Publish(hctx, "$KV."+streams.BucketMembers+"."+membersPrefix+self, []byte(sent.UTC().Format(time.RFC3339)),
		jetstream.WithMsgTTL(m.ttl))
	if err != nil {
		return err
	}
	m.mu.Lock()
	if self == m.name() {
		// The key lived on only if this heartbeat was stored before the
		// previous one expired: certain when it was acknowledged in time.
		if prev.IsZero() || time.Since(prev) < retireAfter(m.ttl) {
			m.lastOK = sent
		} else {
			m.retire()
		}
	}
	m.mu.Unlock()
	m.changed()
	return nil
}

// retire gives up the current incarnation; m.mu is held. The old key is
// left to expire: by then nothing started under it is in flight.
func (m *members) retire() {
	m.logger().Warn("heartbeat lapsed; rejoining under a new name", "member", m.name())
	m.inc++
	m.lastOK = time.Time{}
}

// run heartbeats and watches the other members until ctx ends; on the way
// out it removes its own key so the others take up its share at once.
func (m *members) run(ctx context.Context) {
	m.mu.Lock()
	if m.live == nil {
		m.live = map[string]bool{}
	}
	loaded := m.loadedC()
	m.mu.Unlock()
	if err := m.heartbeat(ctx); err != nil && ctx.Err() == nil {
		m.logger().Warn("member heartbeat", "err", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(heartbeatEvery(m.ttl))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.heartbeat(ctx); err != nil && ctx.Err() == nil {
					m.logger().Warn("member heartbeat", "err", err)
				}
			}
		}
	}()
	defer m.leave()
	defer wg.Wait()
	rewatch(ctx, m.logger(), "members", m.setErr, func(ctx context.Context, up func()) error {
		return m.session(ctx, func() {
			up()
			select {
			case <-loaded:
			default:
				close(loaded)
			}
		})
	})
}

func (m *members) leave() {
	m.mu.Lock()
	self, before := m.name(), m.beforeLeave
	m.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.Background(), m.ttl)
	defer cancel()
	if before != nil && !before(cctx) {
		m.logger().Warn("sends still in flight; leaving the member key to expire", "member", self)
		return
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	// The purge marker needs no keeping once the others saw it.
	_ = m.kv.Purge(pctx, membersPrefix+self, jetstream.PurgeTTL(m.ttl))
}

// session watches the member keys once: the initial values replace the live
// set (a member missing from them left while no watch was up), then changes
// are followed until the watch ends.
func (m *members) session(ctx context.Context, up func()) error {
	openWatch := m.watchKV
	if openWatch == nil {
		openWatch = watchKeys
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := openWatch(wctx, m.kv, membersPrefix+"*")
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
					m.forget(seen)
					up()
				}
				continue
			}
			id := strings.TrimPrefix(e.Key(), membersPrefix)
			put := e.Operation() == jetstream.KeyValuePut
			if initial && put {
				seen[id] = true
			}
			m.apply(id, put)
		}
	}
}

func (m *members) apply(id string, put bool) {
	m.mu.Lock()
	if m.gone == nil {
		m.gone = map[string]time.Time{}
	}
	changed := false
	switch {
	case put && m.gone[id].IsZero():
		changed = !m.live[id]
		m.live[id] = true
	case !put:
		changed = m.live[id]
		delete(m.live, id)
		m.gone[id] = time.Now()
	}
	m.mu.Unlock()
	if changed {
		m.changed()
	}
}

// forget marks gone the members that were live but missing from a watch's
// initial values, and drops old gone names (a name never comes back).
func (m *members) forget(seen map[string]bool) {
	m.mu.Lock()
	if m.gone == nil {
		m.gone = map[string]time.Time{}
	}
	now := time.Now()
	changed := false
	for id := range m.live {
		if !seen[id] {
			delete(m.live, id)
			m.gone[id] = now
			changed = true
		}
	}
	for id, at := range m.gone {
		if now.Sub(at) > goneKeep(m.ttl) {
			delete(m.gone, id)
		}
	}
	m.mu.Unlock()
	if changed {
		m.changed()
	}
}

// goneKeep is how long a gone name is remembered; one met again later is
// checked with the stream again.
func goneKeep(ttl time.Duration) time.Duration { return max(10*ttl, 10*time.Minute) }

// isGone reports whether name's key is gone, for good. The live set may lag
// (a member that just joined), so a name it does not hold is looked up on
// the stream's leader, not on a replica that may be behind; a failed lookup
// counts as alive.
func (m *members) isGone(ctx context.Context, name string) bool {
	m.mu.Lock()
	if m.live[name] {
		m.mu.Unlock()
		return false
	}
	if !m.gone[name].IsZero() {
		m.mu.Unlock()
		return true
	}
	m.mu.Unlock()
	present, err := m.leaderHas(ctx, membersPrefix+name)
	if err != nil || present {
		return false
	}
	m.mu.Lock()
	if m.gone == nil {
		m.gone = map[string]time.Time{}
	}
	if m.gone[name].IsZero() {
		m.gone[name] = time.Now()
	}
	m.mu.Unlock()
	return true
}

// leaderHas reads a key of the members bucket through the stream leader (a
// KV Get may be answered by any replica).
func (m *members) leaderHas(ctx context.Context, key string) (bool, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{"$KV." + streams.BucketMembers + "." + key})
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := m.js.Conn().RequestWithContext(rctx, jsAPIPrefix(m.js)+"STREAM.MSG.GET.KV_"+streams.BucketMembers, req)
	if err != nil {
		return false, err
	}
	var resp struct {
		Error *struct {
			Code    int `json:"code"`
			ErrCode int `json:"err_code"`
		} `json:"error"`
		Message *struct {
			Header []byte `json:"hdrs"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return false, fmt.Errorf("member lookup: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("member lookup: error %d", resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return false, errors.New("member lookup: empty answer")
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return false, fmt.Errorf("member lookup: %w", err)
		}
		// A delete or purge marker, or the marker an expired key leaves.
		if h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != "" {
			return false, nil
		}
	}
	return true, nil
}

// jsAPIPrefix is the JetStream API subject prefix js sends requests to.
func jsAPIPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}
