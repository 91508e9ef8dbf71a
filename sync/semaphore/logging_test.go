package semaphore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/lua"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLeaseLostLoggedAndCallbackPanicRecovered: a lease lost on the
// keepalive goroutine is logged once (Warn); the lease-lost callback and
// the observer both panic there, are recovered and counted, and the
// keepalive goes on renewing the other lease.
func TestLeaseLostLoggedAndCallbackPanicRecovered(t *testing.T) {
	e := newEnv(t)
	clock := fakeclock.New(time.Now())
	var logs syncBuffer
	renewCalls := make(chan struct{}, 16)
	w := e.open(t, 2, WithClock(clock), WithLeaseTTL(30*time.Second), WithKeepAlive(10*time.Second),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		WithOnLeaseLost(func(*Lease, error) { panic("callback bug") }),
		WithObserver(bulwark.ObserverFunc(func(e bulwark.Event) {
			if e.Kind == bulwark.EventLeaseLost {
				panic("observer bug")
			}
		})),
		WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
			if s == lua.SemaphoreRenew {
				defer func() { renewCalls <- struct{}{} }()
				return nil, errors.New("dial tcp: connection refused (simulated)")
			}
			return s.Run(ctx, e.client, keys, args...).Result()
		}))
	l := mustAcquire(t, w, 1)
	// Renewals fail at +10s and +20s, before the lease's deadline (+30s),
	// and at +30s, which loses it.
	for range 3 {
		clock.WaitTimers(1)
		clock.Advance(10 * time.Second)
		<-renewCalls
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lease was not lost at its deadline")
	}
	eventuallyTrue := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; log:\n%s", what, logs.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	eventuallyTrue("both panics counted", func() bool { return w.CallbackPanics() == 2 })
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"bulwark: lease lost\""); n != 1 {
		t.Errorf("%d lease-lost lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "level=ERROR msg=\"bulwark: a user callback panicked; recovered\""); n != 2 {
		t.Errorf("%d panic lines, want 2 (observer and callback):\n%s", n, out)
	}
	// The keepalive survived: a new lease is still renewed.
	l2 := mustAcquire(t, w, 1)
	clock.WaitTimers(1)
	clock.Advance(10 * time.Second)
	select {
	case <-renewCalls:
	case <-time.After(10 * time.Second):
		t.Fatal("the keepalive no longer renews")
	}
	mustRelease(t, l2)
}
