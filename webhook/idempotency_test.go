package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
	"github.com/hookstream/hookstream/webhook"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// clock is a settable clock.
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

// storeMaker makes a store remembering ids for remember, whose leases and
// memory run on clk where it can (a KV bucket's TTL runs on the server's
// wall clock).
type storeMaker func(t *testing.T, clk *clock, remember time.Duration) webhook.Store

var stores = map[string]storeMaker{
	"memory": func(t *testing.T, clk *clock, remember time.Duration) webhook.Store {
		return webhook.NewMemoryStoreClock(remember, clk.Now)
	},
	"nats kv": func(t *testing.T, clk *clock, remember time.Duration) webhook.Store {
		env := streamstest.Start(t, streamstest.WithoutEnsure())
		s, err := webhook.NewKVStore(context.Background(), env.JS, "receiver_ids", remember)
		if err != nil {
			t.Fatal(err)
		}
		webhook.SetKVStoreClock(s, clk.Now)
		return s
	},
}

// The conformance suite every Store passes.
func TestStores(t *testing.T) {
	t.Parallel()
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			s := mk(t, clk, time.Hour)
			claim := func(id string, want webhook.Claim) {
				t.Helper()
				got, err := s.Claim(ctx, id, time.Minute)
				if err != nil || got != want {
					t.Fatalf("Claim(%q) = %v, %v; want %v", id, got, err, want)
				}
			}
			claim("a", webhook.ClaimNew)
			claim("a", webhook.ClaimBusy)
			if err := s.Complete(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			claim("a", webhook.ClaimDone)
			// Release forgets a failed claim: the retry runs it.
			claim("b", webhook.ClaimNew)
			if err := s.Release(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			claim("b", webhook.ClaimNew)
			// A holder that crashed: its lease runs out and another takes it.
			clk.Add(2 * time.Minute)
			claim("b", webhook.ClaimNew)
			claim("b", webhook.ClaimBusy)
			// Releasing what was never claimed is no error.
			if err := s.Release(ctx, "never"); err != nil {
				t.Errorf("Release of an unknown id: %v", err)
			}
			// Any id, whatever its characters.
			claim("erp:po/1 ünïcode.*>", webhook.ClaimNew)
			claim("erp:po/1 ünïcode.*>", webhook.ClaimBusy)

			// Concurrent claims of one id: exactly one wins.
			var wins atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if c, err := s.Claim(ctx, "race", time.Minute); err == nil && c == webhook.ClaimNew {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := wins.Load(); n != 1 {
				t.Errorf("%d concurrent claims won, want 1", n)
			}
		})
	}
}

// The memory store forgets handled ids after its TTL, and sweeps them.
func TestMemoryStoreForgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := webhook.NewMemoryStoreClock(time.Hour, clk.Now)
	for i := range 2000 {
		id := fmt.Sprint("e", i)
		if c, _ := s.Claim(ctx, id, time.Minute); c != webhook.ClaimNew {
			t.Fatalf("claim %s: %v", id, c)
		}
		_ = s.Complete(ctx, id)
	}
	clk.Add(2 * time.Hour)
	if c, _ := s.Claim(ctx, "e1", time.Minute); c != webhook.ClaimNew {
		t.Errorf("after the TTL: %v, want new", c)
	}
	for i := range 1100 {
		_, _ = s.Claim(ctx, fmt.Sprint("f", i), time.Minute)
	}
	if n := s.Len(); n > 1200 {
		t.Errorf("%d ids kept after the sweep, want the expired ones gone", n)
	}
}

// Idempotent runs the handler once per webhook-id, answers a duplicate 200
// without running it, runs it again after a failure, and answers a
// concurrent duplicate 409 so that the sender retries.
func TestIdempotent(t *testing.T) {
	t.Parallel()
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Now()}
			var (
				runs    atomic.Int32
				fail    atomic.Bool
				release = make(chan struct{})
				entered = make(chan struct{}, 1)
			)
			h := webhook.Idempotent(mk(t, clk, time.Hour), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				if r.Header.Get("X-Block") != "" {
					entered <- struct{}{}
					<-release
				}
				if fail.Load() {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusAccepted)
			}))
			do := func(id string, block bool) int {
				req := httptest.NewRequest(http.MethodPost, "/hook", nil)
				if id != "" {
					req.Header.Set(webhook.HeaderID, id)
				}
				if block {
					req.Header.Set("X-Block", "1")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec.Code
			}
			if code := do("evt_1", false); code != http.StatusAccepted || runs.Load() != 1 {
				t.Fatalf("first: %d after %d runs", code, runs.Load())
			}
			if code := do("evt_1", false); code != http.StatusOK || runs.Load() != 1 {
				t.Errorf("duplicate: %d after %d runs, want 200 and no run", code, runs.Load())
			}
			fail.Store(true)
			if code := do("evt_2", false); code != http.StatusInternalServerError {
				t.Errorf("failing handler: %d", code)
			}
			fail.Store(false)
			if code := do("evt_2", false); code != http.StatusAccepted || runs.Load() != 3 {
				t.Errorf("retry after a failure: %d after %d runs, want it run again", code, runs.Load())
			}
			done := make(chan int)
			go func() { done <- do("evt_3", true) }()
			<-entered
			if code := do("evt_3", false); code != http.StatusConflict {
				t.Errorf("duplicate while the first runs: %d, want 409", code)
			}
			close(release)
			if code := <-done; code != http.StatusAccepted {
				t.Errorf("the first of two: %d", code)
			}
			if code := do("", false); code != http.StatusBadRequest {
				t.Errorf("without webhook-id: %d, want 400", code)
			}
		})
	}
}

// Once reports whether the handler ran, passes its error on, and forgets
// the claim when the handler panics.
func TestOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := webhook.NewMemoryStore(0)
	boom := errors.New("boom")
	if ran, err := webhook.Once(ctx, s, "x", 0, func(context.Context) error { return boom }); !ran || !errors.Is(err, boom) {
		t.Errorf("failing: %v %v", ran, err)
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = webhook.Once(ctx, s, "x", 0, func(context.Context) error { panic("handler bug") })
	}()
	if ran, err := webhook.Once(ctx, s, "x", 0, func(context.Context) error { return nil }); !ran || err != nil {
		t.Errorf("after a failure and a panic: %v %v, want it run", ran, err)
	}
	if ran, err := webhook.Once(ctx, s, "x", 0, func(context.Context) error { return nil }); ran || err != nil {
		t.Errorf("handled: %v %v, want not run", ran, err)
	}
	if _, err := webhook.Once(ctx, s, "", 0, func(context.Context) error { return nil }); err == nil {
		t.Error("no id: no error")
	}
}
