package bulwark

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Policy is one layer of protection around a call: a limiter, a breaker, a
// bulkhead, a timeout, a retry, a fallback…
//
// Run does its work before and after calling next.Run, which runs the rest of
// the composition (the policies inside this one, then the call itself). A
// policy may call next.Run once (a bulkhead), never (a breaker that is open,
// a cache hit), several times in a row (a retry) or, through [Next.Fork],
// concurrently (a hedge). It returns the error the caller sees; nil means the
// result in the slot is the answer.
//
// Policies are values built once and shared by every call: Run must be safe
// for concurrent use. Package local has the in-process policies; the
// adapters [LimiterPolicy], [BreakerPolicy] and [BulkheadPolicy] let any
// [Limiter], [Breaker] or [Bulkhead] (local or Redis-backed) take part.
type Policy interface {
	Run(ctx context.Context, next Next) error
}

// PolicyFunc adapts a function to [Policy].
type PolicyFunc func(ctx context.Context, next Next) error

// Run calls f(ctx, next).
func (f PolicyFunc) Run(ctx context.Context, next Next) error { return f(ctx, next) }

// ResultPolicy is a [Policy] that reads or replaces the call's result: a
// retry with a result predicate, a fallback value, a cache. It reaches the
// result with [ResultOf].
//
// [Compose] calls AcceptsResult with a nil pointer of the composition's
// result type (a nil *T for Compose[T]); a policy built for another type
// reports false, and Compose refuses the stack with an error wrapping
// [ErrInvalidConfig] rather than failing at call time.
type ResultPolicy interface {
	Policy
	AcceptsResult(slot any) bool
}

// chain is what an [Executor] builds once: the policies and the typed
// helpers that let non-generic policies move results of type T around.
type chain struct {
	policies []Policy
	invoke   func(ctx context.Context, fn, slot any) error
	newSlot  func() any
	copySlot func(dst, src any)
}

// Next runs the rest of a composition: the policies inside the current one,
// then the call. Policies receive it in [Policy.Run]; it is a small value,
// cheap to copy, and may be run any number of times, from any goroutine,
// until the policy's Run returns (a hedge's forks may run a little longer;
// see [Next.Fork]).
//
// The zero Next belongs to no composition: its Run returns an error
// wrapping [ErrInvalidArgument].
type Next struct {
	c    *chain
	i    int // index of the next policy to run
	fn   any // the call, a func(context.Context) (T, error)
	slot any // a *T receiving the call's result
}

// Run runs the rest of the composition with ctx and returns its error. The
// result, whatever the error, is left in the slot that [ResultOf] returns.
func (n Next) Run(ctx context.Context) error {
	if n.c == nil {
		return argumentError("next step run outside a composition")
	}
	if n.i < len(n.c.policies) {
		p := n.c.policies[n.i]
		n.i++
		return p.Run(ctx, n)
	}
	return n.c.invoke(ctx, n.fn, n.slot)
}

// Fork returns a Next that runs the same rest of the composition but writes
// its result to a fresh slot of its own, so that several attempts can run at
// once without racing on one result (a hedge). Hand the winner's result to n
// with [Next.Adopt]. Each Fork allocates its slot.
//
// A fork that is still running when its policy's Run has returned (a
// cancelled loser) only writes to its own slot, so it cannot disturb the
// call's answer.
func (n Next) Fork() Next {
	if n.c == nil {
		return n
	}
	n.slot = n.c.newSlot()
	return n
}

// Adopt copies the result held by f, a [Next.Fork] of n, into n's slot.
// It does nothing when f does not belong to n's composition.
func (n Next) Adopt(f Next) {
	if n.c == nil || f.c != n.c || f.slot == n.slot {
		return
	}
	n.c.copySlot(n.slot, f.slot)
}

// ResultOf returns the slot that receives the result of the step run by n,
// typed as T. ok is false when the composition's result type is not T (or n
// is the zero Next). After n.Run returns, *slot holds the call's value (or
// what an inner policy put there); a policy may overwrite it, as a fallback
// does.
func ResultOf[T any](n Next) (slot *T, ok bool) {
	slot, ok = n.slot.(*T)
	return slot, ok
}

// Executor runs functions returning (T, error) under a fixed stack of
// policies. Build it once with [Compose] and share it: Run is safe for
// concurrent use and allocates only the result slot (one allocation per
// call, plus what the policies themselves need). The zero value is an empty
// composition, which calls the function directly.
type Executor[T any] struct {
	c chain
}

// Compose builds an [Executor] that runs calls under policies, outermost
// first: Compose[T](a, b, c).Run(ctx, fn) runs a around b around c around fn.
//
// Recommended order, outermost first, for a call to a dependency:
//
//  1. Fallback: the last word; it turns any failure left, including a
//     rejection by the policies below, into a degraded answer.
//  2. Cache: a hit skips everything below; placed inside the fallback so a
//     fallback value is never cached.
//  3. Retry (with a budget): each attempt goes through every policy below
//     afresh, so it is counted by the limiter, gated by the breaker and
//     bounded by the per-attempt timeout. Rejections (ErrOpen,
//     ErrRateLimited, ErrBulkheadFull) are not retried by default, so a
//     retry never hammers a protection that said no.
//  4. Hedge: each hedged attempt also passes the limiter and bulkhead
//     below, so the extra load hedging creates is accounted for.
//  5. Limiter: the cheapest check; a denied call costs nothing downstream,
//     takes no bulkhead slot and no breaker trial.
//  6. Bulkhead, adaptive concurrency or load shedder: bounds the calls in
//     flight. It sits outside the breaker so that a rejection for lack of a
//     slot is not reported to the breaker as a failure of the dependency,
//     and the time spent waiting for a slot does not count as call latency.
//  7. Breaker: fails fast while the dependency is down; it sees the real
//     outcome and duration of each call, timeouts included.
//  8. Timeout (per attempt): bounds each call through its ctx; as the
//     innermost layer it bounds exactly the call, so the breaker counts a
//     slow call as a failure and the retry may try again.
//
// On the serving side, admission control (a load shedder or an adaptive
// limiter) goes outermost instead, so shed work costs nothing.
//
// Compose returns an error wrapping [ErrInvalidConfig] when a policy is nil,
// when a policy that has a Validate() error method reports an invalid
// configuration (the adapters of this package do), or when a
// [ResultPolicy] was built for another result type than T. The policies
// slice is copied.
func Compose[T any](policies ...Policy) (*Executor[T], error) {
	for i, p := range policies {
		if isNil(p) {
			return nil, configError("policy %d is nil", i)
		}
		if v, ok := p.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				if errors.Is(err, ErrInvalidConfig) {
					return nil, fmt.Errorf("policy %d (%T): %w", i, p, err)
				}
				return nil, fmt.Errorf("%w: policy %d (%T): %w", ErrInvalidConfig, i, p, err)
			}
		}
		if r, ok := p.(ResultPolicy); ok && !r.AcceptsResult((*T)(nil)) {
			var zero T
			return nil, configError("policy %d (%T) does not handle results of type %T", i, p, zero)
		}
	}
	e := &Executor[T]{}
	e.c = chain{
		policies: slices.Clone(policies),
		invoke:   invoke[T],
		newSlot:  func() any { return new(T) },
		copySlot: func(dst, src any) { *dst.(*T) = *src.(*T) },
	}
	return e, nil
}

func invoke[T any](ctx context.Context, fn, slot any) error {
	v, err := fn.(func(context.Context) (T, error))(ctx)
	*slot.(*T) = v
	return err
}

// Run calls fn under the executor's policies and returns the result and the
// error the outermost policy returned. When the error is not nil the value
// is whatever the last attempt left (what fn returned, or what a policy put
// there), often the zero value; do not rely on it unless you know the stack.
// A nil fn is an error wrapping [ErrInvalidArgument].
func (e *Executor[T]) Run(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if fn == nil {
		var zero T
		return zero, argumentError("nil function")
	}
	if len(e.c.policies) == 0 {
		return fn(ctx)
	}
	v := new(T)
	err := Next{c: &e.c, fn: fn, slot: v}.Run(ctx)
	return *v, err
}

// Len returns how many policies the executor stacks.
func (e *Executor[T]) Len() int { return len(e.c.policies) }

// Do runs fn under policies, outermost first, in one line. It builds an
// [Executor] on each call; for a hot path build one with [Compose] and reuse
// it. Configuration errors are returned as from Compose.
func Do[T any](ctx context.Context, fn func(context.Context) (T, error), policies ...Policy) (T, error) {
	e, err := Compose[T](policies...)
	if err != nil {
		var zero T
		return zero, err
	}
	return e.Run(ctx, fn)
}

// FixedKey returns a key function for [LimiterPolicy] that always returns
// key: one limit shared by every call through the policy.
func FixedKey(key string) func(context.Context) string {
	return func(context.Context) string { return key }
}

var (
	_ Policy = (*limiterPolicy)(nil)
	_ Policy = (*breakerPolicy)(nil)
	_ Policy = (*bulkheadPolicy)(nil)
	_ Policy = PolicyFunc(nil)
)

type limiterPolicy struct {
	l   Limiter
	key func(context.Context) string
	n   int
	err error
}

// LimiterPolicy lets a [Limiter] take part in a composition: each run takes
// n tokens for the key that key returns (use [FixedKey] for one shared
// limit) and fails, without calling the rest, with the denied decision's
// [*RateLimitedError] (matching [ErrRateLimited], carrying RetryAfter).
// Errors from Allow itself (a bad n, a done ctx) are returned as they are.
//
// A nil l or key, or n < 1, makes an invalid policy: [Compose] reports it
// (wrapping [ErrInvalidConfig]) and its Run returns that error.
func LimiterPolicy(l Limiter, key func(context.Context) string, n int) Policy {
	p := &limiterPolicy{l: l, key: key, n: n}
	switch {
	case isNil(l):
		p.err = configError("limiter policy: nil limiter")
	case key == nil:
		p.err = configError("limiter policy: nil key function")
	case n < 1:
		p.err = configError("limiter policy: n must be at least 1, got %d", n)
	}
	return p
}

// Validate returns the policy's configuration error, if any.
func (p *limiterPolicy) Validate() error { return p.err }

// Run takes the tokens, then runs next.
func (p *limiterPolicy) Run(ctx context.Context, next Next) error {
	if p.err != nil {
		return p.err
	}
	d, err := p.l.Allow(ctx, p.key(ctx), p.n)
	if err != nil {
		return err
	}
	if !d.Allowed {
		return d.Err()
	}
	return next.Run(ctx)
}

// IsFailure is the default failure classifier of [BreakerPolicy]: every
// non-nil error is a failure of the dependency except context.Canceled,
// which means the caller gave up, not that the dependency failed.
func IsFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled)
}

type breakerPolicy struct {
	b         Breaker
	isFailure func(error) bool
	err       error
}

// BreakerPolicy lets a [Breaker] take part in a composition: each run asks
// the breaker first (failing with its error, matching [ErrOpen], without
// calling the rest when it refuses), then reports the outcome of the rest
// as success unless isFailure(err) says otherwise. A nil isFailure means
// [IsFailure]. The outcome is reported exactly once, even when the rest
// panics (as a failure; the panic goes on).
//
// Put limiters and bulkheads outside the breaker (see [Compose]) or give an
// isFailure that ignores their rejections; otherwise a rejection inside the
// breaker counts as a failure of the dependency.
//
// A nil b makes an invalid policy: [Compose] reports it (wrapping
// [ErrInvalidConfig]) and its Run returns that error.
func BreakerPolicy(b Breaker, isFailure func(error) bool) Policy {
	if isFailure == nil {
		isFailure = IsFailure
	}
	p := &breakerPolicy{b: b, isFailure: isFailure}
	if isNil(b) {
		p.err = configError("breaker policy: nil breaker")
	}
	return p
}

// Validate returns the policy's configuration error, if any.
func (p *breakerPolicy) Validate() error { return p.err }

// Run asks the breaker, runs next and reports its outcome.
func (p *breakerPolicy) Run(ctx context.Context, next Next) (err error) {
	if p.err != nil {
		return p.err
	}
	done, err := p.b.Allow(ctx)
	if err != nil {
		return err
	}
	reported := false
	defer func() {
		if !reported {
			done(false)
		}
	}()
	err = next.Run(ctx)
	reported = true
	done(!p.isFailure(err))
	return err
}

type bulkheadPolicy struct {
	b   Bulkhead
	err error
}

// BulkheadPolicy lets a [Bulkhead] take part in a composition: each run
// acquires a slot (failing with the bulkhead's error, matching
// [ErrBulkheadFull], or ctx's error, without calling the rest), runs the rest
// and releases the slot, even when the rest panics.
//
// A nil b makes an invalid policy: [Compose] reports it (wrapping
// [ErrInvalidConfig]) and its Run returns that error.
func BulkheadPolicy(b Bulkhead) Policy {
	p := &bulkheadPolicy{b: b}
	if isNil(b) {
		p.err = configError("bulkhead policy: nil bulkhead")
	}
	return p
}

// Validate returns the policy's configuration error, if any.
func (p *bulkheadPolicy) Validate() error { return p.err }

// Run acquires a slot, runs next and releases the slot.
func (p *bulkheadPolicy) Run(ctx context.Context, next Next) error {
	if p.err != nil {
		return p.err
	}
	release, err := p.b.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return next.Run(ctx)
}
