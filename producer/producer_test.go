package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/producer"
	"github.com/hookstream/hookstream/streams"
)

func TestPublishStoresAndDeduplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cest := time.FixedZone("CEST", 2*3600)
	ev := producer.Event{ID: "order:1", Type: "order.created", Source: "shop", Time: time.Date(2024, 5, 1, 10, 0, 0, 0, cest), Data: json.RawMessage(`{"n":1}`)}
	res, err := b.p.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if res != (producer.Result{ID: "order:1", Seq: 1}) {
		t.Fatalf("first publish = %+v", res)
	}
	stored, _, _ := b.stored(t, 1)
	if !stored.Time.Equal(ev.Time) || stored.Source != "shop" || string(stored.Data) != `{"n":1}` {
		t.Fatalf("stored %+v", stored)
	}
	again, err := b.p.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if again != (producer.Result{ID: "order:1", Seq: 1, Duplicate: true}) {
		t.Fatalf("re-publish = %+v, want a duplicate of seq 1", again)
	}
	if n := b.storedCount(t); n != 1 {
		t.Fatalf("EVENTS holds %d messages, want 1", n)
	}
}

func TestPublishGeneratesIDs(t *testing.T) {
	t.Parallel()
	// The default generator, not the test one.
	b := setup(t, func(c *producer.Config) { c.NewID = nil })
	idRE := regexp.MustCompile(`^evt_[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for range 3 {
		res, err := b.p.Publish(context.Background(), producer.Event{Type: "order.created", Data: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if !idRE.MatchString(res.ID) || seen[res.ID] || res.Duplicate {
			t.Fatalf("generated id %q: want a fresh evt_ + 26 lower-case base32 characters", res.ID)
		}
		seen[res.ID] = true
	}
	ev, _, _ := b.stored(t, 1)
	if ev.Source != streams.DefaultSource || !ev.Time.Equal(fixedNow) {
		t.Fatalf("stored %+v, want source default and time now", ev)
	}
}

func TestPublishValidates(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *producer.Config) { c.MaxEventData = 16 })
	ok := producer.Event{ID: "a", Type: "order.created", Data: json.RawMessage(`{}`)}
	for _, tc := range []struct {
		name   string
		change func(*producer.Event)
		prefix string
	}{
		{"no type", func(e *producer.Event) { e.Type = "" }, "type: required"},
		{"bad type", func(e *producer.Event) { e.Type = "Order" }, "type: "},
		{"type too long", func(e *producer.Event) { e.Type = strings.Repeat("a", 129) }, "type: longer than 128"},
		{"bad source", func(e *producer.Event) { e.Source = "a b" }, "source: "},
		{"bad id", func(e *producer.Event) { e.ID = "a\nb" }, "id: "},
		{"no data", func(e *producer.Event) { e.Data = nil }, "data: required"},
		{"data not an object", func(e *producer.Event) { e.Data = json.RawMessage(`[1]`) }, "data: must be a JSON object"},
		{"data not JSON", func(e *producer.Event) { e.Data = json.RawMessage(`{"a":`) }, "data: must be a JSON object"},
		{"data over the limit", func(e *producer.Event) { e.Data = json.RawMessage(`{"a":"0123456789"}`) }, "data: 18 bytes is over the limit of 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := ok
			tc.change(&ev)
			_, err := b.p.Publish(context.Background(), ev)
			if !errors.Is(err, streams.ErrInvalidEvent) {
				t.Fatalf("Publish = %v, want an invalid event", err)
			}
			if !strings.HasPrefix(err.Error(), tc.prefix) {
				t.Fatalf("error = %q, want it to start with %q", err, tc.prefix)
			}
		})
	}
	if n := b.storedCount(t); n != 0 {
		t.Fatalf("EVENTS holds %d messages, want 0", n)
	}
	if got := b.published(t, "invalid"); got != 9 {
		t.Fatalf(`published_total{result="invalid"} = %v, want 9`, got)
	}
}

func TestPublishUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.Stop(t)
	_, err := b.p.Publish(context.Background(), producer.Event{Type: "order.created", Data: json.RawMessage(`{}`)})
	if !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Publish with NATS down = %v, want ErrUnavailable", err)
	}
	if got := b.published(t, "unavailable"); got != 1 {
		t.Fatalf(`published_total{result="unavailable"} = %v, want 1`, got)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name string
		cfg  producer.Config
		want string
	}{
		{"no JetStream", producer.Config{}, "js: required"},
		{"negative data limit", producer.Config{JS: b.env.JS, MaxEventData: -1}, "max-event-data: "},
		{"data limit too large", producer.Config{JS: b.env.JS, MaxEventData: 65 << 20}, "max-event-data: "},
		{"body smaller than data", producer.Config{JS: b.env.JS, MaxEventData: 1000, MaxBodyBytes: 999}, "max-body-bytes: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := producer.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := producer.Config{}.WithDefaults()
	if c.MaxEventData != 1<<20 || c.MaxBodyBytes != 1<<20+64<<10 || c.Now == nil || c.NewID == nil || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	if c := (producer.Config{MaxEventData: 100}).WithDefaults(); c.MaxBodyBytes != 100+producer.BodyOverheadDefault {
		t.Fatalf("MaxBodyBytes = %d, want MaxEventData + 64 KiB", c.MaxBodyBytes)
	}
}

func TestMetricsShareARegistry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A second producer on the same registry counts into the same series.
	p2, err := producer.New(producer.Config{JS: b.env.JS, Metrics: b.reg})
	if err != nil {
		t.Fatalf("second producer on one registry: %v", err)
	}
	t.Cleanup(func() { _ = p2.Stop(context.Background()) })
	ev := producer.Event{Type: "order.created", Data: json.RawMessage(`{}`)}
	for _, p := range []*producer.Producer{b.p, p2} {
		if _, err := p.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.published(t, "stored"); got != 2 {
		t.Fatalf(`published_total{result="stored"} = %v, want 2`, got)
	}
	// A clashing collector of the same name is an error, not a panic.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookstream_events_published_total", Help: "clash"}))
	if _, err := producer.New(producer.Config{JS: b.env.JS, Metrics: reg}); err == nil {
		t.Fatal("New with a clashing metric registered: want an error")
	}
}

func TestStopIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Before any publish, and twice.
	for range 2 {
		if err := b.p.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
