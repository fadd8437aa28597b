package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEndToEnd measures hookstream serve as a user runs it: events
// POSTed to the API by 8 concurrent clients, fanned out to 4 endpoints
// each, signed and delivered to in-process receivers. It reports accepted
// events/s and delivered webhooks/s over the whole run (ingest to last
// delivery). DESIGN's plain prototype did 8k–10k deliveries/s end to end.
func BenchmarkEndToEnd(b *testing.B) {
	const (
		events    = 20000
		endpoints = 4
		clients   = 8
	)
	srv := startServer(b, "serve", "--data", b.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints", "--log-level", "error").url
	var delivered atomic.Int64
	allDelivered := make(chan struct{})
	for range endpoints {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if delivered.Add(1) == events*endpoints {
				close(allDelivered)
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		b.Cleanup(hs.Close)
		body := fmt.Sprintf(`{"url":%q,"event_types":["bench.*"]}`, hs.URL)
		resp, err := http.Post(srv+"/v1/endpoints", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("add endpoint: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.Cleanup(client.CloseIdleConnections)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > events {
					return
				}
				body := fmt.Sprintf(`{"id":"bench-%d","type":"bench.created","data":{"i":%d}}`, i, i)
				resp, err := client.Post(srv+"/v1/events", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("publish: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	ingest := time.Since(start)
	select {
	case <-allDelivered:
	case <-time.After(5 * time.Minute):
		b.Fatalf("delivered %d of %d", delivered.Load(), events*endpoints)
	}
	total := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(events)/ingest.Seconds(), "events/s")
	b.ReportMetric(float64(events*endpoints)/total.Seconds(), "deliveries/s")
	fmt.Printf("end-to-end: %d events from %d clients accepted in %s (%.0f events/s); %d webhooks delivered in %s (%.0f deliveries/s)\n",
		events, clients, ingest.Round(time.Millisecond), float64(events)/ingest.Seconds(),
		events*endpoints, total.Round(time.Millisecond), float64(events*endpoints)/total.Seconds())
}
