package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func atomicBody(ids ...string) string {
	var evs []string
	for _, id := range ids {
		evs = append(evs, fmt.Sprintf(`{"id": %q, "type": "purchase_order.line", "ordering_key": "po-1", "data": {"id": %q}}`, id, id))
	}
	return `{"atomic": true, "events": [` + strings.Join(evs, ",") + `]}`
}

// An atomic batch is stored whole, contiguously and in its order, even
// with other publishes going on at the same time; sent again, every event
// answers duplicate and nothing is stored twice.
func TestPublishBatchAtomicContiguous(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var others atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.p.Publish(ctx, producer.Event{ID: fmt.Sprintf("other-%d", i), Type: "noise.made", Data: json.RawMessage(`{}`)}); err == nil {
				others.Add(1)
			}
		}
	}()
	streamstest.WaitFor(t, 10*time.Second, "concurrent publishes to start", func() bool { return others.Load() > 10 })
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("line-%02d", i)
	}
	r := b.postBatch(t, atomicBody(ids...))
	close(stop)
	wg.Wait()
	if r.code != http.StatusAccepted {
		t.Fatalf("POST atomic batch = %d %s", r.code, r.raw)
	}
	a := decodeBatch(t, r)
	if len(a.Results) != len(ids) {
		t.Fatalf("results = %s", r.raw)
	}
	// The Go API gives the sequences: read them back from EVENTS.
	res, err := b.p.PublishBatch(ctx, []producer.Event{{ID: ids[0], Type: "purchase_order.line", Data: json.RawMessage(`{}`)}}, producer.Atomic())
	if err != nil || !res[0].Duplicate {
		t.Fatalf("re-publish of one stored id = %+v, %v; want a duplicate", res, err)
	}
	first := res[0].Seq
	for i, id := range ids {
		ev, _, msgID := b.stored(t, first+uint64(i))
		if ev.ID != id || msgID != id || ev.OrderingKey != "po-1" {
			t.Fatalf("EVENTS seq %d = %q (msg id %q, key %q), want %q: the batch is not contiguous and in order", first+uint64(i), ev.ID, msgID, ev.OrderingKey, id)
		}
	}
	before := b.storedCount(t)
	a = decodeBatch(t, b.postBatch(t, atomicBody(ids...)))
	for _, res := range a.Results {
		if res.Duplicate == nil || !*res.Duplicate || res.Error != "" {
			t.Fatalf("re-sent atomic batch: %+v, want every event a duplicate", res)
		}
	}
	if n := b.storedCount(t); n != before {
		t.Fatalf("EVENTS holds %d after re-sending an atomic batch, want %d", n, before)
	}
}

// One invalid event, an id twice, an id stored by an earlier batch mixed
// with new ones, too many events or bytes: a 400 naming what is wrong, and
// nothing of the batch stored.
func TestPublishBatchAtomicRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if r := b.postBatch(t, atomicBody("old-1", "old-2")); r.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", r.code, r.raw)
	}
	many := make([]string, producer.MaxBatchEvents+1)
	for i := range many {
		many[i] = fmt.Sprintf("m%d", i)
	}
	for _, c := range []struct{ body, want string }{
		{`{"atomic": true, "events": [{"id": "n1", "type": "po.header", "data": {}}, {"id": "n2", "type": "po.line", "data": {}}, {"id": "n3", "type": "Bad Type", "data": {}}]}`, "events[2].type:"},
		{`{"atomic": true, "events": [{"id": "n1", "type": "po.header", "data": {}}, {"id": "n1", "type": "po.line", "data": {}}]}`, "events[1].id:"},
		{`{"atomic": true, "events": [{"id": "n1", "type": "po.header", "data": {}, "ordering_key": "` + strings.Repeat("k", 129) + `"}]}`, "events[0].ordering_key:"},
		{atomicBody("n1", "old-2", "n2"), "events[1].id:"},
		{strings.Replace(batchBody(many...), `{"events"`, `{"atomic": true, "events"`, 1), "over the batch limit"},
	} {
		r := b.postBatch(t, c.body)
		msg, _ := r.body["error"].(string)
		if r.code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("POST %.70s… = %d %q, want 400 containing %q", c.body, r.code, msg, c.want)
		}
	}
	if n := b.storedCount(t); n != 2 {
		t.Fatalf("EVENTS holds %d after refused atomic batches, want the 2 stored first", n)
	}
	small := setup(t, func(c *producer.Config) { c.MaxEventData = 2000; c.MaxBodyBytes = 4000; c.MaxBatchBodyBytes = 4 << 10 })
	big := json.RawMessage(`{"x": "` + strings.Repeat("y", 1000) + `"}`)
	evs := make([]producer.Event, 5)
	for i := range evs {
		evs[i] = producer.Event{Type: "po.line", Data: big}
	}
	_, err := small.p.PublishBatch(context.Background(), evs, producer.Atomic())
	if !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("atomic batch over the byte limit: %v, want ErrInvalidEvent naming the bytes", err)
	}
	if n := small.storedCount(t); n != 0 {
		t.Fatalf("EVENTS holds %d, want 0", n)
	}
}

// cutProxy forwards TCP connections to a NATS server and, once armed,
// cuts the connection after a number of bytes from the client: NATS gone
// in the middle of a batch.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Int64 // bytes still allowed from the client; <0: unarmed
	cuts   atomic.Int64
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: strings.TrimPrefix(target, "nats://")}
	p.armed.Store(-1)
	var conns sync.Map
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, s)
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
			go func() {
				defer p.wg.Done()
				defer s.Close()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if left := p.armed.Load(); left >= 0 {
							if int64(n) > left {
								// Forward what is allowed, then cut.
								_, _ = s.Write(buf[:left])
								p.armed.Store(-1)
								p.cuts.Add(1)
								return
							}
							p.armed.Add(-int64(n))
						}
						if _, err := s.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, v any) bool { k.(net.Conn).Close(); v.(net.Conn).Close(); return true })
		p.wg.Wait()
	})
	return p
}

// NATS gone half-way through an atomic batch: 503, and nothing of the
// batch is stored; sent again once NATS is back, it is stored whole.
func TestPublishBatchAtomicNATSGoneMidway(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	px := startCutProxy(t, env.URL)
	nc, err := nats.Connect("nats://"+px.ln.Addr().String(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b := setupOn(t, env, func(c *producer.Config) { c.JS = js })
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("cut-%03d", i)
	}
	var evs []string
	for _, id := range ids {
		evs = append(evs, fmt.Sprintf(`{"id": %q, "type": "po.line", "data": {"pad": %q}}`, id, strings.Repeat("p", 500)))
	}
	body := `{"atomic": true, "events": [` + strings.Join(evs, ",") + `]}`
	px.armed.Store(40 << 10) // about a third of the batch gets through
	r := b.postBatch(t, body)
	if px.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1", px.cuts.Load())
	}
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("POST atomic batch with NATS gone mid-way = %d %s, want 503", r.code, r.raw)
	}
	for _, res := range decodeBatch(t, r).Results {
		if res.Error == "" || res.Duplicate != nil {
			t.Fatalf("result %+v, want every event not stored", res)
		}
	}
	if n := b.storedCount(t); n != 0 {
		t.Fatalf("EVENTS holds %d after a cut atomic batch, want 0", n)
	}
	streamstest.WaitFor(t, 10*time.Second, "the producer to reconnect", nc.IsConnected)
	var again response
	streamstest.WaitFor(t, 20*time.Second, "the re-sent batch to be stored", func() bool {
		again = b.postBatch(t, body)
		return again.code == http.StatusAccepted
	})
	if n := b.storedCount(t); n != uint64(len(ids)) {
		t.Fatalf("EVENTS holds %d after the re-send, want %d", n, len(ids))
	}
}

// The ordering key is stored with the event and shown by GET /v1/events/{id}.
func TestOrderingKeyShownByGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if r := b.post(t, `{"id": "po-9-h", "type": "purchase_order.created", "ordering_key": "po-9", "data": {}}`); r.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", r.code, r.raw)
	}
	r := b.get(t, "po-9-h")
	if r.code != http.StatusOK || r.body["ordering_key"] != "po-9" {
		t.Fatalf("GET = %d %s, want the ordering key po-9", r.code, r.raw)
	}
	if r := b.post(t, `{"id": "plain", "type": "purchase_order.created", "data": {}}`); r.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", r.code, r.raw)
	}
	if r := b.get(t, "plain"); strings.Contains(string(r.raw), "ordering_key") {
		t.Fatalf("GET of an event without a key = %s", r.raw)
	}
}
