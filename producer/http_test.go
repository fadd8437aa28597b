package producer_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestPublishHTTPStoresEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.post(t, `{"id": "shop:order/42", "type": "order.created", "source": "shop", "time": "2024-05-01T10:00:00.5+02:00", "data": {"total": 99, "note": "<b>"}}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", r.code, r.raw)
	}
	if r.body["id"] != "shop:order/42" || r.body["duplicate"] != false {
		t.Fatalf("POST answer = %s, want id shop:order/42, duplicate false", r.raw)
	}
	if n := b.storedCount(t); n != 1 {
		t.Fatalf("EVENTS holds %d messages, want 1", n)
	}
	ev, subj, msgID := b.stored(t, 1)
	if subj != "events.shop.order.created" || msgID != "shop:order/42" {
		t.Fatalf("stored on %q with Nats-Msg-Id %q, want events.shop.order.created and the event id", subj, msgID)
	}
	if want := time.Date(2024, 5, 1, 8, 0, 0, 5e8, time.UTC); !ev.Time.Equal(want) {
		t.Fatalf("stored time %s, want %s", ev.Time, want)
	}
	if got := string(ev.Data); got != `{"total": 99, "note": "<b>"}` {
		t.Fatalf("stored data %q, want the published bytes", got)
	}
	if b.published(t, "stored") != 1 {
		t.Fatal(`published_total{result="stored"} != 1`)
	}
}

func TestPublishHTTPFillsDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.post(t, `{"type": "order.created", "data": {}}`)
	if r.code != http.StatusAccepted || r.body["id"] != "evt_test_1" {
		t.Fatalf("POST = %d %s, want 202 with the generated id evt_test_1", r.code, r.raw)
	}
	ev, subj, _ := b.stored(t, 1)
	if ev.ID != "evt_test_1" || ev.Source != streams.DefaultSource || !ev.Time.Equal(fixedNow) {
		t.Fatalf("stored %+v, want id evt_test_1, source default, time %s", ev, fixedNow)
	}
	if subj != "events.default.order.created" {
		t.Fatalf("stored on %q", subj)
	}
}

func TestPublishHTTPDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"id": "order-1", "type": "order.created", "data": {"n": 1}}`
	if r := b.post(t, body); r.code != http.StatusAccepted || r.body["duplicate"] != false {
		t.Fatalf("first POST = %d %s", r.code, r.raw)
	}
	// Same id, even with other content: the id is the idempotency key.
	r := b.post(t, `{"id": "order-1", "type": "order.created", "data": {"n": 2}}`)
	if r.code != http.StatusAccepted || r.body["duplicate"] != true || r.body["id"] != "order-1" {
		t.Fatalf("second POST = %d %s, want 202 duplicate true", r.code, r.raw)
	}
	if n := b.storedCount(t); n != 1 {
		t.Fatalf("EVENTS holds %d messages after a duplicate, want 1", n)
	}
	if ev, _, _ := b.stored(t, 1); string(ev.Data) != `{"n": 1}` {
		t.Fatalf("stored data %s, want the first publish's", ev.Data)
	}
	if b.published(t, "duplicate") != 1 || b.published(t, "stored") != 1 {
		t.Fatal("want one stored and one duplicate counted")
	}
}

func TestPublishHTTPRefusesBadInput(t *testing.T) {
	t.Parallel()
	// Small limits so that the over-limit cases stay small.
	b := setup(t, func(c *producer.Config) { c.MaxEventData = 64; c.MaxBodyBytes = 1024 })
	data70 := `{"k": "` + strings.Repeat("x", 61) + `"}` // 70 bytes
	for _, tc := range []struct {
		name, body string
		code       int
		prefix     string // the error must start with it
	}{
		{"empty body", ``, 400, "body: "},
		{"malformed", `{"type": "a",`, 400, "body: "},
		{"not an object", `["a"]`, 400, "body: "},
		{"trailing data", `{"type": "a", "data": {}} {}`, 400, "body: "},
		{"unknown field", `{"type": "a", "data": {}, "colour": "red"}`, 400, "colour: unknown field"},
		{"type not a string", `{"type": 5, "data": {}}`, 400, "type: must be a string"},
		{"type missing", `{"data": {}}`, 400, "type: required"},
		{"type upper case", `{"type": "Order.Created", "data": {}}`, 400, "type: "},
		{"type empty word", `{"type": "order..created", "data": {}}`, 400, "type: "},
		{"type too long", `{"type": "` + strings.Repeat("a", 129) + `", "data": {}}`, 400, "type: longer than 128"},
		{"data missing", `{"type": "a"}`, 400, "data: required"},
		{"data null", `{"type": "a", "data": null}`, 400, "data: must be a JSON object"},
		{"data array", `{"type": "a", "data": [1]}`, 400, "data: must be a JSON object"},
		{"data string", `{"type": "a", "data": "{}"}`, 400, "data: must be a JSON object"},
		{"source not a token", `{"type": "a", "source": "shop.eu", "data": {}}`, 400, "source: "},
		{"source not a string", `{"type": "a", "source": true, "data": {}}`, 400, "source: must be a string"},
		{"id with a space", `{"id": "a b", "type": "a", "data": {}}`, 400, "id: "},
		{"id too long", `{"id": "` + strings.Repeat("i", 257) + `", "type": "a", "data": {}}`, 400, "id: "},
		{"id not a string", `{"id": 7, "type": "a", "data": {}}`, 400, "id: must be a string"},
		{"time not RFC 3339", `{"type": "a", "time": "2024-05-01", "data": {}}`, 400, "time: must be an RFC 3339 time"},
		{"time empty", `{"type": "a", "time": "", "data": {}}`, 400, "time: "},
		{"time not a string", `{"type": "a", "time": 1714550400, "data": {}}`, 400, "time: must be a string"},
		{"data over the data limit", `{"type": "a", "data": ` + data70 + `}`, 413, "data: 70 bytes is over the event data limit of 64 bytes"},
		{"body over the body limit", `{"type": "a", "data": {"k": "` + strings.Repeat("x", 1100) + `"}}`, 413, "body: larger than the body limit of 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post(t, tc.body)
			if r.code != tc.code {
				t.Fatalf("POST %s = %d %s, want %d", tc.body, r.code, r.raw, tc.code)
			}
			msg, _ := r.body["error"].(string)
			if !strings.HasPrefix(msg, tc.prefix) {
				t.Fatalf("error = %q, want it to start with %q", msg, tc.prefix)
			}
		})
	}
	if n := b.storedCount(t); n != 0 {
		t.Fatalf("EVENTS holds %d messages after refused input, want 0", n)
	}
	if got := b.published(t, "invalid"); got != 24 {
		t.Fatalf(`published_total{result="invalid"} = %v, want 24`, got)
	}
}

// assertUnavailable posts an event and expects a 503 with a Retry-After.
func assertUnavailable(t *testing.T, b *testBundle, id string) {
	t.Helper()
	r := b.post(t, `{"id": "`+id+`", "type": "order.created", "data": {}}`)
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("POST = %d %s, want 503", r.code, r.raw)
	}
	if r.hdr.Get("Retry-After") == "" {
		t.Fatal("503 without a Retry-After")
	}
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "unavailable") {
		t.Fatalf("error = %q, want it to say the store is unavailable", msg)
	}
}

func TestPublishHTTPUnavailableWithoutStream(t *testing.T) {
	t.Parallel()
	// A server without EVENTS: nothing listens on events.>.
	b := setupOn(t, streamstest.Start(t, streamstest.WithoutEnsure()))
	assertUnavailable(t, b, "order-1")
	if got := b.published(t, "unavailable"); got != 1 {
		t.Fatalf(`published_total{result="unavailable"} = %v, want 1`, got)
	}
}

func TestPublishHTTPUnavailableWhenServerStopped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Stop(t) // the producer's connection is closed with it
	assertUnavailable(t, b, "order-1")
}

func TestPublishHTTPUnavailableWhileReconnecting(t *testing.T) {
	t.Parallel()
	env := streamstest.Start(t)
	nc, err := nats.Connect(env.URL, nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := setupOn(t, env, func(c *producer.Config) { c.JS = js })
	if r := b.post(t, `{"id": "before", "type": "order.created", "data": {}}`); r.code != http.StatusAccepted {
		t.Fatalf("POST before the outage = %d %s", r.code, r.raw)
	}
	env.Stop(t)
	streamstest.WaitFor(t, 10*time.Second, "the client to notice the outage", func() bool {
		return nc.Status() == nats.RECONNECTING
	})
	assertUnavailable(t, b, "during")
	// Refused at once, not after waiting out the request timeout on a
	// publish buffered for the reconnect.
	r := b.post(t, `{"id": "during", "type": "order.created", "data": {}}`)
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "RECONNECTING") {
		t.Fatalf("error = %q, want it to name the connection state", msg)
	}
}

func TestPublishHTTPUnavailableWhenStreamFull(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.env.JS.Stream(ctx, streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxMsgs = 1
	if _, err := b.env.JS.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if r := b.post(t, `{"id": "first", "type": "order.created", "data": {}}`); r.code != http.StatusAccepted {
		t.Fatalf("first POST = %d %s", r.code, r.raw)
	}
	assertUnavailable(t, b, "second")
	if n := b.storedCount(t); n != 1 {
		t.Fatalf("EVENTS holds %d messages, want 1: a full stream drops nothing and stores nothing", n)
	}
}
