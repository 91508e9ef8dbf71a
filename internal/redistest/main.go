package redistest

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace is how long Main keeps looking for leaked goroutines to end
// before reporting them. go-redis lets a few goroutines finish after Close (a
// pool's dial probe sleeps a second between attempts; a cluster client's
// topology reload pauses 200ms), which is not a leak.
const LeakGrace = 3 * time.Second

// mainActive is set by Main; SharedCluster requires it, because only Main
// stops the shared cluster when the tests are done.
var mainActive atomic.Bool

// Main is a complete TestMain body for packages with Redis tests:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
// It runs the tests, stops the cluster SharedCluster may have started, then
// fails the binary if goroutines leaked (goleak.Find with opts, retried for up
// to LeakGrace), and exits with the tests' status.
func Main(m *testing.M, opts ...goleak.Option) {
	mainActive.Store(true)
	code := m.Run()
	stopShared()
	if code == 0 {
		if err := findLeaks(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func findLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(LeakGrace)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
