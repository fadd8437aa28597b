package producer

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results counted by hookstream_events_published_total.
const (
	resultStored      = "stored"
	resultDuplicate   = "duplicate"
	resultInvalid     = "invalid"
	resultUnavailable = "unavailable"
)

// metrics counts publishes by result. A nil *metrics counts nothing.
type metrics struct {
	storedC, duplicateC, invalidC, unavailableC prometheus.Counter
}

// newMetrics registers hookstream_events_published_total with reg, or
// shares the counter already registered there (a second Producer in one
// process counts into the same series). A nil reg means no metrics.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookstream_events_published_total",
		Help: "Events handed to the publish API, by result: stored, duplicate (already stored inside the duplicate window), invalid (refused input) or unavailable (not stored: NATS unreachable or stream full).",
	}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		existing, ok := (*prometheus.CounterVec)(nil), false
		if errors.As(err, &are) {
			existing, ok = are.ExistingCollector.(*prometheus.CounterVec)
		}
		if !ok {
			return nil, fmt.Errorf("metrics: register hookstream_events_published_total: %w", err)
		}
		vec = existing
	}
	return &metrics{
		storedC:      vec.WithLabelValues(resultStored),
		duplicateC:   vec.WithLabelValues(resultDuplicate),
		invalidC:     vec.WithLabelValues(resultInvalid),
		unavailableC: vec.WithLabelValues(resultUnavailable),
	}, nil
}

func (m *metrics) stored() {
	if m != nil {
		m.storedC.Inc()
	}
}

func (m *metrics) duplicate() {
	if m != nil {
		m.duplicateC.Inc()
	}
}

func (m *metrics) invalid() {
	if m != nil {
		m.invalidC.Inc()
	}
}

func (m *metrics) unavailable() {
	if m != nil {
		m.unavailableC.Inc()
	}
}
