//go:build !race

package hookstream_test

// raceEnabled: this test binary was built with -race.
const raceEnabled = false
