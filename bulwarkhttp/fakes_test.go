package bulwarkhttp

import (
	"context"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/leakcheck"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// scriptedLimiter returns its decisions in order (repeating the last one)
// and records what it was asked.
type scriptedLimiter struct {
	mu        sync.Mutex
	decisions []bulwark.Decision
	err       error
	keys      []string
	ns        []int
}

func (l *scriptedLimiter) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
	l.ns = append(l.ns, n)
	if l.err != nil {
		return bulwark.Decision{}, l.err
	}
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	d := l.decisions[0]
	if len(l.decisions) > 1 {
		l.decisions = l.decisions[1:]
	}
	return d, nil
}

func (l *scriptedLimiter) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

func (l *scriptedLimiter) lastKey() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) == 0 {
		return ""
	}
	return l.keys[len(l.keys)-1]
}

// staticLimiter always returns d; it allocates nothing.
type staticLimiter struct{ d bulwark.Decision }

func (l *staticLimiter) Allow(context.Context, string, int) (bulwark.Decision, error) {
	return l.d, nil
}

// fakeBreaker rejects while open and records reported outcomes.
type fakeBreaker struct {
	mu       sync.Mutex
	open     bool
	outcomes []bool
}

func (b *fakeBreaker) Allow(context.Context) (func(bool), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return nil, bulwark.ErrOpen
	}
	return func(ok bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.outcomes = append(b.outcomes, ok)
	}, nil
}

func (b *fakeBreaker) State(context.Context) bulwark.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return bulwark.Open
	}
	return bulwark.Closed
}

func (b *fakeBreaker) reported() []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.outcomes...)
}

// fakeBulkhead has cap slots and never waits.
type fakeBulkhead struct {
	mu       sync.Mutex
	cap      int
	inUse    int
	released int
}

func (b *fakeBulkhead) Acquire(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inUse >= b.cap {
		return nil, bulwark.ErrBulkheadFull
	}
	b.inUse++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.inUse--
			b.released++
		})
	}, nil
}

// recordingObserver keeps every event.
type recordingObserver struct {
	mu     sync.Mutex
	events []bulwark.Event
}

func (o *recordingObserver) Observe(e bulwark.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}

func (o *recordingObserver) all() []bulwark.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]bulwark.Event(nil), o.events...)
}

// backpressure is a RetryAfterSource with a fixed answer.
type backpressure int64

func (b backpressure) RetryAfter() time.Duration { return time.Duration(b) }

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
})

// must returns a function that unwraps a middleware constructor's result,
// failing the test on an error: must(t)(Limit(l)).
func must(t testing.TB) func(func(http.Handler) http.Handler, error) func(http.Handler) http.Handler {
	return func(mw func(http.Handler) http.Handler, err error) func(http.Handler) http.Handler {
		t.Helper()
		if err != nil {
			t.Fatalf("constructor: %v", err)
		}
		return mw
	}
}

type ctxT = context.Context

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// waitABit yields to other goroutines while a test waits for background
// clean-up it cannot be told about; it never decides a test's outcome.
func waitABit() { runtime.Gosched() }
