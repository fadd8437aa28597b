package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics counts the API's answers by route (the pattern that
// matched, e.g. "GET /v1/endpoints/{id}", so ids never become labels) and
// code class; every route's series are present at 0 from the start.
type requestMetrics struct {
	requests *prometheus.CounterVec
}

var codeClasses = []string{"2xx", "3xx", "4xx", "5xx"}

func newRequestMetrics(reg prometheus.Registerer, patterns []string) (*requestMetrics, error) {
	m := &requestMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookstream_api_requests_total", Help: "API requests by route and code class (2xx, 3xx, 4xx, 5xx).",
	}, []string{"route", "code"})}
	for _, p := range append(patterns, "unmatched") {
		for _, c := range codeClasses {
			m.requests.WithLabelValues(p, c)
		}
	}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

// wrap counts each request once the mux has answered it.
func (m *requestMetrics) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" || route == "/" || route == "/v1/" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code/100)+"xx").Inc()
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// RequestCounter is the counter of one route and code class, for tests.
func (s *Server) RequestCounter(route, code string) (prometheus.Counter, error) {
	if s.reqMetrics == nil {
		return nil, errNoMetrics
	}
	return s.reqMetrics.requests.GetMetricWithLabelValues(route, code)
}

var errNoMetrics = errors.New("api: no metrics registry configured")
