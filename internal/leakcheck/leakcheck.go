// Package leakcheck finds goroutines a test binary left running. It is the
// standard-library-only leak check of the core module's tests, so that no
// test-only dependency reaches the module graph of the core's users.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long Find keeps looking for goroutines to end before it
// reports them: a goroutine a test stopped may need a moment to return.
const Grace = 3 * time.Second

// alwaysIgnored are functions whose goroutines belong to the runtime or the
// testing package, not to the code under test.
var alwaysIgnored = []string{
	"testing.(*M).",
	"testing.runTests",
	"testing.tRunner",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace.",
	"runtime.ReadTrace",
}

// Find reports the goroutines still running besides the caller's, retried
// for up to grace so that goroutines on their way out may end. Goroutines
// with a frame whose function name starts with one of ignore are not
// counted.
func Find(grace time.Duration, ignore ...string) error {
	deadline := time.Now().Add(grace)
	for {
		leaked := leakedStacks(ignore)
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leakcheck: %d goroutine(s) still running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// VerifyTestMain runs the tests and, when they passed, fails the binary if
// goroutines leaked:
//
//	func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M, ignore ...string) {
	code := m.Run()
	if code == 0 {
		if err := Find(Grace, ignore...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedStacks returns the stack of every goroutine but the caller's that no
// ignore rule matches.
func leakedStacks(ignore []string) []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	blocks := bytes.Split(buf, []byte("\n\n"))
	var leaked []string
	for i, b := range blocks {
		if i == 0 { // runtime.Stack lists the calling goroutine first
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "" || matches(s, alwaysIgnored) || matches(s, ignore) {
			continue
		}
		leaked = append(leaked, s)
	}
	return leaked
}

// matches reports whether a frame of stack calls a function whose name
// starts with one of prefixes. Frame lines are the unindented ones after the
// goroutine header.
func matches(stack string, prefixes []string) bool {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "goroutine ") {
			continue
		}
		line = strings.TrimPrefix(line, "created by ")
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(line, p) {
				return true
			}
		}
	}
	return false
}
