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

// metrics counts pushes by result. A nil *metrics counts nothing.
type metrics struct {
	pushes map[string]prometheus.Counter
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
	m := &metrics{pushes: make(map[string]prometheus.Counter, len(pushResults))}
	for _, r := range pushResults {
		m.pushes[r] = vec.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) push(result string) {
	if m != nil {
		m.pushes[result].Inc()
	}
}
