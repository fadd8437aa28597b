package dispatcher_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookstream/hookstream/streams"
)

// metricValue finds one series' value in a gather (counter, gauge, or a
// histogram's sample count).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// Per-endpoint series: attempts by result, end-to-end latency, backlog and
// status; every counter is present at 0 before anything happened, so a
// rate() alert sees the first failure and the first dead letter.
func TestMetricsPerEndpoint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := fastConfig()
	cfg.Metrics = reg
	b := setup(t, cfg)
	ok, down := newReceiver(t), newReceiver(t)
	ok.setRespond(func(string, int) (int, http.Header) { return 204, nil })
	down.setRespond(func(string, int) (int, http.Header) { return 503, nil })
	b.addEndpoint("ep_ok", ok.srv.URL, "a.*")
	b.addEndpoint("ep_down", down.srv.URL, "a.*")
	waitFor(t, "the endpoints' series at 0", func() bool {
		v, found := metricValue(t, reg, "hookstream_dead_letters_total", map[string]string{"endpoint": "ep_ok", "reason": streams.ReasonExpired})
		return found && v == 0
	})
	if v, found := metricValue(t, reg, "hookstream_delivery_attempts_total", map[string]string{"endpoint": "ep_ok", "result": "5xx"}); !found || v != 0 {
		t.Fatalf("5xx attempts of ep_ok: %v (found %v), want present at 0", v, found)
	}
	const n = 20
	for i := range n {
		b.publish(fmt.Sprintf("m%02d", i), "a.b")
	}
	waitFor(t, "every delivery to ep_ok counted", func() bool {
		v, _ := metricValue(t, reg, "hookstream_delivery_attempts_total", map[string]string{"endpoint": "ep_ok", "result": "2xx"})
		return v == n
	})
	if v, _ := metricValue(t, reg, "hookstream_delivery_latency_seconds", map[string]string{"endpoint": "ep_ok"}); v != n {
		t.Fatalf("latency samples of ep_ok = %v, want %d", v, n)
	}
	waitFor(t, "ep_down failing with a backlog", func() bool {
		st, _ := metricValue(t, reg, "hookstream_endpoint_status", map[string]string{"endpoint": "ep_down", "status": streams.StatusFailing})
		bl, _ := metricValue(t, reg, "hookstream_endpoint_backlog", map[string]string{"endpoint": "ep_down"})
		return st == 1 && bl > 0
	})
	if v, _ := metricValue(t, reg, "hookstream_delivery_attempts_total", map[string]string{"endpoint": "ep_down", "result": "5xx"}); v == 0 {
		t.Fatal("no 5xx attempts counted for ep_down")
	}
	if v, _ := metricValue(t, reg, "hookstream_endpoint_backlog", map[string]string{"endpoint": "ep_ok"}); v != 0 {
		t.Fatalf("ep_ok backlog = %v, want 0", v)
	}
}
