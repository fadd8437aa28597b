package dispatcher_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

func TestMain(m *testing.M) {
	streamstest.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// bundle is one test's world: a JetStream, a dispatcher and helpers.
type bundle struct {
	t   *testing.T
	env *streamstest.Env
	cfg dispatcher.Config
	d   *dispatcher.Dispatcher

	mu       sync.Mutex
	outcomes []dispatcher.Outcome
}

// fastConfig scales the 30 s … 24 h schedule down to milliseconds.
func fastConfig() dispatcher.Config {
	return dispatcher.Config{
		DeliveryTimeout:  500 * time.Millisecond,
		AckWait:          2 * time.Second,
		RetryInitial:     20 * time.Millisecond,
		RetryMaxInterval: 200 * time.Millisecond,
		RetryMaxAge:      10 * time.Second,
		RetryMinDelay:    5 * time.Millisecond,
		Jitter:           -1,
		FailingAfter:     5,
		PullWait:         500 * time.Millisecond,
		MemberTTL:        2 * time.Second,
		AllowPrivate:     true,
	}
}

func setup(t *testing.T, cfg dispatcher.Config) *bundle {
	t.Helper()
	env := streamstest.Start(t, streamstest.WithConfig(streams.Config{RetryMaxAge: cfg.RetryMaxAge, DeliveriesMargin: time.Minute}))
	b := &bundle{t: t, env: env, cfg: cfg}
	b.start()
	return b
}

func (b *bundle) start() {
	b.t.Helper()
	cfg := b.cfg
	cfg.JS = b.env.JS
	cfg.Observer = func(o dispatcher.Outcome) {
		b.mu.Lock()
		b.outcomes = append(b.outcomes, o)
		b.mu.Unlock()
	}
	d, err := dispatcher.New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		b.t.Fatal(err)
	}
	b.d = d
	b.t.Cleanup(func() { b.stop() })
}

func (b *bundle) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.d.Stop(ctx); err != nil {
		b.t.Errorf("stop: %v", err)
	}
}

func (b *bundle) outcomesFor(eventID string) []dispatcher.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []dispatcher.Outcome
	for _, o := range b.outcomes {
		if o.EventID == eventID {
			out = append(out, o)
		}
	}
	return out
}

func (b *bundle) kv(name string) jetstream.KeyValue {
	b.t.Helper()
	kv, err := b.env.JS.KeyValue(context.Background(), name)
	if err != nil {
		b.t.Fatal(err)
	}
	return kv
}

// addEndpoint registers an endpoint the way the endpoints API does.
func (b *bundle) addEndpoint(id, url string, types ...string) string {
	return b.addEndpointWith(id, url, nil, types...)
}

// addEndpointWith registers an endpoint after edit changed its settings.
func (b *bundle) addEndpointWith(id, url string, edit func(*streams.Endpoint), types ...string) string {
	b.t.Helper()
	secret, err := webhook.GenerateSecret()
	if err != nil {
		b.t.Fatal(err)
	}
	now := time.Now().UTC()
	ctx := context.Background()
	if _, err := streams.Put(ctx, b.kv(streams.BucketHealth), id, streams.NewHealth(id, now)); err != nil {
		b.t.Fatal(err)
	}
	ep := &streams.Endpoint{ID: id, URL: url, EventTypes: types, Secrets: []streams.Secret{{Key: secret, CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	if edit != nil {
		edit(ep)
	}
	if _, err := streams.Put(ctx, b.kv(streams.BucketEndpoints), id, ep); err != nil {
		b.t.Fatal(err)
	}
	return secret
}

func (b *bundle) publish(id, typ string) {
	b.t.Helper()
	ev := &streams.Event{ID: id, Type: typ, Source: "test", Time: time.Now().UTC(), Data: []byte(`{"n":1}`)}
	if _, err := streams.PublishEvent(context.Background(), b.env.JS, ev); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bundle) health(id string) *streams.Health {
	b.t.Helper()
	h, _, _, err := streams.Get[streams.Health](context.Background(), b.kv(streams.BucketHealth), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return h
}

func (b *bundle) setEnabled(id string, enabled bool) {
	b.t.Helper()
	_, _, err := streams.Update(context.Background(), b.kv(streams.BucketHealth), id, func(h *streams.Health) (*streams.Health, error) {
		if enabled {
			h.Transition(streams.StatusHealthy, "enabled by operator", time.Now().UTC())
		} else {
			h.Transition(streams.StatusDisabled, "disabled by operator", time.Now().UTC())
		}
		return h, nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// deadLetters reads every record in the DLQ stream for an endpoint.
func (b *bundle) deadLetters(endpointID string) []streams.DeadLetter {
	b.t.Helper()
	return readAll[streams.DeadLetter](b.t, b.env.JS, streams.StreamDLQ, streams.DLQSubject(endpointID))
}

// events reads every event of one type from EVENTS.
func (b *bundle) events(typ string) []streams.Event {
	b.t.Helper()
	return readAll[streams.Event](b.t, b.env.JS, streams.StreamEvents, streams.EventSubject(streams.OwnSource, typ))
}

func readAll[T any, PT interface {
	*T
	streams.Versioned
}](t *testing.T, js jetstream.JetStream, stream, subject string) []T {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return out
		}
		var v T
		if err := streams.Unmarshal(raw.Data, PT(&v)); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		seq = raw.Sequence + 1
	}
}

// receiver is a webhook endpoint under the test's control.
type receiver struct {
	srv     *httptest.Server
	secret  string
	respond atomic.Value // func(id string, n int) (int, http.Header)

	mu     sync.Mutex
	got    map[string]int
	bad    int
	bodies map[string]map[string]any
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}, bodies: map[string]map[string]any{}}
	r.setRespond(func(string, int) (int, http.Header) { return 200, nil })
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setRespond(fn func(id string, n int) (int, http.Header)) { r.respond.Store(fn) }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	r.got[id]++
	n := r.got[id]
	if r.secret != "" {
		key, _ := webhook.ParseSecret(r.secret)
		if err := webhook.VerifyRequest(req.Header, body, time.Now(), webhook.DefaultTolerance, key); err != nil {
			r.bad++
		}
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	r.bodies[id] = m
	r.mu.Unlock()
	code, h := r.respond.Load().(func(string, int) (int, http.Header))(id, n)
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.got {
		n += c
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	streamstest.WaitFor(t, 20*time.Second, what, cond)
}

func dispatcherRetryDelay(n int, r float64) time.Duration {
	return dispatcher.RetryDelay(30*time.Second, 4*time.Hour, 0.2, n, r)
}
