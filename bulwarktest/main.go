package bulwarktest

import (
	"flag"
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
//
// When neither a redis-server binary nor a Docker engine is there (and
// neither EnvRequireRedis nor EnvRequireDocker is set), Main makes the test
// binary skip its Example functions, saying why: an Example cannot skip
// itself, and its output would not match.
func Main(m *testing.M, opts ...goleak.Option) {
	if !flag.Parsed() {
		flag.Parse()
	}
	skipExamplesWithoutBackend()
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

func skipExamplesWithoutBackend() {
	if os.Getenv(EnvRequireRedis) != "" || os.Getenv(EnvRequireDocker) != "" || autoBackend() == Binary {
		return
	}
	if _, err := sharedEngine(); err == nil {
		return
	}
	if f := flag.Lookup("test.skip"); f != nil {
		skip := "^Example"
		if cur := f.Value.String(); cur != "" {
			skip = cur + "|^Example"
		}
		_ = f.Value.Set(skip)
		fmt.Fprintf(os.Stderr, "bulwarktest: neither redis-server nor a Docker engine: skipping the Example functions (install one, or set %s=1 or %s=1 to make this a failure)\n", EnvRequireRedis, EnvRequireDocker)
	}
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
