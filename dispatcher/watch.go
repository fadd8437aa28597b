package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// watchFunc opens a KV watch on keys (a pattern, ">" for every key). The
// catalog, the members and the slot allocator each keep one, so that a test
// can end a watch when it wants to.
type watchFunc func(ctx context.Context, kv jetstream.KeyValue, keys string) (jetstream.KeyWatcher, error)

func watchKeys(ctx context.Context, kv jetstream.KeyValue, keys string) (jetstream.KeyWatcher, error) {
	return kv.Watch(ctx, keys)
}

// A watch that ended is opened again after rewatchMin, doubling up to
// rewatchMax; one that had stayed up for rewatchHealthy starts again from
// rewatchMin.
const (
	rewatchMin     = 100 * time.Millisecond
	rewatchMax     = 5 * time.Second
	rewatchHealthy = 10 * time.Second
)

// errWatchEnded is a watch whose Updates channel closed. nats.go closes it
// when the ordered consumer behind the watch cannot be re-created (the
// bucket's stream was deleted, a JetStream API error it does not retry) or
// when the connection closes; it never opens it again by itself.
var errWatchEnded = errors.New("watch ended")

// rewatch keeps a watch up until ctx ends. session opens the watch, applies
// what it reports and calls up once the initial values are in; it returns
// when the watch ends or cannot be opened. While the watch is down, setErr
// gets an error naming it; once it is up again, nil.
func rewatch(ctx context.Context, log *slog.Logger, what string, setErr func(error), session func(ctx context.Context, up func()) error) {
	delay := rewatchMin
	for ctx.Err() == nil {
		var upAt time.Time
		err := session(ctx, func() {
			upAt = time.Now()
			setErr(nil)
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errWatchEnded
		}
		setErr(fmt.Errorf("%s watch down: %w", what, err))
		if !upAt.IsZero() && time.Since(upAt) >= rewatchHealthy {
			delay = rewatchMin
		}
		log.Warn("watch down; watching again", "watch", what, "err", err, "retry_in", delay)
		waitCtx(ctx, delay)
		delay = min(2*delay, rewatchMax)
	}
}

// bucketPoint is a bucket's stream as of a moment: when the stream was
// created (revisions start again from 1 when it is re-created) and its last
// revision.
type bucketPoint struct {
	created time.Time
	last    uint64
}

func bucketAt(ctx context.Context, kv jetstream.KeyValue) (bucketPoint, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return bucketPoint{}, err
	}
	kvs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return bucketPoint{}, nil
	}
	si := kvs.StreamInfo()
	return bucketPoint{created: si.Created, last: si.State.LastSeq}, nil
}
