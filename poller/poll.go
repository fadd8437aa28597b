package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

var (
	// errCursorMoved: the state's cursor is not the one this poll started
	// from, so another poller (whose lease outlived ours) polled meanwhile.
	errCursorMoved = errors.New("cursor moved by another poller")
	// errSourceGone: the source was deleted during the poll.
	errSourceGone = errors.New("source deleted")
)

// publishChunk bounds the async publishes in flight per page, well inside
// the client's pending limit.
const publishChunk = 512

// runPoll polls source id once, if it is still due once this poller holds
// its lease (another poller may just have polled it).
func (p *Poller) runPoll(ctx context.Context, id string, reason dueReason) {
	sp, ok := p.specFor(id)
	if !ok {
		return
	}
	log := p.log.With("source", id)
	if reason == dueGap {
		gap, err := p.checkGap(ctx, sp)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("look up the source's last event", "err", err)
			}
			return
		}
		if !gap {
			return
		}
	}
	leaseRev, held, err := p.acquire(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("take the poll lease", "err", err)
		}
		return
	}
	if !held {
		return
	}
	defer p.release(id, leaseRev)
	st, err := p.loadState(ctx, sp)
	if err != nil || st == nil {
		if err != nil && ctx.Err() == nil {
			log.Warn("read the source state", "err", err)
		}
		return
	}
	p.mu.Lock()
	last := p.lastEvent[id]
	p.mu.Unlock()
	if due(st, sp.window, last, p.cfg.Now()) == notDue {
		return
	}
	p.poll(ctx, sp, st, log)
}

// loadState reads the state of sp, creating it for a source never polled.
// It returns nil when the source was deleted.
func (p *Poller) loadState(ctx context.Context, sp spec) (*sourceState, error) {
	st, rev, err := streams.Update(ctx, p.stateKV, sp.id, func(cur *sourceState) (*sourceState, error) {
		if cur != nil {
			return nil, streams.ErrNoChange
		}
		if _, ok := p.specFor(sp.id); !ok {
			return nil, errSourceGone
		}
		return newState(sp.id, p.cfg.Now()), nil
	})
	switch {
	case errors.Is(err, errSourceGone):
		return nil, nil
	case errors.Is(err, streams.ErrNoChange), err == nil:
		p.cacheState(sp.id, st, rev)
		return st, nil
	}
	return nil, err
}

// poll reads pages from st's cursor: each page's events are published and
// acknowledged before the cursor moves past it, has_more pages are followed
// up to MaxPagesPerPoll, and the outcome sets the status and the next poll.
// When ctx ends mid-poll nothing more is recorded: the next poll starts
// from the last saved cursor and its re-publishes are duplicates.
func (p *Poller) poll(ctx context.Context, sp spec, st *sourceState, log *slog.Logger) {
	start := p.cfg.Now()
	cursor := st.Cursor
	seen := map[string]bool{cursor: true}
	var pollErr, storeErr error
	more := false
	for range p.cfg.MaxPagesPerPoll {
		page, err := p.fetch(ctx, sp.src, cursor)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			pollErr = err
			break
		}
		now := p.cfg.Now()
		evs, skipped, err := p.buildEvents(sp.id, cursor, page, seen, now)
		if err != nil {
			pollErr = err
			break
		}
		if err := p.publish(ctx, evs); err != nil {
			if ctx.Err() != nil {
				return
			}
			storeErr = err
			break
		}
		if p.hooks.afterPublish != nil && p.hooks.afterPublish(sp.id) {
			return
		}
		next := cursor
		if page.NextCursor != "" {
			next = page.NextCursor
		}
		if err := p.saveCursor(ctx, sp.id, cursor, next, len(evs) > 0, skipped, now); err != nil {
			if ctx.Err() != nil || errors.Is(err, errCursorMoved) || errors.Is(err, errSourceGone) {
				log.Debug("poll abandoned", "err", err)
				return
			}
			storeErr = err
			break
		}
		logSkipped(log, skipped)
		if len(evs) > 0 {
			p.noteEvent(sp.id, now)
			log.Debug("page published", "events", len(evs))
		}
		cursor, more = next, page.HasMore
		seen[cursor] = true
		if !more {
			break
		}
	}
	p.finish(ctx, sp, start, pollErr, storeErr, more, log)
}

// fetch asks src for one page, bounded by RequestTimeout.
func (p *Poller) fetch(ctx context.Context, src Source, cursor string) (page Page, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	defer func() {
		// A plugged-in Source's bug must not take the process down.
		if r := recover(); r != nil {
			err = fmt.Errorf("source panicked: %v", r)
		}
	}()
	return src.Poll(ctx, cursor)
}

// buildEvents turns a page into events. A page that cannot be followed (a
// cursor that does not advance while has_more is set) is refused whole
// (ErrBadFeed) before anything is published. An invalid change is not: it is
// returned among skipped, for the cursor save to record, and the page's
// valid changes are published, so that one bad change never stalls the feed.
func (p *Poller) buildEvents(id, cursor string, page Page, seen map[string]bool, now time.Time) (evs []*streams.Event, skipped []skippedChange, err error) {
	if page.HasMore {
		if page.NextCursor == "" {
			return nil, nil, fmt.Errorf("%w: next_cursor: required when has_more is true", ErrBadFeed)
		}
		if seen[page.NextCursor] {
			return nil, nil, fmt.Errorf("%w: next_cursor: %q did not advance while has_more is true", ErrBadFeed, page.NextCursor)
		}
	}
	evs = make([]*streams.Event, 0, len(page.Changes))
	skip := func(i int, c Change, reason string) {
		skipped = append(skipped, skippedChange{
			Index: i, Cursor: cutText(cursor, maxSkippedCursor), ID: cutText(c.ID, maxSkippedID),
			Reason: cutText(reason, maxSkippedReason), At: now,
		})
	}
	for i, c := range page.Changes {
		switch {
		case c.Err != nil:
			skip(i, c, c.Err.Error())
			continue
		case c.ID == "":
			skip(i, c, "id: required")
			continue
		}
		t := c.Time
		if t.IsZero() {
			t = now
		}
		ev := &streams.Event{ID: id + ":" + c.ID, Type: c.Type, Source: id, Time: t.UTC(), Data: []byte(c.Data)}
		if err := ev.Validate(p.cfg.MaxEventData); err != nil {
			skip(i, c, trimInvalid(err))
			continue
		}
		evs = append(evs, ev)
	}
	return evs, skipped, nil
}

// maxSkipLogs bounds the log lines of one page's skipped changes; the rest
// are counted in one more line.
const maxSkipLogs = 10

// logSkipped logs a page's skipped changes.
func logSkipped(log *slog.Logger, skipped []skippedChange) {
	for i, s := range skipped {
		if i == maxSkipLogs {
			log.Warn("more invalid changes skipped", "count", len(skipped)-i, "cursor", s.Cursor)
			return
		}
		log.Warn("invalid change skipped", "index", s.Index, "change_id", s.ID, "cursor", s.Cursor, "reason", s.Reason)
	}
}

// publish stores evs in EVENTS (Nats-Msg-Id = event id) and returns once
// every publish was acknowledged, duplicates included.
func (p *Poller) publish(ctx context.Context, evs []*streams.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	futs := make([]jetstream.PubAckFuture, 0, min(len(evs), publishChunk))
	wait := func() error {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("%w: publish %s: %w", streams.ErrUnavailable, f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			case <-ctx.Done():
				return fmt.Errorf("%w: wait for publish acks: %w", streams.ErrUnavailable, ctx.Err())
			}
		}
		futs = futs[:0]
		return nil
	}
	for _, ev := range evs {
		b, err := streams.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		f, err := p.cfg.JS.PublishAsync(streams.EventSubject(ev.Source, ev.Type), b,
			jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(streams.StreamEvents))
		if err != nil {
			return fmt.Errorf("%w: publish %s: %w", streams.ErrUnavailable, ev.ID, err)
		}
		futs = append(futs, f)
		if len(futs) == publishChunk {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	return wait()
}

// saveCursor moves the cursor from from to to by compare-and-set, after the
// page's publishes were acknowledged, recording in the same write the page's
// skipped changes.
func (p *Poller) saveCursor(ctx context.Context, id, from, to string, published bool, skipped []skippedChange, now time.Time) error {
	st, rev, err := streams.Update(ctx, p.stateKV, id, func(cur *sourceState) (*sourceState, error) {
		switch {
		case cur == nil:
			return nil, errSourceGone
		case cur.Cursor != from:
			return nil, errCursorMoved
		}
		next := *cur
		changed := next.recordSkipped(skipped, now)
		if next.Cursor != to {
			next.Cursor, changed = to, true
		}
		if published {
			next.LastEvent, changed = now, true
		}
		if !changed {
			return nil, streams.ErrNoChange
		}
		return &next, nil
	})
	switch {
	case errors.Is(err, streams.ErrNoChange):
		return nil
	case err != nil:
		return err
	}
	p.cacheState(id, st, rev)
	return nil
}

// leaseKey is the BucketLeases key of a source's poll lease.
func leaseKey(id string) string { return "poll." + id }

// acquire takes the poll lease of source id; held is false when another
// poller has it.
func (p *Poller) acquire(ctx context.Context, id string) (rev uint64, held bool, err error) {
	rev, err = p.leasesKV.Create(ctx, leaseKey(id), []byte(p.owner), jetstream.KeyTTL(p.cfg.LeaseTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return rev, true, nil
}

// release gives the lease back, if it is still the one taken; it runs even
// while stopping, so that another poller need not wait for the TTL.
func (p *Poller) release(id string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.leasesKV.Delete(ctx, leaseKey(id), jetstream.LastRevision(rev)); err != nil {
		p.log.Debug("release the poll lease", "source", id, "err", err)
	}
}
