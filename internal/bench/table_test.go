package bench_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/bench"
)

func TestReportTableAndJSON(t *testing.T) {
	t.Parallel()
	rep := &bench.Report{
		Machine:  bench.ThisMachine(),
		Settings: map[string]string{"events": "10", "concurrency": "2"},
		Rows: []bench.Row{
			{Case: "floor-http", Name: "HTTP", Count: 10, Seconds: 0.5, PerSecond: 20},
			{Case: "ingest-1", Name: "ingest", Count: 10, Seconds: 1, PerSecond: 10, Ratio: 0.5, PeakRSS: 64 << 20},
			{Case: "producer-1", Name: "producer", Skipped: "needs NATS"},
			{Case: "batch-1", Name: "batch", Error: "POST /v1/events/batch: 404"},
		},
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"machine: ", "settings: concurrency=2 events=10", "| ingest-1 ", "| 0.50 ", "| 64 ", "skipped: needs NATS", "error: POST /v1/events/batch: 404"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Every line of the table has as many cells as the header.
	var cells int
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		n := strings.Count(line, "|")
		if cells == 0 {
			cells = n
		} else if n != cells {
			t.Errorf("line with %d cells, header has %d: %s", n, cells, line)
		}
	}
	b.Reset()
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Rows) != 4 || back.Rows[1].Ratio != 0.5 {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
}

func TestRSS(t *testing.T) {
	t.Parallel()
	if bench.RSS(0) == 0 {
		t.Skip("no /proc/self/status here")
	}
	if bench.PeakRSS(0) < bench.RSS(0)/2 {
		t.Errorf("peak RSS %d below RSS %d", bench.PeakRSS(0), bench.RSS(0))
	}
	s := bench.SampleRSS(0, time.Millisecond)
	if peak := s.Stop(); peak == 0 {
		t.Error("sampler saw no RSS")
	}
	s.Stop() // idempotent
}
