package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// scrape reads serve's /metrics with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// sample is one series' value (a histogram's sample count), or -1.
func sample(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// After an end-to-end run through serve, /metrics (read with Prometheus'
// own parser) shows per-endpoint delivery counters, backlog and latency,
// and every metric the Grafana dashboard under deploy/ plots.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "error", "--retry-initial", "50ms", "--retry-max-interval", "100ms", "--retry-min-delay", "10ms",
		"--failing-after", "2")
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(ok.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(down.Close)
	var good, bad struct{ ID string }
	srv.cliJSON(t, &good, "endpoints", "add", "--url", ok.URL, "--types", "m.*")
	srv.cliJSON(t, &bad, "endpoints", "add", "--url", down.URL, "--types", "m.*")
	const n = 10
	for i := range n {
		srv.cliJSON(t, nil, "publish", "--type", "m.created", "--id", fmt.Sprintf("m-%d", i), "--data", `{"n":1}`)
	}
	var mfs map[string]*dto.MetricFamily
	streamstest.WaitFor(t, 30*time.Second, "per-endpoint delivery counters, latency and the failing endpoint's backlog", func() bool {
		mfs = scrape(t, srv.url)
		return sample(mfs, "hookstream_delivery_attempts_total", map[string]string{"endpoint": good.ID, "result": "2xx"}) == n &&
			sample(mfs, "hookstream_delivery_latency_seconds", map[string]string{"endpoint": good.ID}) == n &&
			sample(mfs, "hookstream_endpoint_backlog", map[string]string{"endpoint": bad.ID}) > 0 &&
			sample(mfs, "hookstream_endpoint_status", map[string]string{"endpoint": bad.ID, "status": "failing"}) == 1
	})
	if v := sample(mfs, "hookstream_delivery_attempts_total", map[string]string{"endpoint": bad.ID, "result": "5xx"}); v <= 0 {
		t.Fatalf("5xx attempts of the failing endpoint = %v", v)
	}
	if v := sample(mfs, "hookstream_dead_letters_total", map[string]string{"endpoint": good.ID, "reason": "expired"}); v != 0 {
		t.Fatalf("dead letters of the good endpoint = %v, want present at 0", v)
	}
	if v := sample(mfs, "hookstream_api_requests_total", map[string]string{"route": "POST /v1/events", "code": "2xx"}); v != n {
		t.Fatalf("POST /v1/events 2xx = %v, want %d", v, n)
	}

	// Every metric the dashboard plots is one serve exports.
	raw, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	name := regexp.MustCompile(`hookstream_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if mfs[base] == nil {
					t.Errorf("dashboard panel %q plots %s, which serve does not export", p.Title, m)
				}
			}
		}
	}
}
