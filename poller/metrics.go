package poller

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results counted by hookstream_inbound_pushes_total.
const (
	pushStored        = "stored"
	pushDuplicate     = "duplicate"
	pushBadSignature  = "bad_signature"
	pushUnknownSource = "unknown_source"
	pushTooLarge      = "too_large"
	pushInvalid       = "invalid"
	pushUnavailable   = "unavailable"
)

var pushResults = []string{pushStored, pushDuplicate, pushBadSignature, pushUnknownSource, pushTooLarge, pushInvalid, pushUnavailable}

// Results counted by hookstream_poller_polls_total.
const (
	pollOK           = "ok"
	pollError        = "error"
	pollAuthRequired = "auth_required"
	pollBadFeed      = "bad_feed"
	pollStoreError   = "store_error"
)

var pollResults = []string{pollOK, pollError, pollAuthRequired, pollBadFeed, pollStoreError}

// metrics counts pushes and polls by result. A nil *metrics counts nothing.
type metrics struct {
	pushes map[string]prometheus.Counter
	polls  map[string]prometheus.Counter
}

// newMetrics registers hookstream_inbound_pushes_total with reg (every
// result present at 0), or shares the one already registered there. A nil
// reg means no metrics.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookstream_inbound_pushes_total",
		Help: "Providers' webhooks received at POST /ingest/{source}, by result: stored, duplicate (a retry already stored), bad_signature (refused: missing or wrong signature, stale timestamp), unknown_source, too_large, invalid (not a JSON object, no id or type) or unavailable (not stored: NATS unreachable or stream full).",
	}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		existing, ok := (*prometheus.CounterVec)(nil), false
		if errors.As(err, &are) {
			existing, ok = are.ExistingCollector.(*prometheus.CounterVec)
		}
		if !ok {
			return nil, fmt.Errorf("metrics: register hookstream_inbound_pushes_total: %w", err)
		}
		vec = existing
	}
	m := &metrics{pushes: make(map[string]prometheus.Counter, len(pushResults)), polls: map[string]prometheus.Counter{}}
	for _, r := range pushResults {
		m.pushes[r] = vec.WithLabelValues(r)
	}
	polls, err := registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookstream_poller_polls_total",
		Help: "Change-feed polls by result: ok, error (the feed did not answer or failed), auth_required (401/403), bad_feed (a page that cannot be followed) or store_error (NATS did not take the page).",
	}, []string{"result"}))
	if err != nil {
		return nil, err
	}
	for _, r := range pollResults {
		m.polls[r] = polls.WithLabelValues(r)
	}
	return m, nil
}

// registerVec registers vec with reg, or returns the one already there (two
// pollers in one process share it).
func registerVec(reg prometheus.Registerer, vec *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return vec, nil
}

// polled counts one poll's outcome.
func (m *metrics) polled(pollErr, storeErr error) {
	if m == nil {
		return
	}
	r := pollOK
	switch {
	case storeErr != nil:
		r = pollStoreError
	case errors.Is(pollErr, ErrAuth):
		r = pollAuthRequired
	case errors.Is(pollErr, ErrBadFeed):
		r = pollBadFeed
	case pollErr != nil:
		r = pollError
	}
	m.polls[r].Inc()
}

func (m *metrics) push(result string) {
	if m != nil {
		m.pushes[result].Inc()
	}
}
