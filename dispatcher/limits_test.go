package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/dispatcher"
	"github.com/hookstream/hookstream/streams"
)

// An endpoint's concurrency holds across dispatchers: two processes
// together never have more than its limit in flight.
func TestConcurrencyLimitHoldsAcrossDispatchers(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	// A second dispatcher on the same streams.
	cfg := b.cfg
	cfg.JS = b.env.JS
	d2, err := dispatcher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d2.Stop(ctx)
	})
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return 200, nil
	})
	b.addEndpointWith("ep", r.srv.URL, func(ep *streams.Endpoint) { ep.Concurrency = 4 }, "*")
	waitFor(t, "both dispatchers to see each other", func() bool { return b.d.Members() == 2 && d2.Members() == 2 })
	for i := range 40 {
		b.publish(fmt.Sprintf("e%d", i), "a.b")
	}
	// Let requests pile up against the limit, then release them one by one.
	waitFor(t, "requests in flight", func() bool { return inflight.Load() >= 2 })
	for r.total() < 40 {
		select {
		case release <- struct{}{}:
		case <-time.After(20 * time.Second):
			t.Fatalf("stuck with %d delivered", r.total())
		}
	}
	close(release)
	if p := peak.Load(); p > 4 {
		t.Fatalf("%d deliveries in flight at once, over the endpoint's limit of 4", p)
	}
}

// With more dispatchers than the endpoint's concurrency, the limit is
// still exact: concurrency 1 among 3 dispatchers means one send at a time
// (the old per-process share of max(1, conc/n) sent 3 at once).
func TestConcurrencyOneAmongThreeDispatchers(t *testing.T) {
	t.Parallel()
	b := setup(t, fastConfig())
	var others []*dispatcher.Dispatcher
	for range 2 {
		cfg := b.cfg
		cfg.JS = b.env.JS
		d, err := dispatcher.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		others = append(others, d)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.Stop(ctx)
		})
	}
	var inflight, peak atomic.Int32
	r := newReceiver(t)
	r.setRespond(func(string, int) (int, http.Header) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// The endpoint's own work, so that sends would overlap if the
		// limit let them.
		time.Sleep(5 * time.Millisecond)
		return 200, nil
	})
	b.addEndpointWith("ep", r.srv.URL, func(ep *streams.Endpoint) { ep.Concurrency = 1 }, "a.*")
	waitFor(t, "three dispatchers to see each other", func() bool {
		return b.d.Members() == 3 && others[0].Members() == 3 && others[1].Members() == 3
	})
	const n = 60
	for i := range n {
		b.publish(fmt.Sprintf("e%02d", i), "a.b")
	}
	waitFor(t, "every event delivered", func() bool { return r.total() >= n })
	if p := peak.Load(); p != 1 {
		t.Fatalf("%d deliveries in flight at once, want exactly the endpoint's limit of 1", p)
	}
}
