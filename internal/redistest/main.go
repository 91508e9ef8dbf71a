package redistest

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/leakcheck"
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
// fails the binary if goroutines leaked (leakcheck.Find, ignoring goroutines with a frame in
// one of the functions named by ignore, retried for up to LeakGrace), and exits with the tests' status.
func Main(m *testing.M, ignore ...string) {
	mainActive.Store(true)
	if !flag.Parsed() {
		flag.Parse()
	}
	skipExamplesWithoutServer()
	code := m.Run()
	stopShared()
	stopExamples()
	if code == 0 {
		if err := leakcheck.Find(LeakGrace, ignore...); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
