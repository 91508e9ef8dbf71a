package distributed

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

const patternLeased = "leased_token_bucket"

// Defaults of a [LeasedTokenBucket].
const (
	// DefaultLeaseHorizon is how much of a replica's recent demand one
	// lease covers.
	DefaultLeaseHorizon = 100 * time.Millisecond
	// DefaultLeaseTTL is how long the tokens of a lease may be spent.
	DefaultLeaseTTL = time.Second
)

// LeaseOption configures a [LeasedTokenBucket].
type LeaseOption func(*leaseConfig)

type leaseConfig struct {
	horizon  time.Duration
	ttl      time.Duration
	maxLease int
	limiter  []LimiterOption
}

// WithLeaseHorizon sets how much of the replica's recent demand (an EWMA of
// the tokens it admitted per second, per key) one lease covers: a lease is
// about demand × horizon tokens (default [DefaultLeaseHorizon]). Longer
// means fewer Redis calls and more tokens held by each replica.
func WithLeaseHorizon(d time.Duration) LeaseOption { return func(c *leaseConfig) { c.horizon = d } }

// WithLeaseTTL sets how long the tokens of a lease may be spent (default
// [DefaultLeaseTTL]); the ones left then are void, and given back to the
// bucket with the key's next lease.
func WithLeaseTTL(d time.Duration) LeaseOption { return func(c *leaseConfig) { c.ttl = d } }

// WithMaxLease caps the tokens one replica holds for one key (default:
// a tenth of the capacity, at least 1). It is the k of the bounds in
// [LeasedTokenBucket]'s doc.
func WithMaxLease(k int) LeaseOption { return func(c *leaseConfig) { c.maxLease = k } }

// WithLeaseFailurePolicy sets how the limiter decides while Redis cannot
// (see [WithLimiterFailurePolicy]).
func WithLeaseFailurePolicy(p FailurePolicy) LeaseOption {
	return func(c *leaseConfig) { c.limiter = append(c.limiter, WithLimiterFailurePolicy(p)) }
}

// LeasedTokenBucket is a [TokenBucket] whose replicas take tokens from the
// shared bucket in leases of several at once and spend them locally: one
// Redis call serves about a lease's worth of decisions. It shares the
// bucket (the key and its state) of the TokenBucket of the same store
// prefix and name, so leased and per-request replicas can mix.
//
// Per key, a replica holds at most k tokens (WithMaxLease). When a request
// finds fewer than n tokens in hand, the replica asks Redis for a new lease
// in one script call (lua.TokenBucketLease), which gives back the tokens
// left over in the same call; when a request leaves the lease at or below
// a quarter of its size, one background call tops it up (the low-water
// mark), so a steady stream of requests rarely waits for Redis. The size
// of a lease follows the key's demand: an EWMA of the tokens admitted per
// second, times the horizon (WithLeaseHorizon), between n and k; when
// demand drops, leases shrink and what is left over goes back with the
// next one. Tokens in hand expire after the TTL (WithLeaseTTL); Close
// gives back every token in hand. After a denial from Redis the key is
// denied locally until the RetryAfter Redis gave, with no call.
//
// Bounds, with R = Events/Period, C the capacity and N replicas:
//
//   - Never more than the global bucket allows: every token admitted was
//     first taken from the bucket, so from the bucket's first use up to
//     any time T, all replicas together admit at most C + R·T tokens.
//     Over a window of length T that starts later, tokens taken before it
//     and spent in it add at most what the replicas held at its start:
//     at most C + R·T + N·k.
//   - Strands at most N·k tokens: tokens taken and never spent are the
//     ones in hand, at most k per replica and key; a live replica gives
//     them back (Close, the next lease), a dead one's are lost, and the
//     bucket refills them at R like any debt.
//
// Decisions: Limit is the capacity; an admission's Remaining is the tokens
// this replica still holds for the key (what it admits without Redis); a
// denial's fields are those of [TokenBucket.Allow]. Fail-open as every
// limiter: while the store is degraded or a lease call fails, decisions
// follow the limiter's failure policy and are flagged Degraded, and tokens
// in hand are not spent.
//
// Safe for concurrent use. Build it with [Store.LeasedTokenBucket]; call
// Close when done.
type LeasedTokenBucket struct {
	l        limiter
	g        gcraUnits
	horizon  float64 // seconds
	ttl      time.Duration
	maxLease int
	clock    bulwark.Clock

	mu     sync.Mutex
	keys   map[string]*lease
	closed bool
	wg     sync.WaitGroup // background top-ups

	calls atomic.Int64 // lease calls sent to Redis
}

var _ bulwark.Limiter = (*LeasedTokenBucket)(nil)

// lease is one key's tokens in hand. Its fields are guarded by mu.
type lease struct {
	mu        sync.Mutex
	tokens    int       // in hand
	expires   time.Time // when the tokens in hand are void
	size      int       // tokens asked for with the last lease
	rate      float64   // EWMA of tokens admitted per second
	taken     int       // tokens admitted since since
	since     time.Time // start of the current demand sample
	debt      int64     // the bucket's debt at the last reply, in units
	debtAt    time.Time // when it was read
	denied    time.Time // denied locally until then
	denial    bulwark.Decision
	refilling bool
}

// LeasedTokenBucket returns the leased token bucket called name with limit
// l: see [LeasedTokenBucket]. An invalid l or option returns an error
// wrapping bulwark.ErrInvalidConfig.
func (s *Store) LeasedTokenBucket(name string, l bulwark.Limit, opts ...LeaseOption) (*LeasedTokenBucket, error) {
	c := leaseConfig{horizon: DefaultLeaseHorizon, ttl: DefaultLeaseTTL}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	switch {
	case c.horizon <= 0:
		return nil, core.ConfigError("lease horizon must be positive, got %v", c.horizon)
	case c.ttl < time.Millisecond:
		return nil, core.ConfigError("lease TTL must be at least 1ms, got %v", c.ttl)
	case c.maxLease < 0 || c.maxLease > l.Capacity():
		return nil, core.ConfigError("max lease must be between 1 and the capacity %d, got %d", l.Capacity(), c.maxLease)
	}
	if c.maxLease == 0 {
		c.maxLease = max(1, l.Capacity()/10)
	}
	lim, err := s.newLimiter(patternLeased, algTokenBucket, name, l, c.limiter)
	if err != nil {
		return nil, err
	}
	clk := s.clock
	if clk == nil {
		clk = bulwark.SystemClock
	}
	return &LeasedTokenBucket{
		l:        lim,
		g:        newGCRAUnits(l),
		horizon:  c.horizon.Seconds(),
		ttl:      c.ttl,
		maxLease: c.maxLease,
		clock:    clk,
		keys:     map[string]*lease{},
	}, nil
}

// Limit returns the limiter's limit.
func (b *LeasedTokenBucket) Limit() bulwark.Limit { return b.l.limit }

// RedisCalls returns how many lease calls the limiter has sent to Redis.
func (b *LeasedTokenBucket) RedisCalls() int64 { return b.calls.Load() }

// Allow takes n tokens for key from the tokens this replica holds, leasing
// more from Redis when it holds fewer than n. 1 ≤ n ≤ Limit.Capacity();
// other n return an error wrapping bulwark.ErrInvalidArgument; after Close,
// ErrClosed. See [LeasedTokenBucket] for the decisions.
func (b *LeasedTokenBucket) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || n > b.l.max {
		return bulwark.Decision{}, core.ArgumentError("%s %q: n must be between 1 and %d, got %d", b.l.pattern, b.l.name, b.l.max, n)
	}
	s := b.l.store
	if s.closed.Load() {
		return bulwark.Decision{}, ErrClosed
	}
	ls, ok := b.lease(key)
	if !ok {
		return bulwark.Decision{}, ErrClosed
	}
	if !s.Healthy() {
		d, err := b.l.degrade(ctx, key, n)
		if err == nil {
			s.emitDecision(b.l.pattern, b.l.name, d)
		}
		return d, err
	}
	now := b.clock.Now()
	ls.mu.Lock()
	if now.Before(ls.denied) {
		d := ls.denial
		d.RetryAfter = ls.denied.Sub(now)
		ls.mu.Unlock()
		s.emitDecision(b.l.pattern, b.l.name, d)
		return d, nil
	}
	if !now.Before(ls.expires) {
		// Void: spent never, given back with the next lease.
		ls.expires = time.Time{}
	}
	if ls.tokens >= n && !ls.expires.IsZero() {
		ls.tokens -= n
		ls.taken += n
		d := bulwark.Decision{Allowed: true, Limit: b.g.capacity, Remaining: ls.tokens, ResetAfter: b.resetAfter(ls, now)}
		if ls.tokens*4 <= ls.size && !ls.refilling {
			b.topUp(key, ls)
		}
		ls.mu.Unlock()
		s.emitDecision(b.l.pattern, b.l.name, d)
		return d, nil
	}
	d, err := b.renew(ctx, key, ls, now, n)
	ls.mu.Unlock()
	if err != nil {
		return bulwark.Decision{}, err
	}
	s.emitDecision(b.l.pattern, b.l.name, d)
	return d, nil
}

// lease returns key's lease, creating it; false once closed.
func (b *LeasedTokenBucket) lease(key string) (*lease, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	ls := b.keys[key]
	if ls == nil {
		if len(b.keys) >= 4096 {
			b.sweepLocked()
		}
		ls = &lease{}
		b.keys[key] = ls
	}
	return ls, true
}

// sweepLocked forgets the keys holding nothing. Requires b.mu held.
func (b *LeasedTokenBucket) sweepLocked() {
	now := b.clock.Now()
	for k, ls := range b.keys {
		if ls.mu.TryLock() {
			if (ls.tokens == 0 || !now.Before(ls.expires)) && !ls.refilling && !now.Before(ls.denied) {
				if ls.tokens > 0 {
					ls.mu.Unlock()
					continue // to give back first
				}
				delete(b.keys, k)
			}
			ls.mu.Unlock()
		}
	}
}

// resetAfter is the time until the bucket was full again, as the last
// reply said. Requires ls.mu held.
func (b *LeasedTokenBucket) resetAfter(ls *lease, now time.Time) time.Duration {
	r := micros(ceilDiv(ls.debt, b.g.e)) - now.Sub(ls.debtAt)
	return max(r, 0).Truncate(time.Microsecond)
}

// sizeFor updates the demand estimate at now and returns the tokens to
// ask for, at least n. Requires ls.mu held.
func (b *LeasedTokenBucket) sizeFor(ls *lease, now time.Time, n int) int {
	if !ls.since.IsZero() {
		if el := now.Sub(ls.since).Seconds(); el > 0 {
			inst := float64(ls.taken) / el
			if ls.rate == 0 {
				ls.rate = inst
			} else {
				ls.rate = 0.5*inst + 0.5*ls.rate
			}
		}
	}
	ls.taken, ls.since = 0, now
	k := int(math.Ceil(ls.rate * b.horizon))
	return min(max(k, n), b.maxLease, b.l.max)
}

// renew asks Redis for a new lease of at least n tokens, giving back the
// ones in hand, and decides the request. Requires ls.mu held.
func (b *LeasedTokenBucket) renew(ctx context.Context, key string, ls *lease, now time.Time, n int) (bulwark.Decision, error) {
	k := max(b.sizeFor(ls, now, n), n)
	back := ls.tokens
	granted, debt, err := b.call(ctx, key, k, n, back)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return bulwark.Decision{}, cerr
		}
		if err == ErrClosed {
			return bulwark.Decision{}, ErrClosed
		}
		// Whether the tokens went back is unknown: they are not spent.
		ls.tokens, ls.expires = 0, time.Time{}
		return b.l.degrade(ctx, key, n)
	}
	ls.tokens, ls.expires = 0, time.Time{}
	ls.debt, ls.debtAt = debt, now
	if granted == 0 {
		need := debt + int64(n)*b.g.p
		d := bulwark.Decision{
			Limit:      b.g.capacity,
			Remaining:  int(max(b.g.tau-debt, 0) / b.g.p),
			RetryAfter: micros(ceilDiv(need-b.g.tau, b.g.e)),
			ResetAfter: micros(ceilDiv(debt, b.g.e)),
		}
		ls.denial, ls.denied = d, now.Add(d.RetryAfter)
		return d, nil
	}
	ls.size = k
	ls.tokens = granted - n
	ls.taken = n
	ls.expires = now.Add(b.ttl)
	return bulwark.Decision{Allowed: true, Limit: b.g.capacity, Remaining: ls.tokens, ResetAfter: micros(ceilDiv(debt, b.g.e))}, nil
}

// topUp starts one background call adding up to a lease's worth of tokens
// to key's, at most k in hand in all. Requires ls.mu held.
func (b *LeasedTokenBucket) topUp(key string, ls *lease) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	ls.refilling = true
	go func() {
		defer b.wg.Done()
		ls.mu.Lock()
		defer ls.mu.Unlock()
		ls.refilling = false
		now := b.clock.Now()
		want := min(b.sizeFor(ls, now, 1), b.maxLease-ls.tokens)
		if want < 1 || !b.l.store.Healthy() || now.Before(ls.denied) {
			return
		}
		// Holding ls.mu, so requests for this key wait for the top-up
		// rather than lease on their own.
		ctx := context.Background()
		granted, debt, err := b.call(ctx, key, want, 1, 0)
		if err != nil || granted == 0 {
			return
		}
		// Tokens in hand (void or not) and the new ones, at most k in all,
		// may be spent until a TTL from now.
		ls.tokens += granted
		ls.size = ls.tokens
		ls.expires = now.Add(b.ttl)
		ls.debt, ls.debtAt = debt, now
	}()
}

// call runs lua.TokenBucketLease once.
func (b *LeasedTokenBucket) call(ctx context.Context, key string, k, n, back int) (granted int, debt int64, err error) {
	s := b.l.store
	b.calls.Add(1)
	c := newCall(lua.TokenBucketLease)
	c.singleKey(limiterKey(b.l.head, key))
	c.argv = append(c.argv, s.nowArg(), s.minTTLms, k, n)
	c.argv = append(c.argv, b.l.largs...)
	c.argv = append(c.argv, back)
	reply, err := s.runCall(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return 0, 0, &errReply{"token bucket lease", reply}
	}
	g, ok1 := arr[0].(int64)
	d, ok2 := arr[1].(int64)
	if !ok1 || !ok2 || g < 0 || g > int64(k) || g > 0 && g < int64(n) || d < 0 || d > b.g.tau {
		return 0, 0, &errReply{"token bucket lease", reply}
	}
	return int(g), d, nil
}

// Close gives back the tokens this replica holds, once its background
// top-ups are done; later calls return ErrClosed. It returns nil; the
// tokens of a key whose give-back call fails are left to refill. Close it
// before the store.
func (b *LeasedTokenBucket) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
	b.mu.Lock()
	keys := b.keys
	b.keys = map[string]*lease{}
	b.mu.Unlock()
	ctx := context.Background()
	for key, ls := range keys {
		ls.mu.Lock()
		back := ls.tokens
		ls.tokens = 0
		ls.mu.Unlock()
		if back > 0 && b.l.store.Healthy() {
			_, _, _ = b.call(ctx, key, 0, 0, back)
		}
	}
	return nil
}
