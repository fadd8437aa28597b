package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// attemptLog writes the attempt log (ATTEMPTS). A successful send's entry
// waits, with the endpoint's other successes, for the next flush (every
// AttemptLogFlush, or as soon as streams.AttemptBatchMax are waiting): a
// busy endpoint's log then costs one stored message per batch instead of
// one per delivery, the largest write left on the success path. A failed
// attempt is published at once, after the successes before it, so the log
// keeps each endpoint's order. Every publish is asynchronous: the log is
// a record for operators, never a delivery's state.
type attemptLog struct {
	js       jetstream.JetStream
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string][]streams.Attempt
}

func newAttemptLog(js jetstream.JetStream, log *slog.Logger, interval time.Duration) *attemptLog {
	return &attemptLog{js: js, log: log, interval: interval, pending: map[string][]streams.Attempt{}}
}

// success queues a successful attempt for the endpoint's next batch.
func (l *attemptLog) success(a *streams.Attempt) {
	l.mu.Lock()
	l.pending[a.EndpointID] = append(l.pending[a.EndpointID], *a)
	if len(l.pending[a.EndpointID]) >= streams.AttemptBatchMax {
		l.flushLocked(a.EndpointID)
	}
	l.mu.Unlock()
}

// failure publishes a failed (or final) attempt now, after the successes
// of its endpoint that wait.
func (l *attemptLog) failure(a *streams.Attempt) {
	l.mu.Lock()
	l.flushLocked(a.EndpointID)
	l.publishLocked(a.EndpointID, []streams.Attempt{*a})
	l.mu.Unlock()
}

// run flushes every interval until ctx ends, then flushes what is left.
func (l *attemptLog) run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flushAll()
			return
		case <-t.C:
			l.flushAll()
		}
	}
}

func (l *attemptLog) flushAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.pending {
		l.flushLocked(id)
	}
}

// flushLocked publishes the endpoint's waiting successes and forgets the
// endpoint until its next one (an idle endpoint costs nothing here).
func (l *attemptLog) flushLocked(id string) {
	if as := l.pending[id]; len(as) > 0 {
		l.publishLocked(id, as)
	}
	delete(l.pending, id)
}

func (l *attemptLog) publishLocked(id string, as []streams.Attempt) {
	b, err := streams.MarshalAttempts(as)
	if err == nil {
		_, err = l.js.PublishAsync(streams.AttemptSubject(id), b)
	}
	if err != nil {
		l.log.Warn("attempt log", "endpoint", id, "attempts", len(as), "err", err)
	}
}
