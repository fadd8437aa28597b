package dispatcher

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus metrics; a nil *metrics records
// nothing, for tests that run many dispatchers.
type metrics struct {
	attempts    *prometheus.CounterVec
	latency     prometheus.Histogram
	deadLetters *prometheus.CounterVec
	fanout      prometheus.Counter
	unreadables *prometheus.CounterVec
	locals      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_delivery_attempts_total", Help: "Webhook attempts by result (2xx, 4xx, 5xx, error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookstream_delivery_attempt_seconds", Help: "Duration of webhook attempts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_dead_letters_total", Help: "Deliveries dead-lettered, by reason.",
		}, []string{"reason"}),
		fanout: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookstream_deliveries_created_total", Help: "Delivery messages made by fan-out.",
		}),
		unreadables: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_unreadable_deliveries_total",
			Help: "Deliveries this build could not read: version (left for a newer dispatcher) or corrupt (set aside in the DLQ).",
		}, []string{"kind"}),
	}
	m.locals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hookstream_delivery_local_failures_total",
		Help: "Attempts not made because of this process (out of file descriptors, say); never counted against the endpoint.",
	})
	for _, k := range []string{"version", "corrupt"} {
		m.unreadables.WithLabelValues(k)
	}
	reg.MustRegister(m.attempts, m.latency, m.deadLetters, m.fanout, m.unreadables, m.locals)
	return m
}

func (m *metrics) attempt(r result, _ string) {
	if m == nil {
		return
	}
	label := "error"
	if r.err == nil {
		label = strconv.Itoa(r.status/100) + "xx"
	}
	m.attempts.WithLabelValues(label).Inc()
	m.latency.Observe(r.duration.Seconds())
}

func (m *metrics) deadLettered(reason string) {
	if m == nil {
		return
	}
	m.deadLetters.WithLabelValues(reason).Inc()
}

func (m *metrics) fannedOut(n int) {
	if m == nil {
		return
	}
	m.fanout.Add(float64(n))
}

func (m *metrics) unreadable(kind string) {
	if m == nil {
		return
	}
	m.unreadables.WithLabelValues(kind).Inc()
}

func (m *metrics) localFailure() {
	if m == nil {
		return
	}
	m.locals.Inc()
}
