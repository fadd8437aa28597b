package cluster

import (
	"fmt"
	"os"
	"testing"

	"github.com/hookstream/hookstream/dispatcher/dispatchertest"
)

// TestHeldDeadLetterRateR3 prints how fast a held backlog past its
// deadline is dead-lettered on the 3-node cluster with 3 replicas (the
// one-node figure is BenchmarkHeldDeadLetter). A measurement, not a check:
// it runs only under `make bench` (HOOKSTREAM_BENCH=1).
func TestHeldDeadLetterRateR3(t *testing.T) {
	if os.Getenv("HOOKSTREAM_BENCH") == "" {
		t.Skip("a measurement: set HOOKSTREAM_BENCH=1 (make bench) to run it")
	}
	c := startCluster(t)
	_, js := c.connect("bench")
	const n = 10000
	rate := dispatchertest.HeldDeadLetterRate(t, js, n)
	fmt.Printf("held dead-letter, 3 nodes R3: %d records at %.0f records/s\n", n, rate)
}
