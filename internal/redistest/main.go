package redistest

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// mainActive is set by Main; SharedCluster requires it, because only Main
// stops the shared cluster when the tests are done.
var mainActive atomic.Bool

// Main is a complete TestMain body for packages with Redis tests:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
// It runs the tests, stops the cluster SharedCluster may have started, then
// fails the binary if goroutines leaked (goleak, with opts), and exits with
// the tests' status.
func Main(m *testing.M, opts ...goleak.Option) {
	mainActive.Store(true)
	code := m.Run()
	stopShared()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
