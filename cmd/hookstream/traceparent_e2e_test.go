package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/streams/streamstest"
)

// An event published with a W3C traceparent header carries it to every
// webhook request of its deliveries, retries included.
func TestTraceParentReachesTheReceiver(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "serve", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--allow-private-endpoints",
		"--log-level", "error", "--retry-initial", "20ms", "--retry-max-interval", "50ms", "--retry-min-delay", "10ms")
	var mu sync.Mutex
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("traceparent"))
		first := len(got) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable) // so that a retry carries it too
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hs.Close)
	srv.cliJSON(t, nil, "endpoints", "add", "--url", hs.URL, "--types", "trace.*")
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, err := http.NewRequest(http.MethodPost, srv.url+"/v1/events", strings.NewReader(`{"id": "traced", "type": "trace.created", "data": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", tp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	streamstest.WaitFor(t, 30*time.Second, "the first attempt and its retry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	for i, h := range got {
		if h != tp {
			t.Fatalf("request %d carried traceparent %q, want %q", i+1, h, tp)
		}
	}
}
