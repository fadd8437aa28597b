package producer_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkPublishHTTP posts events through the whole HTTP route to an
// embedded JetStream (file store), many clients at once, each a new id.
func BenchmarkPublishHTTP(b *testing.B) {
	tb := setup(b)
	client := tb.ts.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	url := tb.ts.URL + "/v1/events"
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var body bytes.Buffer
		for pb.Next() {
			body.Reset()
			body.WriteString(`{"id": "bench-`)
			body.WriteString(strconv.FormatInt(n.Add(1), 10))
			body.WriteString(`", "type": "order.created", "source": "bench", "data": {"order": 42, "total": "99.90", "lines": [1, 2, 3]}}`)
			resp, err := client.Post(url, "application/json", bytes.NewReader(body.Bytes()))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("POST = %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
