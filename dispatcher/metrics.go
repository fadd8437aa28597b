package dispatcher

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/streams"
)

// attemptResults are the result label's values, each present from the
// start so that a rate() alert sees the first failure.
var attemptResults = []string{"2xx", "3xx", "4xx", "5xx", "error"}

// deadLetterReasons are the reason label's values.
var deadLetterReasons = []string{streams.ReasonExpired, streams.ReasonEndpointGone, streams.ReasonEndpointDeleted, streams.ReasonUndecodable}

// endpointStatuses are the status label's values of the status gauge.
var endpointStatuses = []string{streams.StatusHealthy, streams.StatusFailing, streams.StatusDisabled}

// metrics are the dispatcher's Prometheus metrics; a nil *metrics records
// nothing, for tests that run many dispatchers. With perEndpoint the
// attempt, latency and dead-letter series carry an `endpoint` label (off for
// deployments with too many endpoints for one series each: the label is then
// empty).
type metrics struct {
	perEndpoint bool
	attempts    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	latency     *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	fanout      prometheus.Counter
	unreadables *prometheus.CounterVec
	locals      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, perEndpoint bool) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		perEndpoint: perEndpoint,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_delivery_attempts_total", Help: "Webhook attempts by endpoint and result (2xx, 3xx, 4xx, 5xx, error).",
		}, []string{"endpoint", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookstream_delivery_attempt_seconds", Help: "Duration of webhook attempts, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"endpoint"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookstream_delivery_latency_seconds",
			Help:    "End-to-end latency of delivered webhooks: from the delivery's store in JetStream (the event's fan-out) to the endpoint's 2xx, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 22),
		}, []string{"endpoint"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_dead_letters_total", Help: "Deliveries dead-lettered, by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		fanout: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookstream_deliveries_created_total", Help: "Delivery messages made by fan-out.",
		}),
		unreadables: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookstream_unreadable_deliveries_total",
			Help: "Deliveries this build could not read: version (left for a newer dispatcher) or corrupt (set aside in the DLQ).",
		}, []string{"kind"}),
		locals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookstream_delivery_local_failures_total",
			Help: "Attempts not made because of this process (out of file descriptors, say); never counted against the endpoint.",
		}),
	}
	for _, k := range []string{"version", "corrupt"} {
		m.unreadables.WithLabelValues(k)
	}
	m.endpointSeen("")
	reg.MustRegister(m.attempts, m.duration, m.latency, m.deadLetters, m.fanout, m.unreadables, m.locals)
	return m
}

// label is the endpoint label's value.
func (m *metrics) label(endpoint string) string {
	if !m.perEndpoint {
		return ""
	}
	return endpoint
}

// endpointSeen makes an endpoint's counters present at 0.
func (m *metrics) endpointSeen(endpoint string) {
	if m == nil {
		return
	}
	l := m.label(endpoint)
	for _, r := range attemptResults {
		m.attempts.WithLabelValues(l, r)
	}
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(l, r)
	}
	m.duration.WithLabelValues(l)
	m.latency.WithLabelValues(l)
}

// endpointGone drops a removed endpoint's series.
func (m *metrics) endpointGone(endpoint string) {
	if m == nil || !m.perEndpoint {
		return
	}
	labels := prometheus.Labels{"endpoint": endpoint}
	m.attempts.DeletePartialMatch(labels)
	m.deadLetters.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
	m.latency.DeletePartialMatch(labels)
}

func (m *metrics) attempt(r result, endpoint string) {
	if m == nil {
		return
	}
	label := "error"
	if r.err == nil {
		label = strconv.Itoa(r.status/100) + "xx"
	}
	l := m.label(endpoint)
	m.attempts.WithLabelValues(l, label).Inc()
	m.duration.WithLabelValues(l).Observe(r.duration.Seconds())
}

func (m *metrics) delivered(endpoint string, stored time.Time, now time.Time) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(m.label(endpoint)).Observe(now.Sub(stored).Seconds())
}

func (m *metrics) deadLettered(endpoint, reason string) {
	if m == nil {
		return
	}
	m.deadLetters.WithLabelValues(m.label(endpoint), reason).Inc()
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

// stateCollector reports, at each scrape, every endpoint's backlog (its
// deliveries not yet settled, from its consumer: unread plus waiting for a
// retry or in flight) and status. The consumers are listed in pages of
// their infos (a few requests for a thousand endpoints), not one request
// each; a scrape that cannot list them reports the last figures known.
type stateCollector struct {
	d       *Dispatcher
	backlog *prometheus.Desc
	status  *prometheus.Desc
	timeout time.Duration
}

func newStateCollector(d *Dispatcher) *stateCollector {
	return &stateCollector{
		d: d, timeout: 5 * time.Second,
		backlog: prometheus.NewDesc("hookstream_endpoint_backlog",
			"Deliveries of the endpoint not yet settled (unread, waiting for a retry, or in flight).", []string{"endpoint"}, nil),
		status: prometheus.NewDesc("hookstream_endpoint_status",
			"1 for the endpoint's current status (healthy, failing, disabled), 0 for the others.", []string{"endpoint", "status"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.status
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	select {
	case <-d.ready:
	default:
		return // not started: nothing to report yet
	}
	views := d.catalog.all()
	backlog := map[string]float64{}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	list := d.deliveries.ListConsumers(ctx)
	for ci := range list.Info() {
		// An endpoint's consumer, or one of an ordered endpoint's lanes'
		// (summed): its filter names the endpoint.
		if !strings.HasPrefix(ci.Name, streams.DeliveryConsumer("")) || !strings.HasPrefix(ci.Config.FilterSubject, streams.SubjectDeliveries+".") {
			continue
		}
		id := streams.EndpointOfSubject(ci.Config.FilterSubject)
		backlog[id] += float64(ci.NumPending) + float64(ci.NumAckPending)
	}
	listed := list.Err() == nil
	for _, v := range views {
		if v.ep.Deleted {
			continue
		}
		id := v.ep.ID
		if listed || backlog[id] > 0 {
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, backlog[id], id)
		}
		cur := v.status()
		for _, s := range endpointStatuses {
			val := 0.0
			if s == cur {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, val, id, s)
		}
	}
}
