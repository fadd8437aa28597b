package producer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// Bounds of the index writer's asynchronous publishes. A write that would
// wait longer for a slot is skipped rather than delay a publish.
const (
	indexMaxPending = 4096
	indexStallWait  = time.Millisecond
	// indexSettleWait bounds how long a lookup that found no index entry
	// waits for this process's own pending index writes before it says 404.
	indexSettleWait = 250 * time.Millisecond
)

// indexWriter writes an event's first entry in BucketEventIndex right after
// the event is stored, so that GET /v1/events/{id} finds the event before
// the fan-out ran. It publishes asynchronously (no round trip is added to a
// publish) and only if the key does not exist yet: the fan-out overwrites
// the entry with the endpoints list, and a late first entry must never
// clobber it. Its outcome is ignored: the fan-out writes the entry anyway.
//
// It uses its own JetStream context on the publisher's connection so that
// its pending acknowledgements neither count against nor wait on anybody
// else's asynchronous publishes, and so that stop can release them.
type indexWriter struct {
	js jetstream.JetStream

	mu      sync.RWMutex // held for reading while publishing, for writing by stop
	stopped bool
}

func newIndexWriter(js jetstream.JetStream) (*indexWriter, error) {
	nc := js.Conn()
	if nc == nil {
		return &indexWriter{stopped: true}, nil
	}
	ijs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(indexMaxPending))
	if err != nil {
		return nil, fmt.Errorf("index writer: %w", err)
	}
	return &indexWriter{js: ijs}, nil
}

// indexSubject is the KV subject of an event's index entry.
func indexSubject(eventID string) string {
	return "$KV." + streams.BucketEventIndex + "." + streams.IDToken(eventID)
}

func (w *indexWriter) write(eventID string, seq uint64) {
	b, err := streams.Marshal(&streams.EventIndex{EventID: eventID, Seq: seq})
	if err != nil {
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stopped {
		return
	}
	// The future is dropped: its channels are buffered and released when
	// the answer arrives or the connection reconnects or closes.
	_, _ = w.js.PublishAsync(indexSubject(eventID), b,
		jetstream.WithExpectLastSequencePerSubject(0),
		jetstream.WithRetryAttempts(0),
		jetstream.WithStallWait(indexStallWait))
}

func (w *indexWriter) stop(ctx context.Context) error {
	// Once stopped is set no write publishes again; waiting happens outside
	// the lock so that publishes never wait on Stop.
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.mu.Unlock()
	var err error
	if !w.js.Conn().IsClosed() {
		// A closed connection leaves pending writes unanswered for good.
		select {
		case <-w.js.PublishAsyncComplete():
		case <-ctx.Done():
			err = fmt.Errorf("producer stop: index writes still pending: %w", ctx.Err())
		}
	}
	w.js.CleanupPublisher()
	return err
}

// settle waits, at most indexSettleWait, for this process's pending index
// writes to be answered. The server stores a write asynchronously, so a
// lookup right after a 202 can overtake the entry written for it; settle
// reports whether such a write may have been pending, so that the lookup
// reads again.
func (w *indexWriter) settle(ctx context.Context) bool {
	w.mu.RLock()
	stopped := w.stopped
	w.mu.RUnlock()
	if stopped || w.js.PublishAsyncPending() == 0 {
		return false
	}
	t := time.NewTimer(indexSettleWait)
	defer t.Stop()
	select {
	case <-w.js.PublishAsyncComplete():
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}
