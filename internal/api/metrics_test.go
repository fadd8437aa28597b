package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
)

// Requests are counted by the route that matched (never the id in the
// path) and code class, every route's series present at 0 from the start.
func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := api.New(api.Config{
		Addr: "127.0.0.1:0", Metrics: reg, Gatherer: reg,
		Routes: []httpjson.Route{{Method: http.MethodGet, Pattern: "/v1/things/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") == "missing" {
				httpjson.WriteError(w, http.StatusNotFound, "no such thing")
				return
			}
			httpjson.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.Gather()
	if err != nil || len(c) == 0 {
		t.Fatalf("gather before any request: %v", err)
	}
	for _, path := range []string{"/v1/things/a", "/v1/things/b", "/v1/things/missing", "/v1/nowhere"} {
		srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /v1/things/{id}", "2xx", 2}, {"GET /v1/things/{id}", "4xx", 1}, {"GET /v1/things/{id}", "5xx", 0}, {"unmatched", "4xx", 1},
	} {
		m, err := srv.RequestCounter(c.route, c.code)
		if err != nil {
			t.Fatal(err)
		}
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		if got := pb.GetCounter().GetValue(); got != c.want {
			t.Errorf("requests{route=%q, code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
}
