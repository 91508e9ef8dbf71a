package bulwarktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace is how long Main keeps looking for leaked goroutines to end
// before reporting them: go-redis lets a few goroutines finish shortly
// after Close.
const LeakGrace = 3 * time.Second

// Main is a complete TestMain body for packages using the kit:
//
//	func TestMain(m *testing.M) { bulwarktest.Main(m) }
//
// It runs the tests, closes the kit's connection to the Docker engine, and
// fails the binary if goroutines leaked (goleak.Find with opts, retried for
// up to LeakGrace); then it exits with the tests' status.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	closeEngine()
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
		time.Sleep(50 * time.Millisecond)
	}
}
