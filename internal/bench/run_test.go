package bench_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/bench"
	"github.com/hookstream/hookstream/webhook"
)

// direct is a pipeline of nothing: a PublishFunc that POSTs each event's
// webhook body straight to every receiver, so the runs' machinery is tested
// without NATS.
func direct(t *testing.T, rs *bench.Receivers) bench.PublishFunc {
	tr := bench.NewTransport(8)
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	return func(ctx context.Context, evs []bench.Event) error {
		for _, ev := range evs {
			for _, r := range rs.List {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(bench.WebhookBody(ev, "default", time.Now())))
				if err != nil {
					return err
				}
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return fmt.Errorf("receiver answered %d", resp.StatusCode)
				}
			}
		}
		return nil
	}
}

func receivers(t *testing.T, n int) *bench.Receivers {
	t.Helper()
	rs, err := bench.NewReceivers("127.0.0.1:0", n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	return rs
}

func TestThroughputCountsEveryDelivery(t *testing.T) {
	t.Parallel()
	rs := receivers(t, 3)
	m := bench.EventMaker{Prefix: "t", Type: "bench.t", Size: 64}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Throughput(ctx, bench.ThroughputConfig{
		Publish: direct(t, rs), Make: m.Make, Events: 250, Batch: 7, Concurrency: 4, Fanout: 3, Counter: rs.Counter,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deliveries != 750 || res.PerSecond() <= 0 || res.Elapsed < res.Published {
		t.Errorf("result %+v, %.0f/s: want 750 deliveries", res, res.PerSecond())
	}
}

func TestThroughputStopsOnAPublishError(t *testing.T) {
	t.Parallel()
	rs := receivers(t, 1)
	m := bench.EventMaker{Prefix: "t", Type: "bench.t", Size: 64}
	refuse := errors.New("refused")
	_, err := bench.Throughput(context.Background(), bench.ThroughputConfig{
		Publish: func(context.Context, []bench.Event) error { return refuse }, Make: m.Make, Events: 10, Concurrency: 2, Counter: rs.Counter,
	})
	if !errors.Is(err, refuse) {
		t.Errorf("error %v, want %v", err, refuse)
	}
}

func TestThroughputGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	rs := receivers(t, 1)
	m := bench.EventMaker{Prefix: "t", Type: "bench.t", Size: 64}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// Publishes that never reach the receiver: the run waits for its
	// deliveries until its context ends.
	_, err := bench.Throughput(ctx, bench.ThroughputConfig{
		Publish: func(context.Context, []bench.Event) error { return nil }, Make: m.Make, Events: 10, Counter: rs.Counter,
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "0 of 10") {
		t.Errorf("error %v, want the deadline after 0 of 10", err)
	}
}

func TestLatencyAtAFixedRate(t *testing.T) {
	t.Parallel()
	rs := receivers(t, 2)
	m := bench.EventMaker{Prefix: "l", Type: "bench.l", Size: 64}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Latency(ctx, bench.LatencyConfig{
		Publish: direct(t, rs), Make: m.MakeAt, Rate: 400, Events: 100, Workers: 8, Fanout: 2, Counter: rs.Counter,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 100 events at 400/s take about a quarter of a second: the rate is
	// paced, not what the machine can do (loose bounds: shared machines).
	if res.Deliveries != 200 || res.Rate > 800 || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("result %+v", res)
	}
}

func TestHTTPFloorSignsAsTheDispatcher(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	body := bench.WebhookBody(bench.Event{ID: "f", Type: "bench.f", Data: bench.EventData(time.Now(), 64)}, "default", time.Now())
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if webhook.VerifyRequest(r.Header, got, time.Now(), webhook.DefaultTolerance, key) != nil || !bytes.Equal(got, body) {
			bad.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	m, err := bench.HTTPFloor(context.Background(), srv.URL, body, "f", key, 4, 100)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count != 100 || m.PerSecond() <= 0 || bad.Load() != 0 {
		t.Errorf("floor %+v, %d requests unverified", m, bad.Load())
	}
}

func TestReceiverStatus(t *testing.T) {
	t.Parallel()
	rs := receivers(t, 1)
	rs.SetStatus(http.StatusServiceUnavailable)
	resp, err := http.Post(rs.List[0].URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || rs.Counter.Count() != 1 {
		t.Errorf("status %d, %d counted", resp.StatusCode, rs.Counter.Count())
	}
}
