package redistest

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// recorder is a testing.TB that records failures and skips instead of
// acting on them, so tests can check what a helper reports. Fatal, FailNow
// and Skip end the calling goroutine (runtime.Goexit), so run the helper with
// recorder.run.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	errors  []string
	fatal   bool
	skipped bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.mu.Lock()
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *recorder) FailNow() { r.Fatalf("FailNow") }

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = true
	r.errors = append(r.errors, "skip: "+fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) { r.Skipf("%s", fmt.Sprint(args...)) }

func (r *recorder) SkipNow() { r.Skipf("SkipNow") }

// run calls f(r) on a new goroutine and waits, so Goexit from a fake Fatal
// or Skip ends only that goroutine.
func (r *recorder) run(f func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}
