package poller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// rewatchInitial is the first wait before a watch that ended is opened
	// again; it doubles at each failed attempt up to Config.RewatchMax.
	rewatchInitial = 100 * time.Millisecond
	// watchOpenTimeout bounds one attempt to open a watch (the consumer
	// create request behind it).
	watchOpenTimeout = 10 * time.Second
)

// errWatchClosed: a watcher's updates channel was closed by the client. It
// happens when the ordered consumer behind the watch cannot be recreated
// after a missed heartbeat or a sequence gap (its stream was not found, a
// consumer limit, a cluster error the client does not retry), or when the
// connection closes. The client never reopens it.
var errWatchClosed = errors.New("watch closed by the client")

// watched is a bucket the poller keeps a view of.
type watched struct {
	kv jetstream.KeyValue
	// load replaces the view with a (re)watch's initial values: what was
	// deleted or purged while no watch was up is forgotten.
	load func([]jetstream.KeyValueEntry)
	// on applies one later change.
	on func(jetstream.KeyValueEntry)
}

// watchDown is why and since when a bucket's watch is not up.
type watchDown struct {
	since time.Time
	err   error
}

// keepWatching watches b until ctx is done, opening the watch again (with
// back-off) whenever it ends, so that a watch that dies is not the end of
// the poller's view. The first attempt's outcome is sent on ready: Start
// fails if it fails. While a watch is down, Ready reports it; the view kept
// meanwhile is the last one seen, and polling goes on from it.
func (p *Poller) keepWatching(ctx context.Context, b watched, ready chan<- error) {
	defer p.loops.Done()
	bucket := b.kv.Bucket()
	log := p.log.With("bucket", bucket)
	delay := rewatchInitial
	first := true
	for {
		up := false
		err := p.watchOnce(ctx, b, func() {
			up = true
			delay = rewatchInitial
			p.setWatchUp(bucket)
			if first {
				first = false
				ready <- nil
			} else {
				log.Info("watch re-established")
			}
		})
		if ctx.Err() != nil {
			return
		}
		if first {
			ready <- fmt.Errorf("watch %s: %w", bucket, err)
			return
		}
		p.setWatchDown(bucket, err)
		if up {
			log.Warn("watch ended; watching again", "err", err, "retry_in", delay)
		} else {
			log.Warn("watch still down", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, p.cfg.RewatchMax)
	}
}

// watchOnce opens one watch of b and feeds it to b until it ends; up runs
// once the initial values are loaded. It returns why the watch ended.
func (p *Poller) watchOnce(ctx context.Context, b watched, up func()) error {
	// The client ends the watch when its context ends: wctx lives as long
	// as this watch, and is cancelled early only if opening it hangs.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hung := time.AfterFunc(watchOpenTimeout, cancel)
	w, err := b.kv.WatchAll(wctx)
	if !hung.Stop() {
		if err == nil {
			_ = w.Stop()
		}
		return fmt.Errorf("open the watch: no answer within %s", watchOpenTimeout)
	}
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	var initial []jetstream.KeyValueEntry
	loading := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			switch {
			case !ok && loading:
				return fmt.Errorf("%w before its initial values", errWatchClosed)
			case !ok:
				return errWatchClosed
			case e == nil && loading:
				loading = false
				b.load(initial)
				initial = nil
				up()
			case e == nil:
			case loading:
				initial = append(initial, e)
			default:
				b.on(e)
			}
		}
	}
}

func (p *Poller) setWatchUp(bucket string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.watchesDown, bucket)
}

// setWatchDown records that bucket's watch is down because of err, since
// the first failure of this outage.
func (p *Poller) setWatchDown(bucket string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.watchesDown[bucket]
	if !ok {
		d.since = p.cfg.Now()
	}
	d.err = err
	p.watchesDown[bucket] = d
}

// Ready reports whether the poller is running on a current view of its
// buckets: nil once Start returned, while every watch (sources, source
// state, endpoint health) is up and NATS is connected; otherwise an error
// saying what is not. A /readyz of a process that polls should fail on it.
func (p *Poller) Ready() error {
	switch p.running.Load() {
	case runStopped:
		return errors.New("poller: stopped")
	case runNotStarted:
		return errors.New("poller: not started")
	}
	if !p.cfg.JS.Conn().IsConnected() {
		return errors.New("poller: nats not connected")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.watchesDown) == 0 {
		return nil
	}
	buckets := make([]string, 0, len(p.watchesDown))
	for b := range p.watchesDown {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	msgs := make([]string, 0, len(buckets))
	for _, b := range buckets {
		d := p.watchesDown[b]
		msgs = append(msgs, fmt.Sprintf("watch of %s down since %s: %v", b, d.since.UTC().Format(time.RFC3339), d.err))
	}
	return errors.New("poller: " + strings.Join(msgs, "; "))
}
