package poller

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// BenchmarkIngestDiscourse measures a Discourse push end to end through the
// route, 16 in flight over keep-alive connections: the source read, the HMAC
// of a 1 KiB body, the publish and its ack, and the throttled push record.
func BenchmarkIngestDiscourse(b *testing.B) {
	env := streamstest.Start(b)
	cfg := testConfig(env)
	p, err := New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := api.New(api.Config{Addr: "127.0.0.1:0", Routes: p.Routes(), Public: p.PublicRoutes(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/sources", strings.NewReader(`{"id":"forum","inbound":{"format":"discourse","secret":"`+testSecret+`"}}`))
	if err != nil {
		b.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create: %v %v", resp, err)
	}
	resp.Body.Close()
	body := `{"post":{"raw":"` + strings.Repeat("x", 1000) + `"}}`
	sig := "sha256=" + hexHMAC(testSecret, body)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/ingest/forum", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("X-Discourse-Event-Signature", sig)
			req.Header.Set("X-Discourse-Event", "post_created")
			req.Header.Set("X-Discourse-Event-Id", strconv.FormatInt(n.Add(1), 10))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("push = %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
}
