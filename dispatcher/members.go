package dispatcher

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/streams"
)

// members counts the live dispatcher processes, so that each endpoint's
// concurrency and rate limit are shared out among them and hold across the
// whole deployment. Each process refreshes a key with a TTL; a process that
// dies drops out when its key expires.
type members struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	id  string
	ttl time.Duration

	mu   sync.Mutex
	live map[string]bool
}

const membersPrefix = "dispatcher."

func (m *members) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(1, len(m.live))
}

func (m *members) heartbeat(ctx context.Context) error {
	_, err := m.js.Publish(ctx, "$KV."+streams.BucketMembers+"."+membersPrefix+m.id, []byte(time.Now().UTC().Format(time.RFC3339)),
		jetstream.WithMsgTTL(m.ttl))
	return err
}

// run heartbeats and watches the other members until ctx ends; on the way
// out it removes its own key so the others take up its share at once.
func (m *members) run(ctx context.Context) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.kv.Purge(cctx, membersPrefix+m.id)
	}()
	_ = m.heartbeat(ctx)
	w, err := m.kv.Watch(ctx, membersPrefix+"*")
	if err != nil {
		return
	}
	defer w.Stop()
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = m.heartbeat(ctx)
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			id := strings.TrimPrefix(e.Key(), membersPrefix)
			m.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				m.live[id] = true
			} else {
				delete(m.live, id)
			}
			m.mu.Unlock()
		}
	}
}
