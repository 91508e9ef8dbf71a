package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// ErrSkipped is returned by Run when the function skipped itself (for
// example because no backend can run here).
var ErrSkipped = errors.New("bulwarktest: skipped")

// Run runs f with a testing.TB of the kit's own, for code outside a Test
// function: an Example, a main program, a smoke check in a deployment
// script. Everything the kit starts for that TB is stopped when f returns
// (its Cleanup functions run, last registered first). Fatal, FailNow and
// Skip end f as they end a test. Log output goes to os.Stderr, prefixed
// with name. Run returns nil when f passed, an error listing the failures
// when it failed, and an error wrapping ErrSkipped when it skipped.
//
// Setenv and Chdir change the process's state and are undone at cleanup,
// as in a test; do not call Run concurrently with code that depends on
// them.
func Run(name string, f func(tb testing.TB)) error {
	r := &runTB{name: name, out: os.Stderr}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				r.Errorf("panic: %v", v)
			}
		}()
		f(r)
	}()
	<-done
	r.cancel()
	r.runCleanups()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.failed:
		return fmt.Errorf("bulwarktest: %s failed:\n%s", name, strings.Join(r.errs, "\n"))
	case r.skipped:
		return fmt.Errorf("%w: %s", ErrSkipped, r.skipMsg)
	}
	return nil
}

// runTB is the testing.TB of Run. It embeds the interface only to have its
// unexported method; every method is its own.
type runTB struct {
	testing.TB
	name   string
	out    io.Writer
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	errs     []string
	failed   bool
	skipped  bool
	skipMsg  string
	tempDirs []string
}

func (r *runTB) runCleanups() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			dirs := r.tempDirs
			r.tempDirs = nil
			r.mu.Unlock()
			for _, d := range dirs {
				_ = os.RemoveAll(d)
			}
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.Errorf("panic in cleanup: %v", v)
				}
			}()
			f()
		}()
	}
}

func (r *runTB) Name() string             { return r.name }
func (r *runTB) Helper()                  {}
func (r *runTB) Context() context.Context { return r.ctx }
func (r *runTB) Output() io.Writer        { return r.out }
func (r *runTB) Attr(key, value string)   { r.Logf("attr %s=%s", key, value) }
func (r *runTB) ArtifactDir() string      { return r.TempDir() }

func (r *runTB) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runTB) Log(args ...any) { r.Logf("%s", fmt.Sprint(args...)) }

func (r *runTB) Logf(format string, args ...any) {
	fmt.Fprintf(r.out, "%s: %s\n", r.name, fmt.Sprintf(format, args...))
}

func (r *runTB) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *runTB) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.Logf("%s", msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.errs = append(r.errs, msg)
}

func (r *runTB) Fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *runTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runTB) FailNow() {
	r.Fail()
	runtime.Goexit()
}

func (r *runTB) Fatal(args ...any) { r.Error(args...); runtime.Goexit() }

func (r *runTB) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }

func (r *runTB) Skip(args ...any) { r.Skipf("%s", fmt.Sprint(args...)) }

func (r *runTB) Skipf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.Logf("skip: %s", msg)
	r.mu.Lock()
	r.skipped, r.skipMsg = true, msg
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *runTB) SkipNow() { r.Skipf("skipped") }

func (r *runTB) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

func (r *runTB) TempDir() string {
	d, err := os.MkdirTemp("", "bulwarktest-")
	if err != nil {
		r.Fatalf("TempDir: %v", err)
	}
	r.mu.Lock()
	r.tempDirs = append(r.tempDirs, d)
	r.mu.Unlock()
	return d
}

func (r *runTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		r.Fatalf("Setenv: %v", err)
	}
	r.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

func (r *runTB) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		r.Fatalf("Chdir: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		r.Fatalf("Chdir: %v", err)
	}
	r.Cleanup(func() { _ = os.Chdir(old) })
}
