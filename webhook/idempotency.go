package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Receiving side: hookstream delivers at least once, so a receiver sees the
// same webhook-id again after a retry, a replay or a catch-up. Idempotent
// (HTTP) and Once (anything else) run a handler once per id, with a Store
// that remembers the ids handled: MemoryStore in one process, KVStore
// across processes on NATS JetStream.

// Claim is what a Store answers to a claim of an id.
type Claim int

// Claims.
const (
	// ClaimNew: nobody handled the id, and the caller now holds it for
	// its lease: handle it, then Complete or Release it.
	ClaimNew Claim = iota
	// ClaimBusy: another holder is handling it now and its lease runs.
	ClaimBusy
	// ClaimDone: it was handled.
	ClaimDone
)

func (c Claim) String() string {
	switch c {
	case ClaimNew:
		return "new"
	case ClaimBusy:
		return "busy"
	case ClaimDone:
		return "done"
	}
	return "Claim(" + strconv.Itoa(int(c)) + ")"
}

// Store remembers which webhook ids were handled. Every implementation
// passes the same conformance tests (idempotency_test.go).
type Store interface {
	// Claim starts handling id for at most lease: ClaimNew when nobody
	// handled it or a previous holder's lease ran out, ClaimBusy when a
	// holder's lease runs, ClaimDone when it was handled.
	Claim(ctx context.Context, id string, lease time.Duration) (Claim, error)
	// Complete marks id handled, remembered for the store's TTL.
	Complete(ctx context.Context, id string) error
	// Release forgets a claim whose handling failed, so that the next
	// delivery of id runs the handler again.
	Release(ctx context.Context, id string) error
}

// Defaults of the idempotency helpers.
const (
	// LeaseDefault is how long a claim holds an id while its handler runs:
	// a handler that crashed leaves it claimed this long. Above hookstream's
	// delivery timeout (10s), so that a retry never runs a handler still
	// running.
	LeaseDefault = time.Minute
	// RememberDefault is how long a handled id is remembered: past
	// hookstream's retry window (24h) with room for a replay of a dead
	// letter a day later.
	RememberDefault = 72 * time.Hour
)

// ErrBusy is Once's error when another holder is handling the id now.
var ErrBusy = errors.New("webhook: this webhook-id is being handled by another request")

// Once runs handle unless id was handled: it claims id in store, runs
// handle, and marks id handled when handle returns nil or forgets the claim
// when it fails (the next delivery runs it again). ran reports whether
// handle ran; an id being handled elsewhere is ErrBusy (answer a retryable
// failure then: the other may still fail).
func Once(ctx context.Context, store Store, id string, lease time.Duration, handle func(context.Context) error) (ran bool, err error) {
	if id == "" {
		return false, errors.New("webhook: no webhook-id to de-duplicate on")
	}
	if lease <= 0 {
		lease = LeaseDefault
	}
	c, err := store.Claim(ctx, id, lease)
	if err != nil {
		return false, fmt.Errorf("webhook: claim %q: %w", id, err)
	}
	switch c {
	case ClaimDone:
		return false, nil
	case ClaimBusy:
		return false, ErrBusy
	}
	defer func() {
		if p := recover(); p != nil {
			_ = store.Release(context.WithoutCancel(ctx), id)
			panic(p)
		}
	}()
	if herr := handle(ctx); herr != nil {
		// The handler's context may be done; forgetting the claim must not
		// be, or the id would stay claimed until its lease ends.
		if rerr := store.Release(context.WithoutCancel(ctx), id); rerr != nil {
			return true, errors.Join(herr, fmt.Errorf("webhook: release %q: %w", id, rerr))
		}
		return true, herr
	}
	if err := store.Complete(context.WithoutCancel(ctx), id); err != nil {
		return true, fmt.Errorf("webhook: complete %q: %w", id, err)
	}
	return true, nil
}

// Idempotent wraps next so that it runs once per webhook-id: a request
// whose id was handled (answered 2xx) is answered 200 without running next;
// one whose id is being handled by another request right now is answered
// 409 with a Retry-After, so the sender tries again later; a handler that
// answers anything but 2xx (or panics) leaves the id unhandled, so the
// retry runs it again. A request without webhook-id is a 400.
//
// Verify the signature before it (VerifyRequest): a forged request must not
// claim an id.
func Idempotent(store Store, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderID)
		if id == "" {
			http.Error(w, "webhook-id header required", http.StatusBadRequest)
			return
		}
		rec := &statusWriter{ResponseWriter: w}
		ran, err := Once(r.Context(), store, id, LeaseDefault, func(context.Context) error {
			next.ServeHTTP(rec, r)
			if rec.status() < 200 || rec.status() > 299 {
				return errHandlerFailed
			}
			return nil
		})
		switch {
		case ran:
			// next answered; a failure to mark the id handled only means a
			// redelivery runs it again.
		case errors.Is(err, ErrBusy):
			w.Header().Set("Retry-After", "5")
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "idempotency store unavailable", http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK) // handled before
		}
	})
}

var errHandlerFailed = errors.New("webhook: the handler answered a failure")

// statusWriter notes the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK // wrote nothing: net/http answers 200
	}
	return s.code
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
