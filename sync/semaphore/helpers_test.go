package semaphore

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/eventrec"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// env is one semaphore on the shared test Redis, under a prefix of its own.
type env struct {
	client redis.UniversalClient
	prefix string
	name   string
}

func newEnv(t *testing.T) env {
	t.Helper()
	c := redistest.Default(t)
	return env{client: c, prefix: redistest.Prefix(t, c), name: "sem"}
}

// open opens the env's semaphore; Close runs at cleanup.
func (e env) open(t *testing.T, capacity int64, opts ...Option) *Weighted {
	t.Helper()
	w, err := New(e.client, e.name, capacity, append([]Option{WithPrefix(e.prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustAcquire(t *testing.T, w *Weighted, n int64) *Lease {
	t.Helper()
	l, err := w.Acquire(ctxT(t, 10*time.Second), n)
	if err != nil {
		t.Fatalf("Acquire(%d): %v", n, err)
	}
	return l
}

func mustRelease(t *testing.T, l *Lease) {
	t.Helper()
	if err := l.Release(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func available(t *testing.T, w *Weighted) int64 {
	t.Helper()
	n, err := w.Available(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Available: %v", err)
	}
	return n
}

func waiting(t *testing.T, w *Weighted) int64 {
	t.Helper()
	n, err := w.Waiting(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Waiting: %v", err)
	}
	return n
}

// eventually polls cond (a Redis-side condition the test cannot be told
// about) until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder keeps every event a test's pattern reported.
type recorder = eventrec.Recorder
