package semaphore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
	"github.com/redis/go-redis/v9"
)

// Renewals that fail (Redis unreachable) do not lose the lease before its
// local deadline, and do lose it once the deadline passes. Driven by a fake
// clock; Redis holds the lease for its real TTL meanwhile.
func TestFailingRenewalLosesAtDeadline(t *testing.T) {
	e := newEnv(t)
	clock := fakeclock.New(time.Now())
	var failRenew atomic.Bool
	renewCalls := make(chan struct{}, 16)
	errDown := errors.New("dial tcp: connection refused (simulated)")
	lost := make(chan error, 1)
	w := e.open(t, 1, WithClock(clock), WithLeaseTTL(30*time.Second), WithKeepAlive(10*time.Second),
		WithOnLeaseLost(func(_ *Lease, err error) { lost <- err }),
		WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
			if s == lua.SemaphoreRenew {
				defer func() { renewCalls <- struct{}{} }()
				if failRenew.Load() {
					return nil, errDown
				}
			}
			return s.Run(ctx, e.client, keys, args...).Result()
		}))
	l := mustAcquire(t, w, 1) // deadline: start + 30s

	tick := func() {
		t.Helper()
		clock.WaitTimers(1)
		clock.Advance(10 * time.Second)
		<-renewCalls
		clock.WaitTimers(1) // the next round is armed: this one is done
	}
	tick() // t+10s: renewed, deadline t+40s
	failRenew.Store(true)
	tick() // t+20s: fails, before the deadline
	tick() // t+30s: fails, before the deadline
	select {
	case <-l.Lost():
		t.Fatalf("lost before its deadline: %v", l.Err())
	default:
	}
	tick() // t+40s: fails at the deadline
	select {
	case <-l.Lost():
	default:
		t.Fatal("not lost after renewals failed past the deadline")
	}
	err := <-lost
	if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, errDown) || !errors.Is(l.Err(), ErrLeaseLost) {
		t.Fatalf("lost error: got %v, want one wrapping ErrLeaseLost and the Redis error", err)
	}
	// A lost lease is no longer renewed.
	clock.Advance(10 * time.Second)
	clock.WaitTimers(1)
	select {
	case <-renewCalls:
		t.Fatal("a lost lease was renewed again")
	default:
	}
	// Still in Redis (its real TTL has not passed): Release frees it.
	failRenew.Store(false)
	mustRelease(t, l)
}

// Every key the semaphore writes expires, no later than the last expiry it
// holds plus a second (the fencing counter: FenceTTL).
func TestEveryKeyExpires(t *testing.T) {
	e := newEnv(t)
	const ttl = 2 * time.Second
	w := e.open(t, 3, WithLeaseTTL(ttl), WithPollInterval(50*time.Millisecond))
	a := mustAcquire(t, w, 2)
	b := mustAcquire(t, w, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := w.Acquire(ctx, 3); done <- err }()
	eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, w) == 1 })

	keys := redistest.Keys(t, e.client, e.prefix)
	if len(keys) != 5 {
		t.Errorf("keys: got %v, want leases, holders, waiters, waitexp, fence", keys)
	}
	fence := w.keys.fence
	for _, k := range keys {
		pttl, err := e.client.PTTL(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		limit := ttl + time.Second
		if k == w.keys.waiters || k == w.keys.waitexp {
			limit = w.waitTTL + time.Second
		}
		if k == fence {
			limit = FenceTTL
		}
		if pttl <= 0 || pttl > limit {
			t.Errorf("key %s: TTL %v, want in (0, %v]", k, pttl, limit)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire: %v", err)
	}
	mustRelease(t, a)
	mustRelease(t, b)
	eventually(t, 5*time.Second, "the queue to empty", func() bool { return waiting(t, w) == 0 })
	if keys := redistest.Keys(t, e.client, e.prefix); len(keys) != 1 || keys[0] != fence {
		t.Errorf("keys when idle: got %v, want only %s", keys, fence)
	}
	redistest.CheckTTLs(t, e.client, e.prefix, FenceTTL)
}
