package dashboard_test

import (
	"os"
	"testing"

	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) {
	code := streamstest.RunAndCheckLeaks(m)
	removeBinary()
	os.Exit(code)
}
