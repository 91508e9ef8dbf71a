package local

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// CacheConfig is the shape of a [Cache].
type CacheConfig struct {
	// TTL is how long a computed value is served, positive.
	TTL time.Duration
	// MaxSize is how many keys are kept at most, at least 1; the least
	// recently used key goes first.
	MaxSize int
	// Key returns the cache key of a call when the Cache runs as a policy;
	// ok false bypasses the cache. Nil means the key set on the ctx with
	// [WithCacheKey], and no caching for a ctx without one.
	Key func(ctx context.Context) (key string, ok bool)
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when TTL is
// not positive or MaxSize < 1.
func (c CacheConfig) Validate() error {
	switch {
	case c.TTL <= 0:
		return core.ConfigError("cache TTL must be positive, got %v", c.TTL)
	case c.MaxSize < 1:
		return core.ConfigError("cache max size must be at least 1, got %d", c.MaxSize)
	}
	return nil
}

type cacheKey struct{}

// WithCacheKey returns a ctx that names the cache entry of the call made
// with it, for a [Cache] running as a policy without a Key function.
func WithCacheKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, cacheKey{}, key)
}

func keyFromContext(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(cacheKey{}).(string)
	return k, ok
}

// errComputePanicked is what waiters get when the computation they waited
// for panicked.
var errComputePanicked = errors.New("bulwark: cached computation panicked")

type cacheEntry[T any] struct {
	v       T
	expires time.Time
}

type cacheCall[T any] struct {
	done    chan struct{}
	waiters atomic.Int32 // callers waiting for this computation
	v       T
	err     error
}

// Cache keeps results of type T per key for TTL, at most MaxSize keys (an
// least-recently-used map), and protects against
// stampedes: while a key is being computed, other callers for that key wait
// for that one computation instead of starting their own. Errors are never
// cached; every waiter receives the computation's result or error, except
// that when the computation ended because its caller's ctx was cancelled, a
// waiter whose own ctx is still alive computes afresh. A waiter whose ctx
// ends stops waiting with its ctx's error.
//
// Expiry is measured on the injected clock. Every lookup emits an EventCache
// (Allowed: served without computing, which includes waiters). It is a
// bulwark.ResultPolicy for T: as a policy, a hit answers without running
// the rest of the composition. Safe for concurrent use; a hit allocates
// nothing.
type Cache[T any] struct {
	mu    sync.Mutex
	lru   *lru[string, cacheEntry[T]]
	calls map[string]*cacheCall[T]
	ttl   time.Duration
	key   func(context.Context) (string, bool)
	clock bulwark.Clock
	obs   bulwark.Observer
	name  string
}

var _ bulwark.ResultPolicy = (*Cache[int])(nil)

// NewCache returns a cache; options WithClock, WithObserver and WithName
// apply.
func NewCache[T any](cfg CacheConfig, opts ...Option) (*Cache[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	l := newLRU[string, cacheEntry[T]](cfg.MaxSize)
	c := &Cache[T]{lru: l, calls: make(map[string]*cacheCall[T]), ttl: cfg.TTL, key: cfg.Key,
		clock: o.clock, obs: o.observer, name: o.name}
	if c.key == nil {
		c.key = keyFromContext
	}
	return c, nil
}

// AcceptsResult reports whether slot is a *T.
func (c *Cache[T]) AcceptsResult(slot any) bool {
	_, ok := slot.(*T)
	return ok
}

// Len returns how many keys are stored, expired ones included until they
// are looked up or evicted.
func (c *Cache[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Invalidate forgets key. A computation in progress for it still hands its
// result to its waiters, and stores it.
func (c *Cache[T]) Invalidate(key string) {
	c.mu.Lock()
	c.lru.Remove(key)
	c.mu.Unlock()
}

func (c *Cache[T]) emit(hit bool) {
	if c.obs != nil {
		core.Emit(c.obs, bulwark.Event{Kind: bulwark.EventCache, Pattern: "cache", Name: c.name,
			Time: c.clock.Now(), Allowed: hit})
	}
}

// Get returns the value for key: the stored one while fresh, else the
// result of the computation in progress for key, else the result of
// compute, run on the caller's goroutine with ctx and stored on success.
func (c *Cache[T]) Get(ctx context.Context, key string, compute func(context.Context) (T, error)) (T, error) {
	var zero T
	if compute == nil {
		return zero, core.ArgumentError("cache: nil compute function")
	}
	for {
		v, call, hit := c.lookup(key)
		if hit {
			c.emit(true)
			return v, nil
		}
		if call != nil { // someone else computes: wait for it
			call.waiters.Add(1)
			select {
			case <-call.done:
			case <-ctx.Done():
				call.waiters.Add(-1)
				return zero, ctx.Err()
			}
			if call.err != nil && isContextErr(call.err) && ctx.Err() == nil {
				continue // the computing caller gave up; try on our own ctx
			}
			c.emit(true)
			return call.v, call.err
		}
		c.emit(false)
		return c.compute(ctx, key, compute)
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// lookup returns a fresh value (hit), or the call in progress for key, or,
// when there is neither, registers a new call for the caller to run and
// returns nil, false.
func (c *Cache[T]) lookup(key string) (v T, call *cacheCall[T], hit bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Get(key); ok {
		if now.Before(e.expires) {
			return e.v, nil, true
		}
		c.lru.Remove(key)
	}
	if call, ok := c.calls[key]; ok {
		return v, call, false
	}
	c.calls[key] = &cacheCall[T]{done: make(chan struct{})}
	return v, nil, false
}

// compute runs the call registered for key by lookup and publishes its
// result, even when compute panics.
func (c *Cache[T]) compute(ctx context.Context, key string, compute func(context.Context) (T, error)) (v T, err error) {
	c.mu.Lock()
	call := c.calls[key]
	c.mu.Unlock()
	finished := false
	defer func() {
		if !finished {
			err = errComputePanicked
		}
		c.mu.Lock()
		delete(c.calls, key)
		if err == nil {
			c.lru.Add(key, cacheEntry[T]{v: v, expires: c.clock.Now().Add(c.ttl)})
		}
		c.mu.Unlock()
		call.v, call.err = v, err
		close(call.done)
	}()
	v, err = compute(ctx)
	finished = true
	return v, err
}

// Run answers from the cache when the call's key (see CacheConfig.Key) is
// fresh, and otherwise runs next once per key at a time and stores its
// result.
func (c *Cache[T]) Run(ctx context.Context, next bulwark.Next) error {
	key, ok := c.key(ctx)
	if !ok {
		return next.Run(ctx)
	}
	slot, ok := bulwark.ResultOf[T](next)
	if !ok {
		return core.ArgumentError("cache: composition result is not of the cache's type")
	}
	if v, call, hit := c.lookup(key); hit {
		c.emit(true)
		*slot = v
		return nil
	} else if call == nil {
		c.emit(false)
		v, err := c.compute(ctx, key, func(ctx context.Context) (T, error) {
			err := next.Run(ctx)
			return *slot, err
		})
		*slot = v
		return err
	}
	v, err := c.Get(ctx, key, func(ctx context.Context) (T, error) {
		err := next.Run(ctx)
		return *slot, err
	})
	*slot = v
	return err
}
