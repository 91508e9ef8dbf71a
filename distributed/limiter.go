package distributed

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

// Pattern names of the limiters, as they appear in events.
const (
	patternTokenBucket   = "token_bucket"
	patternFixedWindow   = "fixed_window"
	patternSlidingWindow = "sliding_window"
	patternSlidingLog    = "sliding_log"
	patternMulti         = "multi_limit"
)

// limiter is the machinery shared by the four single-key limiters: one
// script over one key, one decoder, one local twin.
type limiter struct {
	store    *Store
	pattern  string
	name     string
	limit    bulwark.Limit
	script   *redis.Script
	head     string // "<prefix>:<alg>:{<name>:"
	max      int    // largest n a call may ask for
	capacity int    // Decision.Limit
	largs    []any  // the limit's script arguments, boxed once
	tb       bool   // reply of lua.TokenBucket rather than of a window script
	merges   bool   // concurrent calls for one key and n may share a script call (see Store.mergeCalls)
	gcra     gcraUnits

	// policy says how to decide when Redis cannot; twin decides for
	// FailLocal: the local limiter with the same arithmetic and this
	// replica's share of the limit.
	policy FailurePolicy
	twin   *twin
}

func (s *Store) newLimiter(pattern, alg, name string, l bulwark.Limit, opts []LimiterOption) (limiter, error) {
	if err := l.Validate(); err != nil {
		return limiter{}, err
	}
	policy, err := s.limiterPolicy(opts)
	if err != nil {
		return limiter{}, err
	}
	lim := limiter{
		store:   s,
		pattern: pattern,
		name:    name,
		limit:   l,
		head:    keyHead(s.prefix, alg, name),
		policy:  policy,
		twin:    newTwin(alg, l, s.clock),
	}
	e := strconv.Itoa(l.Events)
	p := strconv.FormatInt(l.PeriodMicros(), 10)
	switch alg {
	case algTokenBucket:
		lim.script, lim.tb, lim.merges = lua.TokenBucket, true, true
		lim.max, lim.capacity = l.Capacity(), l.Capacity()
		lim.gcra = newGCRAUnits(l)
		g := lim.gcra
		lim.largs = []any{strconv.FormatInt(g.e, 10), strconv.FormatInt(g.p, 10), strconv.FormatInt(g.tau, 10)}
	default:
		lim.script = map[string]*redis.Script{
			algFixedWindow:   lua.FixedWindow,
			algSlidingWindow: lua.SlidingWindow,
			algSlidingLog:    lua.SlidingLog,
		}[alg]
		lim.max, lim.capacity = l.Events, l.Events
		lim.largs = []any{e, p}
		lim.merges = alg == algFixedWindow
	}
	return lim, nil
}

// allow is Allow of every single-key limiter.
func (l *limiter) allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || n > l.max {
		return bulwark.Decision{}, core.ArgumentError("%s %q: n must be between 1 and %d, got %d", l.pattern, l.name, l.max, n)
	}
	s := l.store
	if s.closed.Load() {
		return bulwark.Decision{}, ErrClosed
	}
	if !s.Healthy() {
		// Degraded: no I/O and nothing to build for Redis.
		d, err := l.degrade(ctx, key, n)
		if err != nil {
			return bulwark.Decision{}, err
		}
		s.emitDecision(l.pattern, l.name, d)
		return d, nil
	}
	c := newCall(l.script)
	c.limiterKey(l.head, key)
	c.argv = append(c.argv, s.nowArg(), s.minTTLms, n)
	c.argv = append(c.argv, l.largs...)
	if l.merges {
		c.merge, c.n = l, int64(n)
	}
	reply, err := s.runCall(ctx, c)
	var d bulwark.Decision
	if err == nil {
		if l.tb {
			d, err = decodeTokenBucket(reply, l.gcra, int64(n))
		} else {
			d, err = decodeWindow(reply, l.capacity)
		}
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return bulwark.Decision{}, cerr
		}
		if err == ErrClosed { // queued when the store closed
			return bulwark.Decision{}, ErrClosed
		}
		d, err = l.degrade(ctx, key, n)
		if err != nil {
			return bulwark.Decision{}, err
		}
	}
	s.emitDecision(l.pattern, l.name, d)
	return d, nil
}

// degrade decides without Redis, by the limiter's failure policy. The
// decision is flagged Degraded.
func (l *limiter) degrade(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if l.policy != FailLocal {
		return l.store.degradedDecision(l.policy, l.capacity, n), nil
	}
	return l.twin.allow(ctx, l.store, key, n)
}

func (s *Store) emitDecision(pattern, name string, d bulwark.Decision) {
	if s.observer == nil {
		return
	}
	core.Emit(s.observer, bulwark.Event{
		Kind:      bulwark.EventDecision,
		Pattern:   pattern,
		Name:      name,
		Time:      s.eventTime(),
		Allowed:   d.Allowed,
		Degraded:  d.Degraded,
		Limit:     d.Limit,
		Remaining: d.Remaining,
	})
}

// TokenBucket is a Redis-backed token bucket shared by every replica that
// uses the same store prefix and name: per key, a bucket of Limit.Capacity()
// tokens refilled at Events per Period, computed with GCRA (a theoretical
// arrival time, no background refill). The arithmetic is that of
// local.NewTokenBucket (docs/algorithms.md), so both decide identically.
//
// One call is one round trip running one script (lua.TokenBucket: a GET,
// and a SET when it admits), atomic in Redis; calls for one key and n
// that queue together for a batching lane share one script run (see
// [WithBatching]). The state of a key is its
// theoretical arrival time: a whole number of µs, which Redis stores as an
// integer (MEMORY USAGE 72 bytes with a short key), whenever Period/Events
// is a whole number of µs; otherwise that number and a remainder as text.
// Its TTL is the time until its bucket is full again; an absent key is a
// full bucket. The limit travels with every call, so replicas configured
// differently for one name each apply their own limit to the shared state
// (a replica with a lower limit denies while the shared debt exceeds it).
//
// Safe for concurrent use. Build it with [Store.TokenBucket].
type TokenBucket struct{ l limiter }

// SlidingWindow is a Redis-backed sliding-window counter: per key, the
// current fixed window's count plus the previous window's, weighted by how
// much of it overlaps the sliding window (now − Period, now]. Admits at
// most about Events per Period with constant memory per key (one short
// string). Same arithmetic as local.NewSlidingWindow. Safe for concurrent
// use. Build it with [Store.SlidingWindow].
type SlidingWindow struct{ l limiter }

// SlidingLog is a Redis-backed exact sliding window: per key, a sorted set
// holding one member per admitted token, scored by its time; a request is
// admitted when the tokens of the last Period plus n stay within Events. The
// set never holds more than Events members after an admission and expires
// one Period after the last one. Same arithmetic as local.NewSlidingLog.
// Memory grows with Events (tens of bytes per token): prefer
// [SlidingWindow] for large limits. Safe for concurrent use. Build it with
// [Store.SlidingLog].
type SlidingLog struct{ l limiter }

// FixedWindow is a Redis-backed fixed-window counter: windows are
// [w×Period, (w+1)×Period) since the Unix epoch, and each admits Events.
// Cheapest of all, but a client can send 2×Events across a window boundary.
// Same arithmetic as local.NewFixedWindow. Safe for concurrent use. Build
// it with [Store.FixedWindow].
type FixedWindow struct{ l limiter }

var (
	_ bulwark.Limiter = (*TokenBucket)(nil)
	_ bulwark.Limiter = (*SlidingWindow)(nil)
	_ bulwark.Limiter = (*SlidingLog)(nil)
	_ bulwark.Limiter = (*FixedWindow)(nil)
)

// TokenBucket returns the token bucket called name with limit l. Limiters
// of one store with the same name and algorithm share their state per key,
// across processes; use distinct names for distinct limits. The name may be
// any string (it is encoded into the key) and appears in events, so keep
// names few and fixed. opts set the limiter's own failure policy
// ([WithLimiterFailurePolicy]). An invalid l returns an error wrapping
// bulwark.ErrInvalidConfig.
func (s *Store) TokenBucket(name string, l bulwark.Limit, opts ...LimiterOption) (*TokenBucket, error) {
	lim, err := s.newLimiter(patternTokenBucket, algTokenBucket, name, l, opts)
	if err != nil {
		return nil, err
	}
	return &TokenBucket{lim}, nil
}

// SlidingWindow returns the sliding-window counter called name with limit
// l (Burst is ignored). See [Store.TokenBucket] for names and errors.
func (s *Store) SlidingWindow(name string, l bulwark.Limit, opts ...LimiterOption) (*SlidingWindow, error) {
	lim, err := s.newLimiter(patternSlidingWindow, algSlidingWindow, name, l, opts)
	if err != nil {
		return nil, err
	}
	return &SlidingWindow{lim}, nil
}

// SlidingLog returns the sliding-window log called name with limit l (Burst
// is ignored). See [Store.TokenBucket] for names and errors.
func (s *Store) SlidingLog(name string, l bulwark.Limit, opts ...LimiterOption) (*SlidingLog, error) {
	lim, err := s.newLimiter(patternSlidingLog, algSlidingLog, name, l, opts)
	if err != nil {
		return nil, err
	}
	return &SlidingLog{lim}, nil
}

// FixedWindow returns the fixed-window counter called name with limit l
// (Burst is ignored). See [Store.TokenBucket] for names and errors.
func (s *Store) FixedWindow(name string, l bulwark.Limit, opts ...LimiterOption) (*FixedWindow, error) {
	lim, err := s.newLimiter(patternFixedWindow, algFixedWindow, name, l, opts)
	if err != nil {
		return nil, err
	}
	return &FixedWindow{lim}, nil
}

// Allow takes n tokens for key if the bucket holds them now, else takes
// none. 1 ≤ n ≤ Limit.Capacity(); other n return an error wrapping
// bulwark.ErrInvalidArgument. When Redis fails or runs out of the store's
// time budget, or the store is degraded, the decision follows the
// limiter's [FailurePolicy] and is flagged Degraded. A done ctx returns its
// error, healthy or degraded.
func (b *TokenBucket) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	return b.l.allow(ctx, key, n)
}

// Allow admits n events for key if the weighted count plus n stays within
// Events, and counts them. 1 ≤ n ≤ Events. See [TokenBucket.Allow].
func (w *SlidingWindow) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	return w.l.allow(ctx, key, n)
}

// Allow admits n events for key if the tokens logged in the last Period
// plus n stay within Events, and logs them. 1 ≤ n ≤ Events. See
// [TokenBucket.Allow].
func (w *SlidingLog) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	return w.l.allow(ctx, key, n)
}

// Allow admits n events for key if the current window's count plus n stays
// within Events, and counts them. 1 ≤ n ≤ Events. See [TokenBucket.Allow].
func (w *FixedWindow) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	return w.l.allow(ctx, key, n)
}

// Limit returns the limiter's limit.
func (b *TokenBucket) Limit() bulwark.Limit { return b.l.limit }

// Limit returns the limiter's limit.
func (w *SlidingWindow) Limit() bulwark.Limit { return w.l.limit }

// Limit returns the limiter's limit.
func (w *SlidingLog) Limit() bulwark.Limit { return w.l.limit }

// Limit returns the limiter's limit.
func (w *FixedWindow) Limit() bulwark.Limit { return w.l.limit }

// micros turns a µs count from a script into a Duration.
func micros(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
