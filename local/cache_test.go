package local

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// waitWaiters blocks until n callers wait for the computation of key.
func waitWaiters[T any](c *Cache[T], key string, n int32) {
	for {
		c.mu.Lock()
		call := c.calls[key]
		c.mu.Unlock()
		if call != nil && call.waiters.Load() >= n {
			return
		}
		runtime.Gosched()
	}
}

func TestCacheSingleFlightUnder100Callers(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	c, err := NewCache[int](CacheConfig{TTL: time.Minute, MaxSize: 10}, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	var computed atomic.Int32
	release := make(chan struct{})
	compute := func(context.Context) (int, error) {
		computed.Add(1)
		<-release
		return 99, nil
	}
	const callers = 100
	var wg sync.WaitGroup
	results := make(chan int, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(context.Background(), "k", compute)
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	waitWaiters(c, "k", callers-1) // one computes, 99 wait for it
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 99 {
			t.Fatalf("a caller got %d", v)
		}
	}
	if n := computed.Load(); n != 1 {
		t.Fatalf("computed %d times, want 1", n)
	}
	misses, hits := 0, 0
	for _, e := range obs.of(bulwark.EventCache) {
		if e.Allowed {
			hits++
		} else {
			misses++
		}
	}
	if misses != 1 || hits != callers-1 {
		t.Fatalf("misses %d, hits %d; want 1, 99", misses, hits)
	}
}

func TestCacheTTLAndSize(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	c, _ := NewCache[string](CacheConfig{TTL: 10 * time.Second, MaxSize: 2}, WithClock(clk))
	computed := map[string]int{}
	get := func(k string) string {
		v, err := c.Get(context.Background(), k, func(context.Context) (string, error) {
			computed[k]++
			return k + "!", nil
		})
		if err != nil || v != k+"!" {
			t.Fatalf("Get(%s) = %q, %v", k, v, err)
		}
		return v
	}
	get("a")
	clk.Advance(9 * time.Second)
	get("a")
	if computed["a"] != 1 {
		t.Fatalf("recomputed before TTL: %d", computed["a"])
	}
	clk.Advance(time.Second)
	get("a")
	if computed["a"] != 2 {
		t.Fatalf("not recomputed at TTL: %d", computed["a"])
	}
	get("b")
	get("c") // evicts a, the least recently used
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	get("a")
	if computed["a"] != 3 {
		t.Fatalf("a not evicted: computed %d times", computed["a"])
	}
	c.Invalidate("a")
	get("a")
	if computed["a"] != 4 {
		t.Fatalf("Invalidate had no effect: computed %d times", computed["a"])
	}
}

func TestCacheErrorsAndCancellation(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	c, _ := NewCache[int](CacheConfig{TTL: time.Minute, MaxSize: 10}, WithClock(clk))
	calls := 0
	failing := func(context.Context) (int, error) { calls++; return 0, errTransient }
	for range 2 {
		if _, err := c.Get(context.Background(), "e", failing); !errors.Is(err, errTransient) {
			t.Fatalf("err = %v", err)
		}
	}
	if calls != 2 {
		t.Fatalf("errors were cached: %d calls", calls)
	}
	if _, err := c.Get(context.Background(), "x", nil); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("nil compute: %v", err)
	}

	// The computing caller gives up: a waiter with a live ctx computes
	// afresh.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderIn := make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		_, err := c.Get(leaderCtx, "k", func(ctx context.Context) (int, error) {
			close(leaderIn)
			<-ctx.Done()
			return 0, ctx.Err()
		})
		leaderDone <- err
	}()
	<-leaderIn
	waiterDone := make(chan int, 1)
	go func() {
		v, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 7, nil })
		if err != nil {
			t.Error(err)
		}
		waiterDone <- v
	}()
	waitWaiters(c, "k", 1)
	cancelLeader()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader err = %v", err)
	}
	if v := <-waiterDone; v != 7 {
		t.Fatalf("waiter got %d, want its own computation's 7", v)
	}

	// A waiter whose ctx ends stops waiting.
	block := make(chan struct{})
	in := make(chan struct{})
	go func() {
		_, _ = c.Get(context.Background(), "slow", func(context.Context) (int, error) { close(in); <-block; return 1, nil })
	}()
	<-in
	wctx, cancelW := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(wctx, "slow", func(context.Context) (int, error) { return 2, nil })
		errc <- err
	}()
	waitWaiters(c, "slow", 1)
	cancelW()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter err = %v", err)
	}
	close(block)
}

func TestCachePanicReleasesWaiters(t *testing.T) {
	c, _ := NewCache[int](CacheConfig{TTL: time.Minute, MaxSize: 10})
	in := make(chan struct{})
	release := make(chan struct{})
	go func() {
		defer func() { _ = recover() }()
		_, _ = c.Get(context.Background(), "p", func(context.Context) (int, error) {
			close(in)
			<-release
			panic("kaboom")
		})
	}()
	<-in
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "p", func(context.Context) (int, error) { return 1, nil })
		errc <- err
	}()
	waitWaiters(c, "p", 1)
	close(release)
	if err := <-errc; !errors.Is(err, errComputePanicked) {
		t.Fatalf("waiter err = %v", err)
	}
	if v, err := c.Get(context.Background(), "p", func(context.Context) (int, error) { return 3, nil }); v != 3 || err != nil {
		t.Fatalf("after panic: %d, %v", v, err)
	}
}

func TestCacheAsPolicy(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	c, _ := NewCache[string](CacheConfig{TTL: time.Minute, MaxSize: 10}, WithClock(clk))
	ex, err := bulwark.Compose[string](c)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	fn := func(context.Context) (string, error) { calls++; return "v", nil }
	keyed := WithCacheKey(context.Background(), "user:1")
	for range 3 {
		if v, err := ex.Run(keyed, fn); v != "v" || err != nil {
			t.Fatalf("Run = %q, %v", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("keyed calls ran %d times, want 1", calls)
	}
	for range 2 {
		_, _ = ex.Run(context.Background(), fn) // no key: bypass
	}
	if calls != 3 {
		t.Fatalf("unkeyed calls ran %d times in total, want 3", calls)
	}
	if _, err := bulwark.Compose[int](c); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Cache[string] in Compose[int]: %v", err)
	}
	// A Key function in the config.
	byKey, _ := NewCache[string](CacheConfig{TTL: time.Minute, MaxSize: 10,
		Key: func(ctx context.Context) (string, bool) { return "fixed", true }}, WithClock(clk))
	calls = 0
	for range 2 {
		_, _ = bulwark.Do(context.Background(), fn, byKey)
	}
	if calls != 1 {
		t.Fatalf("Key func: %d calls, want 1", calls)
	}
}

func TestCacheValidationAndAllocs(t *testing.T) {
	for _, cfg := range []CacheConfig{{TTL: 0, MaxSize: 1}, {TTL: time.Second, MaxSize: 0}} {
		if _, err := NewCache[int](cfg); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Fatalf("NewCache(%+v) err = %v", cfg, err)
		}
	}
	c, _ := NewCache[int](CacheConfig{TTL: time.Hour, MaxSize: 10})
	compute := func(context.Context) (int, error) { return 1, nil }
	ctx := context.Background()
	_, _ = c.Get(ctx, "k", compute)
	if n := testing.AllocsPerRun(100, func() { _, _ = c.Get(ctx, "k", compute) }); n != 0 {
		t.Fatalf("a hit allocates %v", n)
	}
}
