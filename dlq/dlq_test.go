package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// t0 is the tests' "now".
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	env   *streamstest.Env
	svc   *Service
	clock *clock
	url   string
	ctx   context.Context
}

// setup starts a JetStream server and a Service on it (not started), with
// its routes behind an HTTP test server.
func setup(t *testing.T, mods ...func(*Config)) *testBundle {
	t.Helper()
	b := &testBundle{env: streamstest.Start(t), clock: &clock{now: t0}, ctx: context.Background()}
	b.svc = b.newService(t, mods...)
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: b.svc.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	b.url = hs.URL
	return b
}

// newService makes another Service on the same server (another process, as
// far as jobs are concerned), stopped at the end of the test.
func (b *testBundle) newService(t *testing.T, mods ...func(*Config)) *Service {
	t.Helper()
	cfg := Config{JS: b.env.JS, Now: b.clock.Now, PollInterval: 10 * time.Millisecond}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := New(b.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return svc
}

func (b *testBundle) kv(t *testing.T, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := b.env.JS.KeyValue(b.ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// addEndpoint stores an endpoint's configuration.
func (b *testBundle) addEndpoint(t *testing.T, id string, deleted bool) {
	t.Helper()
	ep := &streams.Endpoint{ID: id, URL: "https://example.com/" + id, EventTypes: []string{"*"}, CreatedAt: t0, Deleted: deleted}
	if _, err := streams.Put(b.ctx, b.kv(t, streams.BucketEndpoints), id, ep); err != nil {
		t.Fatal(err)
	}
}

// rec describes a dead letter to write.
type rec struct {
	endpoint, event, typ, reason string
	deadAt                       time.Time
	generation                   int
	// state, when not "dead", is written after the record; noState leaves
	// the state key out (a dispatcher that crashed in between).
	state   string
	noState bool
}

// addRecord writes a dead letter the way the dispatcher does: the record on
// dlq.<endpoint> with Nats-Msg-Id = its id, then its state with the DLQ
// sequence.
func (b *testBundle) addRecord(t *testing.T, r rec) (*streams.DeadLetter, uint64) {
	t.Helper()
	if r.typ == "" {
		r.typ = "order.created"
	}
	if r.reason == "" {
		r.reason = streams.ReasonExpired
	}
	if r.deadAt.IsZero() {
		r.deadAt = t0
	}
	first := r.deadAt.Add(-24 * time.Hour)
	dl := &streams.DeadLetter{
		ID: streams.DeadLetterID(streams.DeliveryMsgID(r.event, r.endpoint, r.generation)),
		Event: streams.Event{
			ID: r.event, Type: r.typ, Source: "shop", Time: first.Add(-time.Second),
			Data: []byte(`{"order":"` + r.event + `","total":12.5}`),
		},
		EndpointID: r.endpoint,
		URL:        "https://example.com/" + r.endpoint,
		Generation: r.generation,
		Reason:     r.reason,
		Attempts: []streams.Attempt{
			{EventID: r.event, EndpointID: r.endpoint, Attempt: 1, Time: first, Duration: 1500 * time.Millisecond, StatusCode: 500, ResponseBody: "boom"},
			{EventID: r.event, EndpointID: r.endpoint, Attempt: 2, Time: r.deadAt, Duration: 10 * time.Second, Error: "context deadline exceeded"},
		},
		AttemptCount: 2,
		FirstAttempt: first,
		LastAttempt:  r.deadAt,
		DeadAt:       r.deadAt,
	}
	data, err := streams.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := b.env.JS.Publish(b.ctx, streams.DLQSubject(r.endpoint), data, jetstream.WithMsgID(dl.ID))
	if err != nil {
		t.Fatal(err)
	}
	if r.noState {
		return dl, ack.Sequence
	}
	st := &streams.DLQState{
		ID: dl.ID, State: streams.DLQStateDead, Seq: ack.Sequence, EndpointID: r.endpoint,
		EventID: r.event, EventType: r.typ, Reason: r.reason, DeadAt: r.deadAt,
	}
	if r.state != "" {
		st.State = r.state
	}
	if _, err := streams.Put(b.ctx, b.kv(t, streams.BucketDLQState), dl.ID, st); err != nil {
		t.Fatal(err)
	}
	return dl, ack.Sequence
}

// dlqState reads a record's state from the bucket.
func (b *testBundle) dlqState(t *testing.T, id string) *streams.DLQState {
	t.Helper()
	st, _, found, err := streams.Get[streams.DLQState](b.ctx, b.kv(t, streams.BucketDLQState), id)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return nil
	}
	return st
}

// delivery is one message in DELIVERIES.
type delivery struct {
	streams.Delivery
	msgID string
}

// deliveries returns every message on deliveries.<endpoint>, in order.
func (b *testBundle) deliveries(t *testing.T, endpoint string) []delivery {
	t.Helper()
	s, err := b.env.JS.Stream(b.ctx, streams.StreamDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	var out []delivery
	for seq := uint64(1); ; {
		msg, err := s.GetMsg(b.ctx, seq, jetstream.WithGetMsgSubject(streams.DeliverySubject(endpoint)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var d delivery
		if err := streams.Unmarshal(msg.Data, &d.Delivery); err != nil {
			t.Fatal(err)
		}
		d.msgID = msg.Header.Get(jetstream.MsgIDHeader)
		out = append(out, d)
		seq = msg.Sequence + 1
	}
}

// do sends an HTTP request (body marshalled as JSON unless it is a string)
// and returns the status and body.
func (b *testBundle) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(v)
	default:
		p, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(p)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, p
}

// doJSON is do that expects status want and decodes the answer into out.
func (b *testBundle) doJSON(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	code, p := b.do(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, code, p, want)
	}
	if out != nil {
		if err := json.Unmarshal(p, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, p, err)
		}
	}
}

// errorOf decodes an {"error": …} body.
func errorOf(t *testing.T, p []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(p, &e); err != nil || e.Error == "" {
		t.Fatalf("body %s is not {\"error\": …}", p)
	}
	return e.Error
}

func ids(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func eventIDs(recs []Record) string {
	s := ""
	for _, r := range recs {
		s += r.Event.ID + " "
	}
	return s
}

func fmtSeq(n uint64) string { return fmt.Sprint(n) }

func mustMarshal(t *testing.T, d *streams.Delivery) []byte {
	t.Helper()
	b, err := streams.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
