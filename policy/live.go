package policy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/local"
)

// Live reconfiguration (Stack.Update with a changed Spec).
//
// What changes in place, keeping its state:
//   - a local rate limit's events and burst (same algorithm and period):
//     the new limiter shares the old one's keys (local.TokenBucket.Relimit);
//   - a local bulkhead's max_concurrent, max_wait and max_waiting: held
//     slots and queued callers stay (local.Bulkhead.Reconfigure);
//   - a local breaker's thresholds (minimum_calls, failure_rate,
//     consecutive_failures, slow_call_rate, open_for): its state and
//     window stay (local.Breaker.Reconfigure);
//   - a fleet-wide bulkhead's settings: the leases held stay held and
//     renewed until released, and count against the new cap;
//   - every fleet-wide pattern whose state name stays the same: its state
//     is in Redis, and the limit travels with every call;
//   - timeout, retry, hedge, enabled, shadow and circuitbreaker.force,
//     which hold no state.
//
// What starts fresh: a new algorithm, period or scope of a rate limit, a
// new breaker window or scope, a sliding log's limit, and a local
// breaker's window, slow_call or half_open_calls. With WithShapeBase, a fleet-wide limiter whose period
// differs from the base's, or a fleet breaker whose window does, keeps its
// state under a name of its own ("<name>~per=2s", "<name>~window=1m"), so
// that counts kept for one period are never read with another; going back
// to the base's shape goes back to the base's keys.

// WithShapeBase names the Spec whose rate-limit period and breaker window
// keep the stack's own name in Redis: a stack built or updated with another
// period (or window) keeps its fleet-wide state under "<name>~per=<period>"
// (or "<name>~window=<window>"). Package control passes a service's
// defaults, so every replica running the same live value agrees on the
// keys. Without it the name never changes.
func WithShapeBase(base Spec) Option {
	b := base.Clone()
	return func(o *buildOptions) { o.base = &b }
}

// rateStateName is the name of the fleet limiter's Redis state for rc.
func (s *Stack) rateStateName(name string, rc *rateConf) string {
	if s.opts.base == nil || s.opts.base.RateLimit == nil {
		return name
	}
	per := DefaultPer
	if b := s.opts.base.RateLimit.Per; b != nil && *b > 0 {
		per = time.Duration(*b)
	}
	if rc.limit.Period == per {
		return name
	}
	return name + "~per=" + rc.limit.Period.String()
}

// breakerStateName is the name of the fleet breaker's Redis state for bc.
func (s *Stack) breakerStateName(name string, bc *breakerConf) string {
	if s.opts.base == nil || s.opts.base.CircuitBreaker == nil {
		return name
	}
	w := bulwark.DefaultBreakerConfig().Window
	if b := s.opts.base.CircuitBreaker.Window; b != nil && *b > 0 {
		w = time.Duration(*b)
	}
	if bc.cfg.Window == w {
		return name
	}
	return name + "~window=" + bc.cfg.Window.String()
}

// StateNames returns the names under which p's fleet-wide rate limit and
// breaker keep their Redis state ("" for a pattern p has not, or keeps
// locally). They are p.Name unless WithShapeBase moved them.
func (p *Parts) StateNames() (ratelimit, breaker string) { return p.rateState, p.breakerState }

// inPlaceRate reports whether a local limiter built for old can take new's
// limit in place: same algorithm and period, same key source, no
// backpressure wrapper, and an algorithm that supports it.
func inPlaceRate(old, rc *rateConf) bool {
	if old == nil || old.algorithm != rc.algorithm || old.limit.Period != rc.limit.Period ||
		old.retryAfter != RetryAfterLimiter || rc.retryAfter != RetryAfterLimiter {
		return false
	}
	return rc.algorithm != SlidingLog
}

// relimit returns a limiter enforcing l that shares l0's key state, when
// l0 supports it.
func relimit(l0 bulwark.Limiter, l bulwark.Limit) (bulwark.Limiter, bool) {
	var out bulwark.Limiter
	var err error
	switch x := l0.(type) {
	case *local.TokenBucket:
		out, err = x.Relimit(l)
	case *local.SlidingWindow:
		out, err = x.Relimit(l)
	case *local.FixedWindow:
		out, err = x.Relimit(l)
	default:
		return nil, false
	}
	return out, err == nil
}

// unrelimit undoes what relimit did to l0's shared state when the update
// that called it fails: the token bucket's reset times go back to its own
// rate.
func unrelimit(l0 bulwark.Limiter) {
	if tb, ok := l0.(*local.TokenBucket); ok {
		_, _ = tb.Relimit(tb.Limit())
	}
}

// localBulkhead returns p's bulkhead when it is a local one.
func (p *Parts) localBulkhead() (*local.Bulkhead, bool) {
	if p == nil || p.Bulkhead == nil {
		return nil, false
	}
	b, ok := p.Bulkhead.(*local.Bulkhead)
	return b, ok
}

// localBreaker returns p's breaker when it is a local one.
func (p *Parts) localBreaker() (*local.Breaker, bool) {
	if p == nil || p.breaker == nil {
		return nil, false
	}
	b, ok := p.breaker.(*local.Breaker)
	return b, ok
}

// inPlaceBreaker reports whether a local breaker configured as old can
// take next by Reconfigure: only its thresholds differ.
func inPlaceBreaker(old, next bulwark.BreakerConfig) bool {
	return next.Validate() == nil && old.Window == next.Window && old.SlowCall == next.SlowCall &&
		old.HalfOpenCalls == next.HalfOpenCalls
}

// forced wraps b with the override of circuitbreaker.force; a rejection
// is reported to obs as an EventBreakerRejected.
func forced(b bulwark.Breaker, force string, obs bulwark.Observer, clk bulwark.Clock, name string) bulwark.Breaker {
	if b == nil || force == "" {
		return b
	}
	return forcedBreaker{b: b, open: force == ForceOpen, obs: obs, clk: clk, name: name}
}

// forcedBreaker is a breaker whose state an operator fixed: open rejects
// every call, closed admits every call; the breaker underneath is neither
// asked nor told, so its counts resume when the override goes.
type forcedBreaker struct {
	b    bulwark.Breaker
	open bool
	obs  bulwark.Observer
	clk  bulwark.Clock
	name string
}

var errForcedOpen = &forcedOpenError{}

type forcedOpenError struct{}

func (*forcedOpenError) Error() string {
	return bulwark.ErrOpen.Error() + " (forced open by configuration)"
}
func (*forcedOpenError) Unwrap() error { return bulwark.ErrOpen }

func noOutcome(bool) {}

// Allow rejects with an error matching bulwark.ErrOpen when forced open,
// and admits without counting when forced closed.
func (f forcedBreaker) Allow(ctx context.Context) (func(bool), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.open {
		if f.obs != nil {
			f.obs.Observe(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: "breaker", Name: f.name,
				Time: f.clk.Now(), To: bulwark.Open, Err: errForcedOpen})
		}
		return nil, errForcedOpen
	}
	return noOutcome, nil
}

// State returns Open or Closed, as forced.
func (f forcedBreaker) State(context.Context) bulwark.State {
	if f.open {
		return bulwark.Open
	}
	return bulwark.Closed
}

// IsForced reports whether err is the rejection of a breaker forced open by
// circuitbreaker.force.
func IsForced(err error) bool {
	var f *forcedOpenError
	return errors.As(err, &f)
}

// retiringBulkhead is a fleet-wide bulkhead that a live update replaced:
// its leases must stay renewed until their holders release them, so it is
// closed only once the last one is released (Retire), or at once by the
// Stack's Close.
type retiringBulkhead struct {
	b       *distributed.Bulkhead
	held    atomic.Int64
	retired atomic.Bool
	once    sync.Once
}

// Acquire takes a slot of the underlying bulkhead, counting it held.
func (r *retiringBulkhead) Acquire(ctx context.Context) (func(), error) {
	r.held.Add(1)
	release, err := r.b.Acquire(ctx)
	if err != nil {
		r.done()
		return nil, err
	}
	var released atomic.Bool
	return func() {
		if released.Swap(true) {
			return
		}
		release()
		r.done()
	}, nil
}

func (r *retiringBulkhead) done() {
	if r.held.Add(-1) == 0 && r.retired.Load() {
		r.close()
	}
}

// Retire closes the bulkhead once no slot of it is held.
func (r *retiringBulkhead) Retire() {
	r.retired.Store(true)
	if r.held.Load() == 0 {
		r.close()
	}
}

func (r *retiringBulkhead) close() { r.once.Do(func() { _ = r.b.Close() }) }

// Close closes the bulkhead now: held leases stop being renewed.
func (r *retiringBulkhead) Close() error {
	r.close()
	return nil
}

// Unwrap returns the distributed bulkhead.
func (r *retiringBulkhead) Unwrap() *distributed.Bulkhead { return r.b }
