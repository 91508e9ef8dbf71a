package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// keyedLimiter is what the tests need of every keyed limiter.
type keyedLimiter interface {
	bulwark.Limiter
	keys() int
}

// limiterKind builds one of the four limiters.
type limiterKind struct {
	name    string
	pattern string
	build   func(l bulwark.Limit, opts ...Option) (keyedLimiter, error)
	// most is the largest n Allow accepts for l.
	most func(l bulwark.Limit) int
	// ref returns the reference model of the algorithm for l.
	ref func(l bulwark.Limit) limitRef
}

func limEvents(l bulwark.Limit) int { return l.Events }

var limiterKinds = []limiterKind{
	{
		name: "TokenBucket", pattern: "token_bucket",
		build: func(l bulwark.Limit, opts ...Option) (keyedLimiter, error) { return NewTokenBucket(l, opts...) },
		most:  bulwark.Limit.Capacity,
		ref:   func(l bulwark.Limit) limitRef { return newRefBucket(l) },
	},
	{
		name: "SlidingWindow", pattern: "sliding_window",
		build: func(l bulwark.Limit, opts ...Option) (keyedLimiter, error) { return NewSlidingWindow(l, opts...) },
		most:  limEvents,
		ref:   func(l bulwark.Limit) limitRef { return &refSliding{e: int64(l.Events), p: l.PeriodMicros()} },
	},
	{
		name: "SlidingLog", pattern: "sliding_log",
		build: func(l bulwark.Limit, opts ...Option) (keyedLimiter, error) { return NewSlidingLog(l, opts...) },
		most:  limEvents,
		ref:   func(l bulwark.Limit) limitRef { return &refLog{e: int64(l.Events), p: l.PeriodMicros()} },
	},
	{
		name: "FixedWindow", pattern: "fixed_window",
		build: func(l bulwark.Limit, opts ...Option) (keyedLimiter, error) { return NewFixedWindow(l, opts...) },
		most:  limEvents,
		ref:   func(l bulwark.Limit) limitRef { return &refFixed{e: int64(l.Events), p: l.PeriodMicros()} },
	},
}

// limitStep is one call of a step table: move the clock by advance (which
// may be negative), then Allow(key, n) must return want.
type limitStep struct {
	advance time.Duration
	key     string
	n       int
	want    bulwark.Decision
}

func limAllowed(limit, remaining int, reset time.Duration) bulwark.Decision {
	return bulwark.Decision{Allowed: true, Limit: limit, Remaining: remaining, ResetAfter: reset}
}

func limDenied(limit, remaining int, retry, reset time.Duration) bulwark.Decision {
	return bulwark.Decision{Limit: limit, Remaining: remaining, RetryAfter: retry, ResetAfter: reset}
}

func runLimitSteps(t *testing.T, lim bulwark.Limiter, clk *fakeclock.Clock, steps []limitStep) {
	t.Helper()
	ctx := context.Background()
	start := clk.Now()
	for i, s := range steps {
		clk.Advance(s.advance)
		got, err := lim.Allow(ctx, s.key, s.n)
		if err != nil {
			t.Fatalf("step %d: Allow(%q, %d): %v", i, s.key, s.n, err)
		}
		if got != s.want {
			t.Errorf("step %d at %v: Allow(%q, %d) = %+v, want %+v", i, clk.Now().Sub(start), s.key, s.n, got, s.want)
		}
	}
}

const limUS = time.Microsecond

func TestTokenBucketSteps(t *testing.T) {
	tests := []struct {
		name  string
		limit bulwark.Limit
		steps []limitStep
	}{
		{
			name:  "burst, refill, n>1, clock back",
			limit: bulwark.Limit{Events: 10, Period: time.Second, Burst: 3},
			steps: []limitStep{
				{0, "a", 1, limAllowed(3, 2, 100*time.Millisecond)},
				{0, "a", 1, limAllowed(3, 1, 200*time.Millisecond)},
				{0, "a", 1, limAllowed(3, 0, 300*time.Millisecond)},
				{0, "a", 1, limDenied(3, 0, 100*time.Millisecond, 300*time.Millisecond)},
				// One microsecond short of RetryAfter: still denied.
				{100*time.Millisecond - limUS, "a", 1, limDenied(3, 0, limUS, 200*time.Millisecond+limUS)},
				{limUS, "a", 1, limAllowed(3, 0, 300*time.Millisecond)},
				// Keys are independent.
				{0, "b", 3, limAllowed(3, 0, 300*time.Millisecond)},
				{0, "b", 1, limDenied(3, 0, 100*time.Millisecond, 300*time.Millisecond)},
				// Idle for long: a full bucket, never more.
				{10 * time.Second, "a", 3, limAllowed(3, 0, 300*time.Millisecond)},
				{0, "a", 2, limDenied(3, 0, 200*time.Millisecond, 300*time.Millisecond)},
				{150 * time.Millisecond, "a", 2, limDenied(3, 1, 50*time.Millisecond, 150*time.Millisecond)},
				{50 * time.Millisecond, "a", 2, limAllowed(3, 0, 300*time.Millisecond)},
				// The clock goes back 200ms: the bucket is as it was then,
				// less what was taken since; it never admits more.
				{-200 * time.Millisecond, "a", 1, limDenied(3, 0, 300*time.Millisecond, 500*time.Millisecond)},
				{100 * time.Millisecond, "a", 1, limDenied(3, 0, 200*time.Millisecond, 400*time.Millisecond)},
				{200 * time.Millisecond, "a", 1, limAllowed(3, 0, 300*time.Millisecond)},
			},
		},
		{
			name:  "a token every 333333.3µs",
			limit: bulwark.PerSecond(3),
			steps: []limitStep{
				{0, "a", 1, limAllowed(3, 2, 333334*limUS)},
				{0, "a", 2, limAllowed(3, 0, time.Second)},
				{0, "a", 1, limDenied(3, 0, 333334*limUS, time.Second)},
				{333333 * limUS, "a", 1, limDenied(3, 0, limUS, 666667*limUS)},
				{limUS, "a", 1, limAllowed(3, 0, time.Second)},
				{time.Second, "a", 3, limAllowed(3, 0, time.Second)},
			},
		},
		{
			name:  "burst below events",
			limit: bulwark.Limit{Events: 4, Period: time.Second, Burst: 1},
			steps: []limitStep{
				{0, "a", 1, limAllowed(1, 0, 250*time.Millisecond)},
				{100 * time.Millisecond, "a", 1, limDenied(1, 0, 150*time.Millisecond, 150*time.Millisecond)},
				{150 * time.Millisecond, "a", 1, limAllowed(1, 0, 250*time.Millisecond)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			lim, err := NewTokenBucket(tt.limit, WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			runLimitSteps(t, lim, clk, tt.steps)
		})
	}
}

func TestFixedWindowSteps(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch) // a whole minute
	lim, err := NewFixedWindow(bulwark.Limit{Events: 3, Period: time.Minute, Burst: 99}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	s := time.Second
	runLimitSteps(t, lim, clk, []limitStep{
		{50 * s, "a", 2, limAllowed(3, 1, 10*s)},
		{5 * s, "a", 2, limDenied(3, 1, 5*s, 5*s)},
		{5*s - limUS, "a", 2, limDenied(3, 1, limUS, limUS)},
		// The window boundary.
		{limUS, "a", 2, limAllowed(3, 1, 60*s)},
		{0, "a", 1, limAllowed(3, 0, 60*s)},
		{0, "a", 1, limDenied(3, 0, 60*s, 60*s)},
		{0, "b", 3, limAllowed(3, 0, 60*s)},
		// The clock goes back into the previous window: the key stays in
		// its window, as if at its start.
		{-10 * s, "a", 1, limDenied(3, 0, 60*s, 60*s)},
		{40 * s, "a", 1, limDenied(3, 0, 30*s, 30*s)},
		{30 * s, "a", 3, limAllowed(3, 0, 60*s)},
		// Idle for long.
		{5 * time.Minute, "a", 1, limAllowed(3, 2, 60*s)},
	})
}

func TestSlidingWindowSteps(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	lim, err := NewSlidingWindow(bulwark.PerMinute(10), WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	s := time.Second
	runLimitSteps(t, lim, clk, []limitStep{
		{0, "a", 10, limAllowed(10, 0, 120*s)},
		// Nothing fits in this window; in the next, prev=10 weighs
		// 10×(1−e/60s) and 1 more fits once that is ≤ 9: at e = 6s.
		{0, "a", 1, limDenied(10, 0, 66*s, 120*s)},
		{66*s - limUS, "a", 1, limDenied(10, 0, limUS, 54*s+limUS)},
		{limUS, "a", 1, limAllowed(10, 0, 114*s)},
		// e = 15s: 10×0.75 + 1 + 1 ≤ 10.
		{9 * s, "a", 1, limAllowed(10, 0, 105*s)},
		// 7.5 + 2 + 2 > 10; at e = 24s, 6 + 4 = 10.
		{0, "a", 2, limDenied(10, 0, 9*s, 105*s)},
		{9 * s, "a", 2, limAllowed(10, 0, 96*s)},
		// cur + n = E: only the next window can take it.
		{0, "a", 6, limDenied(10, 0, 36*s, 96*s)},
		{36 * s, "a", 6, limAllowed(10, 0, 120*s)},
		// The clock goes back into the previous window: the key stays at
		// the start of its window (prev 4, cur 6); 4×(1−e/60s)+7 ≤ 10 at
		// e = 15s.
		{-30 * s, "a", 1, limDenied(10, 0, 15*s, 120*s)},
		{0, "b", 5, limAllowed(10, 5, 90*s)},
		// cur = 5 and n = E: the window after next.
		{0, "b", 10, limDenied(10, 5, 90*s, 90*s)},
		{90*s - limUS, "b", 10, limDenied(10, 9, limUS, limUS)},
		{limUS, "b", 10, limAllowed(10, 0, 120*s)},
		// Idle for long.
		{10 * time.Minute, "a", 1, limAllowed(10, 9, 120*s)},
	})
}

func TestSlidingLogSteps(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	lim, err := NewSlidingLog(bulwark.PerSecond(3), WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	runLimitSteps(t, lim, clk, []limitStep{
		{0, "a", 2, limAllowed(3, 1, time.Second)},
		{400 * ms, "a", 1, limAllowed(3, 0, time.Second)},
		// 2 must leave; the 2nd oldest was logged at 0ms.
		{300 * ms, "a", 2, limDenied(3, 0, 300*ms, 700*ms)},
		{300*ms - limUS, "a", 2, limDenied(3, 0, limUS, 400*ms+limUS)},
		// A token logged at t counts while now − t < 1s.
		{limUS, "a", 2, limAllowed(3, 0, time.Second)},
		{0, "a", 1, limDenied(3, 0, 400*ms, time.Second)},
		// The clock goes back: the key stays at its newest time.
		{-500 * ms, "a", 1, limDenied(3, 0, 400*ms, time.Second)},
		{900 * ms, "a", 1, limAllowed(3, 0, time.Second)},
		{0, "b", 3, limAllowed(3, 0, time.Second)},
		{999 * ms, "b", 1, limDenied(3, 0, ms, ms)},
		{ms, "b", 2, limAllowed(3, 1, time.Second)},
		// Idle for long.
		{5 * time.Second, "a", 3, limAllowed(3, 0, time.Second)},
	})
}

// Reference models: each computes the decisions of docs/algorithms.md from
// a different formulation (a continuous token count, or the log of every
// admitted token), and finds RetryAfter and ResetAfter by searching for the
// first microsecond at which the request fits, or the key is back at full
// capacity.

type limitRef interface {
	decide(now, n int64) bulwark.Decision
}

// limFirst returns the least r ≥ lo with ok(r), for ok monotone in r.
func limFirst(lo int64, ok func(r int64) bool) int64 {
	if ok(lo) {
		return lo
	}
	hi := max(lo, 1)
	for !ok(hi) {
		lo = hi
		hi *= 2
		if hi > 1<<50 {
			panic("limFirst: no answer")
		}
	}
	for hi-lo > 1 { // ok(hi), !ok(lo)
		mid := lo + (hi-lo)/2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// refBucket is a token bucket holding a level of tokens × P that refills by
// E per microsecond, up to C × P.
type refBucket struct {
	e, p, c int64
	seen    bool
	last    int64
	levelP  int64
}

func newRefBucket(l bulwark.Limit) *refBucket {
	return &refBucket{e: int64(l.Events), p: l.PeriodMicros(), c: int64(l.Capacity())}
}

func (m *refBucket) level(t int64) int64 {
	full := m.c * m.p
	if !m.seen || t-m.last >= full {
		return full
	}
	return min(full, m.levelP+(t-m.last)*m.e)
}

// decide: a clock that went back (now < last) un-refills the bucket, so its
// level may be negative; nothing then remains.
func (m *refBucket) decide(now, n int64) bulwark.Decision {
	t := now
	full := m.c * m.p
	lv := m.level(t)
	d := bulwark.Decision{Limit: int(m.c)}
	if lv >= n*m.p {
		m.seen, m.last, m.levelP = true, t, lv-n*m.p
		d.Allowed = true
		d.Remaining = int(m.levelP / m.p)
	} else {
		d.Remaining = int(max(lv, 0) / m.p)
		d.RetryAfter = micros(limFirst(1, func(r int64) bool { return m.level(t+r) >= n*m.p }))
	}
	d.ResetAfter = micros(limFirst(0, func(r int64) bool { return m.level(t+r) == full }))
	return d
}

// limTokens is a log of every admitted token's time, in order.
type limTokens []int64

func (l limTokens) in(from, to int64) int64 { // tokens with from ≤ t < to
	var c int64
	for _, x := range l {
		if x >= from && x < to {
			c++
		}
	}
	return c
}

func (l *limTokens) add(t, n int64) {
	for ; n > 0; n-- {
		*l = append(*l, t)
	}
}

func (l limTokens) newest() int64 { return l[len(l)-1] }

// windowTime is the key's time for the window algorithms: now, or the start
// of the key's latest window if the clock went back before it.
func windowTime(now, p int64, toks limTokens) int64 {
	if len(toks) > 0 {
		return max(now, floorDiv64(toks.newest(), p)*p)
	}
	return now
}

type refFixed struct {
	e, p int64
	toks limTokens
}

func (m *refFixed) count(t int64) int64 {
	w := floorDiv64(t, m.p) * m.p
	return m.toks.in(w, w+m.p)
}

func (m *refFixed) decide(now, n int64) bulwark.Decision {
	t := windowTime(now, m.p, m.toks)
	d := bulwark.Decision{Limit: int(m.e)}
	if m.count(t)+n <= m.e {
		m.toks.add(t, n)
		d.Allowed = true
	} else {
		d.RetryAfter = micros(limFirst(1, func(r int64) bool { return m.count(t+r)+n <= m.e }))
	}
	d.Remaining = int(m.e - m.count(t))
	d.ResetAfter = micros(limFirst(0, func(r int64) bool { return m.count(t+r) == 0 }))
	return d
}

type refSliding struct {
	e, p int64
	toks limTokens
}

// counts returns the weighted previous count (scaled by p) and the current
// window's count at t.
func (m *refSliding) counts(t int64) (weighted, cur int64) {
	w := floorDiv64(t, m.p) * m.p
	return m.toks.in(w-m.p, w) * (m.p - (t - w)), m.toks.in(w, w+m.p)
}

func (m *refSliding) fits(t, n int64) bool {
	weighted, cur := m.counts(t)
	return weighted+(cur+n)*m.p <= m.e*m.p
}

func (m *refSliding) decide(now, n int64) bulwark.Decision {
	t := windowTime(now, m.p, m.toks)
	d := bulwark.Decision{Limit: int(m.e)}
	if m.fits(t, n) {
		m.toks.add(t, n)
		d.Allowed = true
	} else {
		d.RetryAfter = micros(limFirst(1, func(r int64) bool { return m.fits(t+r, n) }))
	}
	weighted, cur := m.counts(t)
	d.Remaining = int(max(0, m.e-ceilDiv64(weighted, m.p)-cur))
	d.ResetAfter = micros(limFirst(0, func(r int64) bool { return m.fits(t+r, m.e) }))
	return d
}

// refLog is the sliding log token by token.
type refLog struct {
	e, p int64
	toks limTokens
}

func (m *refLog) live(t int64) int64 { return m.toks.in(t-m.p+1, t+1) }

func (m *refLog) decide(now, n int64) bulwark.Decision {
	t := now
	if len(m.toks) > 0 {
		t = max(t, m.toks.newest())
	}
	d := bulwark.Decision{Limit: int(m.e)}
	if m.live(t)+n <= m.e {
		m.toks.add(t, n)
		d.Allowed = true
	} else {
		d.RetryAfter = micros(limFirst(1, func(r int64) bool { return m.live(t+r)+n <= m.e }))
	}
	d.Remaining = int(m.e - m.live(t))
	d.ResetAfter = micros(limFirst(0, func(r int64) bool { return m.live(t+r) == 0 }))
	return d
}

// limRandomLimit returns a small random limit, so that the reference models
// stay cheap.
func limRandomLimit(rng *rand.Rand) bulwark.Limit {
	l := bulwark.Limit{
		Events: 1 + rng.IntN(6),
		Period: time.Duration(1+rng.IntN(3000)) * limUS,
	}
	if rng.IntN(2) == 0 {
		l.Burst = 1 + rng.IntN(8)
	}
	return l
}

// limRandomAdvance returns a random clock move for limit period p: often
// none or a fraction of p, sometimes several periods, and backwards when
// back is set.
func limRandomAdvance(rng *rand.Rand, p time.Duration, back bool) time.Duration {
	switch k := rng.IntN(10); {
	case k < 2:
		return 0
	case k < 5:
		return time.Duration(1+rng.Int64N(int64(p/limUS)/8+1)) * limUS
	case k < 8:
		return time.Duration(1+rng.Int64N(2*int64(p/limUS))) * limUS
	case k < 9 && back:
		return -time.Duration(1+rng.Int64N(int64(p/limUS))) * limUS
	default:
		return time.Duration(2*int64(p/limUS)+rng.Int64N(4*int64(p/limUS))) * limUS
	}
}

// TestLimitersMatchReference runs random sequences of calls on a few keys,
// with the clock going forwards and backwards, and compares every decision
// field by field with the reference model.
func TestLimitersMatchReference(t *testing.T) {
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			for seed := range uint64(40) {
				rng := rand.New(rand.NewPCG(seed, 7))
				l := limRandomLimit(rng)
				clk := fakeclock.New(fakeclock.Epoch)
				lim, err := kind.build(l, WithClock(clk))
				if err != nil {
					t.Fatal(err)
				}
				keys := []string{"k0", "k1", "k2"}
				refs := map[string]limitRef{}
				for _, k := range keys {
					refs[k] = kind.ref(l)
				}
				for i := range 300 {
					clk.Advance(limRandomAdvance(rng, l.Period, true))
					key := keys[rng.IntN(len(keys))]
					n := 1 + rng.IntN(kind.most(l))
					got, err := lim.Allow(context.Background(), key, n)
					if err != nil {
						t.Fatal(err)
					}
					want := refs[key].decide(core.Micros(clk.Now()), int64(n))
					if got != want {
						t.Fatalf("seed %d, limit %v, call %d: Allow(%q, %d) = %+v, want %+v", seed, l, i, key, n, got, want)
					}
				}
			}
		})
	}
}

// TestLimitersEvictionChangesNoDecision spreads calls over many keys, with
// long idle gaps, on a limiter whose shards sweep idle keys: the decisions
// still equal the reference's, which never forgets a key.
func TestLimitersEvictionChangesNoDecision(t *testing.T) {
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			for seed := range uint64(10) {
				rng := rand.New(rand.NewPCG(seed, 11))
				l := limRandomLimit(rng)
				clk := fakeclock.New(fakeclock.Epoch)
				lim, err := kind.build(l, WithClock(clk), WithMaxKeys(100))
				if err != nil {
					t.Fatal(err)
				}
				refs := map[string]limitRef{}
				maxKeys := 0
				for i := range 2000 {
					clk.Advance(limRandomAdvance(rng, l.Period, false) / 8)
					key := fmt.Sprintf("key-%d", rng.IntN(60))
					n := 1 + rng.IntN(kind.most(l))
					got, err := lim.Allow(context.Background(), key, n)
					if err != nil {
						t.Fatal(err)
					}
					if refs[key] == nil {
						refs[key] = kind.ref(l)
					}
					want := refs[key].decide(core.Micros(clk.Now()), int64(n))
					if got != want {
						t.Fatalf("seed %d, limit %v, call %d: Allow(%q, %d) = %+v, want %+v", seed, l, i, key, n, got, want)
					}
					maxKeys = max(maxKeys, lim.keys())
				}
				if maxKeys >= 60 {
					t.Errorf("seed %d: up to %d keys held state; idle keys were not swept", seed, maxKeys)
				}
			}
		})
	}
}

// TestLimitersRetryAfterIsExact checks the promise of RetryAfter on random
// traffic: after a denial, with no other traffic, the same request is still
// denied 1µs before RetryAfter and admitted at RetryAfter.
func TestLimitersRetryAfterIsExact(t *testing.T) {
	ctx := context.Background()
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			denials := 0
			for seed := range uint64(40) {
				rng := rand.New(rand.NewPCG(seed, 13))
				l := limRandomLimit(rng)
				clk := fakeclock.New(fakeclock.Epoch)
				lim, err := kind.build(l, WithClock(clk))
				if err != nil {
					t.Fatal(err)
				}
				for i := range 300 {
					clk.Advance(limRandomAdvance(rng, l.Period, false) / 4)
					n := 1 + rng.IntN(kind.most(l))
					d, err := lim.Allow(ctx, "k", n)
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed {
						if d.RetryAfter != 0 {
							t.Fatalf("seed %d call %d: allowed with RetryAfter %v", seed, i, d.RetryAfter)
						}
						continue
					}
					denials++
					if d.RetryAfter <= 0 {
						t.Fatalf("seed %d call %d: denied with RetryAfter %v", seed, i, d.RetryAfter)
					}
					clk.Advance(d.RetryAfter - limUS)
					if early, _ := lim.Allow(ctx, "k", n); early.Allowed {
						t.Fatalf("seed %d, limit %v, call %d: Allow(%d) admitted 1µs before RetryAfter %v", seed, l, i, n, d.RetryAfter)
					}
					clk.Advance(limUS)
					if onTime, _ := lim.Allow(ctx, "k", n); !onTime.Allowed {
						t.Fatalf("seed %d, limit %v, call %d: Allow(%d) denied after RetryAfter %v: %+v", seed, l, i, n, d.RetryAfter, onTime)
					}
				}
			}
			if denials < 100 {
				t.Fatalf("only %d denials: the traffic does not exercise RetryAfter", denials)
			}
		})
	}
}

func TestLimitersRejectBadConfig(t *testing.T) {
	bad := []bulwark.Limit{
		{},
		{Events: 0, Period: time.Second},
		{Events: -1, Period: time.Second},
		{Events: 1, Period: 0},
		{Events: 1, Period: -time.Second},
		{Events: 1, Period: 1500 * time.Nanosecond},
		{Events: 1, Period: time.Second, Burst: -1},
		{Events: 1 << 40, Period: time.Hour},
	}
	for _, kind := range limiterKinds {
		for _, l := range bad {
			if lim, err := kind.build(l); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Errorf("%s(%+v) = %v, %v; want an error wrapping ErrInvalidConfig", kind.name, l, lim, err)
			}
		}
		if lim, err := kind.build(bulwark.PerSecond(1), WithMaxKeys(0)); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s with WithMaxKeys(0) = %v, %v; want an error wrapping ErrInvalidConfig", kind.name, lim, err)
		}
	}
}

func TestLimitersRejectBadCalls(t *testing.T) {
	l := bulwark.Limit{Events: 5, Period: time.Second, Burst: 8}
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			lim, err := kind.build(l, WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			most := kind.most(l)
			for _, n := range []int{0, -1, most + 1, 1 << 40} {
				if d, err := lim.Allow(context.Background(), "k", n); !errors.Is(err, bulwark.ErrInvalidArgument) || d != (bulwark.Decision{}) {
					t.Errorf("Allow(n=%d) = %+v, %v; want an error wrapping ErrInvalidArgument", n, d, err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if d, err := lim.Allow(ctx, "k", 1); !errors.Is(err, context.Canceled) || d != (bulwark.Decision{}) {
				t.Errorf("Allow(cancelled ctx) = %+v, %v; want context.Canceled", d, err)
			}
			if got := lim.keys(); got != 0 {
				t.Errorf("after rejected calls %d keys hold state, want 0", got)
			}
			// The largest valid n is admitted on a fresh key.
			if d, err := lim.Allow(context.Background(), "k", most); err != nil || !d.Allowed || d.Remaining != 0 {
				t.Errorf("Allow(n=%d) on a fresh key = %+v, %v; want allowed with nothing left", most, d, err)
			}
		})
	}
}

// TestLimitersConcurrentOneKey races 64 goroutines on one key while the
// clock stands still: exactly the capacity is admitted.
func TestLimitersConcurrentOneKey(t *testing.T) {
	const capacity = 50
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch.Add(123 * time.Millisecond))
			lim, err := kind.build(bulwark.Limit{Events: capacity, Period: time.Hour}, WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			var admitted atomic.Int64
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					for range 10 {
						d, err := lim.Allow(context.Background(), "hot", 1)
						if err != nil {
							t.Error(err)
							return
						}
						if d.Allowed {
							admitted.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if got := admitted.Load(); got != capacity {
				t.Fatalf("admitted %d of 640 calls, want exactly %d", got, capacity)
			}
		})
	}
}

// TestLimitersConcurrentManyKeys races goroutines over many keys, with
// the clock moving and a small key cap, so that inserts, sweeps and
// evictions interleave (run with -race). The cap holds throughout.
func TestLimitersConcurrentManyKeys(t *testing.T) {
	const maxKeys = 300
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			lim, err := kind.build(bulwark.PerSecond(4), WithClock(clk), WithMaxKeys(maxKeys))
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 3))
					for range 2000 {
						key := fmt.Sprintf("k%d", rng.IntN(2000))
						if _, err := lim.Allow(context.Background(), key, 1+rng.IntN(4)); err != nil {
							t.Error(err)
							return
						}
						if rng.IntN(50) == 0 {
							clk.Advance(100 * time.Millisecond)
						}
					}
				})
			}
			wg.Wait()
			if got := lim.keys(); got > maxKeys {
				t.Fatalf("%d keys hold state, above the cap %d", got, maxKeys)
			}
		})
	}
}

// TestLimitersSweepIdleKeys churns through many keys, one per period: idle
// keys are swept as new ones arrive, so the count stays near the number of
// busy keys, far below the cap.
func TestLimitersSweepIdleKeys(t *testing.T) {
	for _, kind := range limiterKinds {
		for _, maxKeys := range []int{100, DefaultMaxKeys} {
			t.Run(fmt.Sprintf("%s/max%d", kind.name, maxKeys), func(t *testing.T) {
				clk := fakeclock.New(fakeclock.Epoch)
				lim, err := kind.build(bulwark.PerSecond(10), WithClock(clk), WithMaxKeys(maxKeys))
				if err != nil {
					t.Fatal(err)
				}
				most := 0
				for i := range 20000 {
					if _, err := lim.Allow(context.Background(), fmt.Sprintf("user-%d", i), 1); err != nil {
						t.Fatal(err)
					}
					most = max(most, lim.keys())
					clk.Advance(time.Second)
				}
				// Each key is busy for at most two periods and then kept for
				// one more. In one shard, two slots examined per insert keep
				// up with one new key per period; with 256 shards each shard
				// sweeps only when one of its own keys arrives.
				limit := 6
				if maxKeys == DefaultMaxKeys {
					limit = 6 * keyMaxShards
				}
				if most > limit {
					t.Fatalf("up to %d keys held state, want at most %d", most, limit)
				}
			})
		}
	}
}

// TestLimitersMaxKeysEvictsEarliestReset fills a small cap with busy keys:
// a new key replaces the one with the earliest reset, whose state is
// closest to full capacity, and the count never passes the cap.
func TestLimitersMaxKeysEvictsEarliestReset(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(fakeclock.Epoch)
	lim, err := NewTokenBucket(bulwark.PerSecond(10), WithClock(clk), WithMaxKeys(8))
	if err != nil {
		t.Fatal(err)
	}
	// k0 … k7 each take the whole bucket, 1ms apart: k0 resets first (1s
	// after its call).
	for i := range 8 {
		if d, _ := lim.Allow(ctx, fmt.Sprintf("k%d", i), 10); !d.Allowed {
			t.Fatalf("k%d: %+v", i, d)
		}
		clk.Advance(time.Millisecond)
	}
	if d, _ := lim.Allow(ctx, "new", 10); !d.Allowed || lim.keys() != 8 {
		t.Fatalf("new key: %+v with %d keys, want allowed with 8", d, lim.keys())
	}
	// k1 kept its state (a denial writes nothing) …
	if d, _ := lim.Allow(ctx, "k1", 10); d.Allowed {
		t.Fatalf("k1 = %+v, want denied: it should have kept its state", d)
	}
	// … k0 was evicted, so it is back at full capacity; coming back, it
	// evicts k1, now the earliest.
	if d, _ := lim.Allow(ctx, "k0", 10); !d.Allowed {
		t.Fatalf("k0 = %+v, want allowed: it should have been evicted", d)
	}
	if d, _ := lim.Allow(ctx, "k1", 10); !d.Allowed {
		t.Fatalf("k1 = %+v, want allowed: it should have been evicted", d)
	}
	if got := lim.keys(); got != 8 {
		t.Fatalf("%d keys hold state, want 8", got)
	}
}

// TestLimitersMaxKeysBound inserts many more distinct busy keys than the
// cap, across several shards: the count reaches the cap and never passes
// it, and every call still answers.
func TestLimitersMaxKeysBound(t *testing.T) {
	const maxKeys = 1000
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			lim, err := kind.build(bulwark.PerHour(5), WithClock(clk), WithMaxKeys(maxKeys))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20000 {
				d, err := lim.Allow(context.Background(), fmt.Sprintf("tenant-%d", i), 1)
				if err != nil || !d.Allowed {
					t.Fatalf("Allow on new key %d = %+v, %v", i, d, err)
				}
				if got := lim.keys(); got > maxKeys {
					t.Fatalf("after %d keys, %d hold state, above the cap %d", i+1, got, maxKeys)
				}
				if i%97 == 0 {
					clk.Advance(time.Microsecond)
				}
			}
			if got := lim.keys(); got != maxKeys {
				t.Fatalf("%d keys hold state, want the cap %d", got, maxKeys)
			}
		})
	}
}

func TestKeyStoreShares(t *testing.T) {
	for _, tt := range []struct{ maxKeys, shards int }{
		{1, 1}, {127, 1}, {128, 2}, {255, 2}, {256, 4}, {1000, 8}, {16383, 128}, {16384, 256}, {DefaultMaxKeys, 256},
	} {
		st := newKeyStore[bucketState](tt.maxKeys, 0)
		total := 0
		for i := range st.shards {
			total += st.shards[i].max
			if st.shards[i].max < 1 {
				t.Errorf("maxKeys %d: shard %d holds %d", tt.maxKeys, i, st.shards[i].max)
			}
		}
		if len(st.shards) != tt.shards || total != tt.maxKeys {
			t.Errorf("maxKeys %d: %d shards holding %d keys, want %d shards holding %d", tt.maxKeys, len(st.shards), total, tt.shards, tt.maxKeys)
		}
	}
}

func TestLimitersAllocateNothing(t *testing.T) {
	ctx := context.Background()
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			lim, err := kind.build(bulwark.PerSecond(100), WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			step := func() {
				clk.Advance(3 * time.Millisecond)
				if _, err := lim.Allow(ctx, "warm", 1+int(clk.Now().UnixMilli()%3)); err != nil {
					t.Fatal(err)
				}
			}
			for range 1000 { // the key exists and its log has grown
				step()
			}
			if a := testing.AllocsPerRun(1000, step); a != 0 {
				t.Errorf("Allow on an existing key allocates %v times per call", a)
			}
			if a := testing.AllocsPerRun(1000, func() { _, _ = lim.Allow(ctx, "warm", 100) }); a != 0 {
				t.Errorf("a denied Allow allocates %v times per call", a)
			}
		})
	}
}

func TestLimitersObserve(t *testing.T) {
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			var events []bulwark.Event
			obs := bulwark.ObserverFunc(func(e bulwark.Event) { events = append(events, e) })
			lim, err := kind.build(bulwark.PerMinute(2), WithClock(clk), WithObserver(obs), WithName("api"))
			if err != nil {
				t.Fatal(err)
			}
			var want []bulwark.Event
			for i := range 3 {
				clk.Advance(time.Millisecond)
				d, err := lim.Allow(context.Background(), "k", 1)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed != (i < 2) {
					t.Fatalf("call %d: %+v", i, d)
				}
				want = append(want, bulwark.Event{
					Kind: bulwark.EventDecision, Pattern: kind.pattern, Name: "api", Time: clk.Now(),
					Allowed: d.Allowed, Limit: 2, Remaining: d.Remaining,
				})
			}
			if !slices.Equal(events, want) {
				t.Fatalf("events = %+v, want %+v", events, want)
			}
			// Errors are not decisions.
			_, _ = lim.Allow(context.Background(), "k", 0)
			if len(events) != 3 {
				t.Fatalf("a rejected call emitted an event: %+v", events[3:])
			}
		})
	}
}

// TestLimitersObserverOutsideLock checks that the observer runs with no
// lock held: it may call the limiter itself, even for the same key.
func TestLimitersObserverOutsideLock(t *testing.T) {
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			var lim keyedLimiter
			nested := 0
			obs := bulwark.ObserverFunc(func(bulwark.Event) {
				if nested++; nested == 1 {
					_, _ = lim.Allow(context.Background(), "k", 1)
				}
			})
			var err error
			lim, err = kind.build(bulwark.PerSecond(5), WithObserver(obs), WithClock(fakeclock.New(fakeclock.Epoch)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lim.Allow(context.Background(), "k", 1); err != nil {
				t.Fatal(err)
			}
			if nested != 2 {
				t.Fatalf("observer ran %d times, want 2", nested)
			}
		})
	}
}

// limSlotReset returns the reset time (µs) of key's slot in lim's store.
func limSlotReset(lim keyedLimiter, key string) (int64, bool) {
	switch v := lim.(type) {
	case *TokenBucket:
		return limStoreReset(&v.store, key)
	case *SlidingWindow:
		return limStoreReset(&v.store, key)
	case *SlidingLog:
		return limStoreReset(&v.store, key)
	case *FixedWindow:
		return limStoreReset(&v.store, key)
	}
	panic(fmt.Sprintf("unknown limiter %T", lim))
}

func limStoreReset[S any](st *keyStore[S], key string) (int64, bool) {
	sh := st.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if slot := sh.lookup(key); slot != nil {
		return slot.reset, true
	}
	return 0, false
}

// TestLimitersSlotResetIsResetAfter checks what eviction relies on: the
// time from which a key's slot may be freed is exactly now + ResetAfter,
// after every decision, allowed or denied.
func TestLimitersSlotResetIsResetAfter(t *testing.T) {
	for _, kind := range limiterKinds {
		t.Run(kind.name, func(t *testing.T) {
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 17))
				l := limRandomLimit(rng)
				clk := fakeclock.New(fakeclock.Epoch)
				lim, err := kind.build(l, WithClock(clk))
				if err != nil {
					t.Fatal(err)
				}
				for i := range 300 {
					clk.Advance(limRandomAdvance(rng, l.Period, false) / 4)
					key := []string{"a", "b"}[rng.IntN(2)]
					d, err := lim.Allow(context.Background(), key, 1+rng.IntN(kind.most(l)))
					if err != nil {
						t.Fatal(err)
					}
					reset, ok := limSlotReset(lim, key)
					if !ok {
						t.Fatalf("seed %d call %d: %q holds no state after %+v", seed, i, key, d)
					}
					if got, want := micros(reset-core.Micros(clk.Now())), d.ResetAfter; got != want {
						t.Fatalf("seed %d, limit %v, call %d: slot resets in %v, decision says %v", seed, l, i, got, want)
					}
				}
			}
		})
	}
}

// TestKeyStoreBoundaries checks when slots are freed: a sweep frees a key
// idle for the grace or more; eviction at the cap frees an idle key at once,
// else the examined key with the earliest reset.
func TestKeyStoreBoundaries(t *testing.T) {
	st := newKeyStore[bucketState](4, 10) // one shard of 4, grace 10µs
	sh := st.shard("")
	sh.mu.Lock()
	defer sh.mu.Unlock()
	has := func(keys ...string) {
		t.Helper()
		if len(sh.slots) != len(keys) {
			t.Fatalf("%d keys hold state, want %v", len(sh.slots), keys)
		}
		for _, k := range keys {
			if sh.lookup(k) == nil {
				t.Fatalf("%q holds no state, want %v", k, keys)
			}
		}
	}
	sh.insert("a", 0).reset = 100
	sh.insert("b", 0).reset = 200
	sh.sweep(109, 10)
	has("a", "b")
	sh.sweep(110, 10)
	has("b")
	sh.insert("c", 110).reset = 300
	sh.insert("d", 110).reset = 300
	sh.insert("e", 110).reset = 250
	has("b", "c", "d", "e")
	sh.insert("f", 150).reset = 400 // at the cap, nothing idle: b goes
	has("c", "d", "e", "f")
	sh.insert("g", 250).reset = 400 // e is idle, grace or not
	has("c", "d", "f", "g")
	for i := range 100 { // a full shard never grows
		sh.insert(fmt.Sprint(i), 260).reset = 1000 + int64(i)
		if len(sh.slots) != 4 || len(sh.index) != 4 {
			t.Fatalf("%d slots, %d index entries; want 4", len(sh.slots), len(sh.index))
		}
	}
	has("96", "97", "98", "99")
}
