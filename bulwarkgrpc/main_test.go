package bulwarkgrpc

import (
	"testing"

	"github.com/bulwark-go/bulwark/internal/leakcheck"
)

// TestMain fails the package's tests when they leave goroutines running
// (abandoned handlers, hedged attempts, stream watchers).
func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
