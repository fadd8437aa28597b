package streamstest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace is how long VerifyTestMain lets goroutines that are on their way
// out finish before it calls them leaked. goleak's own retries give them
// about a second, which a loaded 2-core CI machine running every package at
// once can exceed.
const LeakGrace = 10 * time.Second

// VerifyTestMain runs the package's tests and then fails the run if any
// goroutine outlives them (after LeakGrace). Use it as the package's
// TestMain: func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	os.Exit(RunAndCheckLeaks(m, opts...))
}

// RunAndCheckLeaks is VerifyTestMain for a TestMain with work of its own
// to do afterwards: it returns the exit code instead of exiting.
func RunAndCheckLeaks(m *testing.M, opts ...goleak.Option) int {
	code := m.Run()
	if code == 0 {
		if err := findLeaks(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	return code
}

func findLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(LeakGrace)
	for {
		// Find retries with back-off for about a second by itself.
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
