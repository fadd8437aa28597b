package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ThroughputConfig is one end-to-end run at full speed.
type ThroughputConfig struct {
	// Publish publishes one call's events.
	Publish PublishFunc
	// Make makes event i.
	Make func(i int) Event
	// Events is how many events are published in all.
	Events int
	// Batch is how many events go in one Publish call (1: one at a time).
	Batch int
	// Concurrency is how many Publish calls are in flight at once.
	Concurrency int
	// Fanout is how many endpoints receive each event.
	Fanout int
	// Counter counts the receivers' webhooks; Throughput resets it.
	Counter *Counter
}

// ThroughputResult is what a run measured.
type ThroughputResult struct {
	// Deliveries is the webhooks received (Events × Fanout, and any
	// duplicates that arrived before the last).
	Deliveries int64
	// Published is how long the publishes took; Elapsed the time from the
	// first publish to the last webhook received.
	Published, Elapsed time.Duration
}

// PerSecond is the deliveries per second over the whole run.
func (r ThroughputResult) PerSecond() float64 {
	return Measured{Count: r.Deliveries, Elapsed: r.Elapsed}.PerSecond()
}

// Throughput publishes cfg.Events as fast as cfg.Concurrency publishers
// can and waits (bounded by ctx) until every endpoint received every event.
func Throughput(ctx context.Context, cfg ThroughputConfig) (ThroughputResult, error) {
	cfg.Batch, cfg.Concurrency, cfg.Fanout = max(cfg.Batch, 1), max(cfg.Concurrency, 1), max(cfg.Fanout, 1)
	cfg.Counter.Reset()
	want := int64(cfg.Events) * int64(cfg.Fanout)
	all := cfg.Counter.Expect(want)
	calls := (cfg.Events + cfg.Batch - 1) / cfg.Batch
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, cfg.Concurrency)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for w := range cfg.Concurrency {
		wg.Go(func() {
			evs := make([]Event, 0, cfg.Batch)
			for {
				c := int(next.Add(1)) - 1
				if c >= calls || pctx.Err() != nil {
					return
				}
				evs = evs[:0]
				for i := c * cfg.Batch; i < min((c+1)*cfg.Batch, cfg.Events); i++ {
					evs = append(evs, cfg.Make(i))
				}
				if err := cfg.Publish(pctx, evs); err != nil {
					errs[w] = err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	res := ThroughputResult{Published: time.Since(start)}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	err := wait(ctx, all)
	res.Elapsed, res.Deliveries = time.Since(start), cfg.Counter.Count()
	if err != nil {
		return res, fmt.Errorf("%d of %d webhooks received: %w", res.Deliveries, want, err)
	}
	return res, nil
}

// LatencyConfig is one run at a fixed publish rate.
type LatencyConfig struct {
	// Publish publishes one event at a time.
	Publish PublishFunc
	// Make makes event i, with sent as its publish time.
	Make func(i int, sent time.Time) Event
	// Rate is events per second; Events how many in all.
	Rate, Events int
	// Workers is how many publishes may be in flight; an event whose turn
	// comes while all are busy waits, and its latency counts the wait.
	Workers int
	// Fanout is how many endpoints receive each event.
	Fanout int
	// Counter counts the receivers' webhooks; Latency resets it.
	Counter *Counter
}

// LatencyResult is what a fixed-rate run measured, from each event's
// scheduled publish time to its receipt at each endpoint.
type LatencyResult struct {
	Deliveries    int64
	Rate          float64 // events per second actually published
	P50, P99, Max time.Duration
	Elapsed       time.Duration
	PublishedLate int // events whose publish started over 1 ms after their turn
}

// Latency publishes cfg.Events at cfg.Rate (open loop: event i is due at
// start + i/rate whatever the publishes before it cost) and measures each
// delivery's latency from when its event was due, so that a stalled
// pipeline shows as latency rather than as a lower rate.
func Latency(ctx context.Context, cfg LatencyConfig) (LatencyResult, error) {
	cfg.Workers, cfg.Fanout = max(cfg.Workers, 1), max(cfg.Fanout, 1)
	cfg.Counter.Reset()
	want := int64(cfg.Events) * int64(cfg.Fanout)
	cfg.Counter.Record(int(want))
	all := cfg.Counter.Expect(want)
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, cfg.Events)
	var wg sync.WaitGroup
	var late atomic.Int64
	errs := make([]error, cfg.Workers)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range cfg.Workers {
		wg.Go(func() {
			evs := make([]Event, 1)
			for j := range jobs {
				if pctx.Err() != nil {
					continue
				}
				if time.Since(j.due) > time.Millisecond {
					late.Add(1)
				}
				evs[0] = cfg.Make(j.i, j.due)
				if err := cfg.Publish(pctx, evs); err != nil && errs[w] == nil {
					errs[w] = err
					cancel()
				}
			}
		})
	}
	interval := time.Second / time.Duration(max(cfg.Rate, 1))
	start := time.Now()
	for i := 0; i < cfg.Events && pctx.Err() == nil; {
		now := time.Now()
		// Every event due by now goes at once; the sleep until the next
		// is pacing, not waiting for anything.
		for ; i < cfg.Events; i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) {
				time.Sleep(due.Sub(now))
				break
			}
			jobs <- job{i: i, due: due}
		}
	}
	close(jobs)
	wg.Wait()
	published := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return LatencyResult{}, fmt.Errorf("publish: %w", err)
	}
	err := wait(ctx, all)
	res := LatencyResult{Deliveries: cfg.Counter.Count(), Rate: float64(cfg.Events) / published.Seconds(), Elapsed: time.Since(start), PublishedLate: int(late.Load())}
	if err != nil {
		return res, fmt.Errorf("%d of %d webhooks received: %w", res.Deliveries, want, err)
	}
	lat := cfg.Counter.Latencies()
	if len(lat) == 0 {
		return res, errors.New("no latency recorded: the webhook bodies carry no send time")
	}
	slices.Sort(lat)
	res.P50, res.P99, res.Max = Percentile(lat, 50), Percentile(lat, 99), lat[len(lat)-1]
	return res, nil
}

// Percentile returns the p-th percentile of sorted (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}
