package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookstream/hookstream/dispatcher/dispatchertest"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/streams/streamstest"
)

// BenchmarkHeldDeadLetter measures how fast a held backlog that passed its
// deadline is dead-lettered: a disabled endpoint with 20,000 deliveries
// whose deadline has come, and a dispatcher that starts then. It prints
// records/s (one node, file store, in-process). The 3-node R3 figure is
// TestHeldDeadLetterRateR3 in faulttest/cluster.
func BenchmarkHeldDeadLetter(b *testing.B) {
	const n = 20000
	for range b.N {
		env := streamstest.Start(b, streamstest.WithConfig(streams.Config{RetryMaxAge: time.Second, DeliveriesMargin: time.Hour}))
		rate := dispatchertest.HeldDeadLetterRate(b, env.JS, n)
		b.ReportMetric(rate, "records/s")
		fmt.Printf("held dead-letter, one node: %d records at %.0f records/s\n", n, rate)
		env.Stop(b)
	}
}
