package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Errors of the retry policy.
var (
	// ErrRetriesExhausted is matched (errors.Is) by the [*RetryError] a
	// [Retry] returns when every attempt failed.
	ErrRetriesExhausted = errors.New("bulwark: retries exhausted")
	// ErrBudgetExhausted is matched by the [*RetryError] a [Retry] returns
	// when its [RetryBudget] refused a retry, and by the rejection a [Hedge]
	// reports when it refused a hedge.
	ErrBudgetExhausted = errors.New("bulwark: retry budget exhausted")
)

// RetryError is what a [Retry] returns when it gives up: it matches
// [ErrRetriesExhausted], or [ErrBudgetExhausted] when the budget stopped it,
// and unwraps to the last attempt's error (nil when the last attempt
// succeeded but its result was rejected by RetryIfResult).
type RetryError struct {
	Attempts int   // attempts made
	Budget   bool  // true when the retry budget refused the next attempt
	Err      error // the last attempt's error, possibly nil
}

// Error says why the retry gave up and what the last failure was.
func (e *RetryError) Error() string {
	why := "retries exhausted"
	if e.Budget {
		why = "retry budget exhausted"
	}
	if e.Err == nil {
		return fmt.Sprintf("bulwark: %s after %d attempts: result rejected", why, e.Attempts)
	}
	return fmt.Sprintf("bulwark: %s after %d attempts: %v", why, e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrRetriesExhausted] or, when the budget
// stopped the retry, [ErrBudgetExhausted].
func (e *RetryError) Is(target error) bool {
	return target == ErrRetriesExhausted || (e.Budget && target == ErrBudgetExhausted)
}

// Backoff says how the delay before a retry grows with the retry number k
// (k = 1 before the second attempt).
type Backoff uint8

// The back-off shapes. Every delay is capped at RetryConfig.MaxDelay when
// that is set.
const (
	// BackoffConstant waits Delay before every retry.
	BackoffConstant Backoff = iota
	// BackoffLinear waits k × Delay before retry k.
	BackoffLinear
	// BackoffExponential waits Delay × Multiplier^(k-1) before retry k.
	BackoffExponential
)

// Jitter says how a back-off delay d is randomised, with r uniform in
// [0,1), so that clients that failed together do not retry together.
type Jitter uint8

// The jitter modes.
const (
	// JitterNone waits exactly d.
	JitterNone Jitter = iota
	// JitterFull waits r × d: uniform in [0, d).
	JitterFull
	// JitterEqual waits d/2 + r × d/2: uniform in [d/2, d).
	JitterEqual
	// JitterDecorrelated ignores Backoff and waits
	// min(MaxDelay, Delay + r × (3 × previous − Delay)), where previous is
	// the last wait (Delay before the first retry): the delay grows about
	// threefold per retry on average, with wide spread. It needs MaxDelay.
	JitterDecorrelated
)

// RetryConfig is the shape of a [Retry] for calls returning T.
//
// Worked example: {MaxAttempts: 4, Backoff: BackoffExponential, Delay:
// 100ms, MaxDelay: 1s} tries once, then retries after 100ms, 200ms and
// 400ms; with JitterFull each wait is drawn uniformly below those values.
type RetryConfig[T any] struct {
	// MaxAttempts is the number of attempts, the first included: 3 means
	// at most two retries. At least 1.
	MaxAttempts int
	// Backoff shapes the delays; Delay is its base and MaxDelay its cap
	// (0: no cap). Multiplier is the exponential growth factor, at least 1
	// (0 means 2).
	Backoff    Backoff
	Delay      time.Duration
	MaxDelay   time.Duration
	Multiplier float64
	// Jitter randomises each delay; Rand is its source of uniform numbers
	// in [0,1) (nil: math/rand/v2). Tests inject a fixed sequence.
	Jitter Jitter
	Rand   func() float64
	// RetryIf decides whether an error is worth another attempt; nil means
	// every error. It is checked with errors.Is-friendly predicates such as
	// func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }.
	RetryIf func(error) bool
	// RetryIfResult decides whether a successful result is worth another
	// attempt (a "try again later" reply); nil means none.
	RetryIfResult func(T) bool
	// RetryRejections also retries rejections by protective policies:
	// errors matching bulwark.ErrOpen, ErrRateLimited or ErrBulkheadFull.
	// By default they end the retry at once, so that retries cannot hammer
	// a breaker that is open or a limit that is reached. When set, a
	// rejection carrying a RetryAfter (a *bulwark.RateLimitedError) is
	// waited out at least that long.
	RetryRejections bool
	// Budget, when set, caps retries at a share of recent calls (see
	// [RetryBudget]); one budget may be shared by many policies.
	Budget *RetryBudget
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when
// MaxAttempts < 1, a delay is negative, Multiplier is neither 0 nor a finite
// number >= 1, Backoff or Jitter is unknown, or JitterDecorrelated is used
// without MaxDelay or with Delay = 0.
func (c RetryConfig[T]) Validate() error {
	switch {
	case c.MaxAttempts < 1:
		return core.ConfigError("retry max attempts must be at least 1, got %d", c.MaxAttempts)
	case c.Delay < 0:
		return core.ConfigError("retry delay must not be negative, got %v", c.Delay)
	case c.MaxDelay < 0:
		return core.ConfigError("retry max delay must not be negative, got %v", c.MaxDelay)
	case c.Multiplier != 0 && !(c.Multiplier >= 1 && !math.IsInf(c.Multiplier, 0)):
		return core.ConfigError("retry multiplier must be 0 (default 2) or a finite number >= 1, got %v", c.Multiplier)
	case c.Backoff > BackoffExponential:
		return core.ConfigError("unknown retry backoff %d", c.Backoff)
	case c.Jitter > JitterDecorrelated:
		return core.ConfigError("unknown retry jitter %d", c.Jitter)
	case c.Jitter == JitterDecorrelated && (c.MaxDelay == 0 || c.Delay == 0):
		return core.ConfigError("decorrelated jitter needs a positive Delay and MaxDelay")
	}
	return nil
}

// String summarises the configuration.
func (c RetryConfig[T]) String() string {
	names := [...]string{"constant", "linear", "exponential"}
	jit := [...]string{"none", "full", "equal", "decorrelated"}
	b, j := "?", "?"
	if int(c.Backoff) < len(names) {
		b = names[c.Backoff]
	}
	if int(c.Jitter) < len(jit) {
		j = jit[c.Jitter]
	}
	return fmt.Sprintf("retry{attempts %d, %s %v max %v, jitter %s}", c.MaxAttempts, b, c.Delay, c.MaxDelay, j)
}

// Retry runs the rest of a composition again when it fails, waiting a
// back-off between attempts. It is a bulwark.ResultPolicy for results of
// type T (T matters only with RetryIfResult; without it a Retry[T] fits any
// composition).
//
// Between attempts it waits on a timer from the injected clock and stops at
// once when ctx is done, returning ctx's error joined with the last
// failure. It never retries rejections (ErrOpen, ErrRateLimited,
// ErrBulkheadFull) unless RetryRejections is set. Each retry emits an
// EventRetry (Attempt: the attempt about to run, Duration: the wait, Err: the
// failure). Safe for concurrent use; a run without failures allocates
// nothing.
type Retry[T any] struct {
	cfg   RetryConfig[T]
	mult  float64
	rand  func() float64
	clock bulwark.Clock
	obs   bulwark.Observer
	name  string
}

var _ bulwark.ResultPolicy = (*Retry[int])(nil)

// NewRetry returns a retry policy; options WithClock (whose timers drive the
// back-off), WithObserver and WithName apply. A bad configuration is an
// error wrapping bulwark.ErrInvalidConfig.
func NewRetry[T any](cfg RetryConfig[T], opts ...Option) (*Retry[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	r := &Retry[T]{cfg: cfg, mult: cfg.Multiplier, rand: cfg.Rand, clock: o.clock, obs: o.observer, name: o.name}
	if r.mult == 0 {
		r.mult = 2
	}
	if r.rand == nil {
		r.rand = rand.Float64
	}
	return r, nil
}

// AcceptsResult reports whether slot is a *T, or true for any slot when no
// RetryIfResult is set.
func (r *Retry[T]) AcceptsResult(slot any) bool {
	if r.cfg.RetryIfResult == nil {
		return true
	}
	_, ok := slot.(*T)
	return ok
}

// isRejection reports whether err is a "no" from a protective policy.
func isRejection(err error) bool {
	return errors.Is(err, bulwark.ErrOpen) || errors.Is(err, bulwark.ErrRateLimited) || errors.Is(err, bulwark.ErrBulkheadFull)
}

// Run runs next until it succeeds, the error is not worth retrying, the
// attempts or the budget run out, or ctx is done.
func (r *Retry[T]) Run(ctx context.Context, next bulwark.Next) error {
	var slot *T
	if r.cfg.RetryIfResult != nil {
		var ok bool
		if slot, ok = bulwark.ResultOf[T](next); !ok {
			return core.ArgumentError("retry: composition result is not of the retry's type")
		}
	}
	if r.cfg.Budget != nil {
		r.cfg.Budget.Deposit()
	}
	prev := r.cfg.Delay
	for attempt := 1; ; attempt++ {
		err := next.Run(ctx)
		if err == nil {
			if slot == nil || !r.cfg.RetryIfResult(*slot) {
				return nil
			}
		} else {
			if isRejection(err) && !r.cfg.RetryRejections {
				return err
			}
			if r.cfg.RetryIf != nil && !r.cfg.RetryIf(err) {
				return err
			}
		}
		if attempt >= r.cfg.MaxAttempts {
			return &RetryError{Attempts: attempt, Err: err}
		}
		if cerr := ctx.Err(); cerr != nil {
			return joinCtx(cerr, err)
		}
		if r.cfg.Budget != nil && !r.cfg.Budget.Withdraw() {
			return &RetryError{Attempts: attempt, Budget: true, Err: err}
		}
		d := r.delay(attempt, &prev)
		if r.cfg.RetryRejections {
			var rl *bulwark.RateLimitedError
			if errors.As(err, &rl) && rl.RetryAfter > d {
				d = rl.RetryAfter
			}
		}
		core.Emit(r.obs, bulwark.Event{Kind: bulwark.EventRetry, Pattern: "retry", Name: r.name,
			Time: r.clock.Now(), Attempt: attempt + 1, Duration: d, Err: err})
		if cerr := sleep(ctx, r.clock, d); cerr != nil {
			return joinCtx(cerr, err)
		}
	}
}

// joinCtx reports that ctx ended a retry, keeping the last failure
// matchable too.
func joinCtx(cerr, last error) error {
	if last == nil || errors.Is(last, cerr) {
		return cerr
	}
	return fmt.Errorf("%w (last attempt: %w)", cerr, last)
}

// delay returns the wait before retry k (k >= 1); prev holds the previous
// wait for decorrelated jitter.
func (r *Retry[T]) delay(k int, prev *time.Duration) time.Duration {
	c := &r.cfg
	if c.Jitter == JitterDecorrelated {
		lo, hi := float64(c.Delay), 3*float64(*prev)
		d := min(lo+r.rand()*(hi-lo), float64(c.MaxDelay))
		*prev = time.Duration(d)
		return *prev
	}
	var d float64
	switch c.Backoff {
	case BackoffConstant:
		d = float64(c.Delay)
	case BackoffLinear:
		d = float64(c.Delay) * float64(k)
	case BackoffExponential:
		d = float64(c.Delay) * math.Pow(r.mult, float64(k-1))
	}
	if c.MaxDelay > 0 && d > float64(c.MaxDelay) {
		d = float64(c.MaxDelay)
	}
	if d > math.MaxInt64/2 {
		d = math.MaxInt64 / 2
	}
	switch c.Jitter {
	case JitterFull:
		d *= r.rand()
	case JitterEqual:
		d = d/2 + r.rand()*d/2
	}
	return time.Duration(d)
}

// sleep waits d on clock's timer, or until ctx is done (returning its
// error).
func sleep(ctx context.Context, clock bulwark.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := core.NewTimer(clock, d)
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}

// BudgetConfig is the shape of a [RetryBudget].
//
// Worked example: {Ratio: 0.2, MinPerSecond: 1, Window: 10s} allows, over
// the last ten seconds, 20% as many retries as calls plus 10 more; with 100
// calls in the window, at most 30 retries.
type BudgetConfig struct {
	// Ratio is the retries allowed per call, e.g. 0.2; in [0, 1000].
	Ratio float64
	// MinPerSecond is a floor: retries always allowed per second of
	// Window, however few calls there were (so that a quiet service can
	// still retry); at least 0. Ratio and MinPerSecond may not both be 0.
	MinPerSecond float64
	// Window is how far back calls and retries count, at least 10ms. It is
	// kept in ten buckets, so counts leave the window in steps of Window/10.
	Window time.Duration
}

// DefaultBudgetConfig allows retries up to 20% of the calls of the last 10
// seconds, plus 10 retries per second.
func DefaultBudgetConfig() BudgetConfig {
	return BudgetConfig{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c BudgetConfig) Validate() error {
	switch {
	case math.IsNaN(c.Ratio) || c.Ratio < 0 || c.Ratio > 1000:
		return core.ConfigError("retry budget ratio must be in [0,1000], got %v", c.Ratio)
	case math.IsNaN(c.MinPerSecond) || c.MinPerSecond < 0 || math.IsInf(c.MinPerSecond, 0):
		return core.ConfigError("retry budget min per second must be a finite number >= 0, got %v", c.MinPerSecond)
	case c.Ratio == 0 && c.MinPerSecond == 0:
		return core.ConfigError("retry budget allows no retry at all: set Ratio or MinPerSecond")
	case c.Window < 10*time.Millisecond:
		return core.ConfigError("retry budget window must be at least 10ms, got %v", c.Window)
	}
	return nil
}

const budgetBuckets = 10

type budgetBucket struct {
	epoch   int64 // bucket index: time / bucket width
	calls   int64
	retries int64
}

// RetryBudget caps retries at a share of recent traffic, so that retries
// cannot amplify an outage: when every call fails, a plain retry policy
// with 3 attempts triples the load on a dependency that is already down;
// with a budget of ratio 0.2 the load grows by at most 20% (plus the
// per-second floor).
//
// It works like a token account over a sliding window (in the manner of
// Finagle's and Envoy's retry budgets): every call deposits Ratio tokens,
// every retry withdraws one, and a retry is allowed only while the
// withdrawals of the window stay within its deposits plus MinPerSecond ×
// Window. Calls and retries are counted in ten time buckets on the injected
// clock.
//
// One budget may be shared by several [Retry] and [Hedge] policies (for one
// dependency). Safe for concurrent use; Deposit and Withdraw allocate
// nothing. A refused withdrawal emits an EventRejected with Err
// ErrBudgetExhausted.
type RetryBudget struct {
	mu      sync.Mutex
	cfg     BudgetConfig
	width   int64 // bucket width in ns
	floor   float64
	buckets [budgetBuckets]budgetBucket
	clock   bulwark.Clock
	obs     bulwark.Observer
	name    string
}

// NewRetryBudget returns a budget; options WithClock, WithObserver and
// WithName apply.
func NewRetryBudget(cfg BudgetConfig, opts ...Option) (*RetryBudget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &RetryBudget{cfg: cfg, width: int64(cfg.Window) / budgetBuckets, clock: o.clock, obs: o.observer, name: o.name}
	b.floor = cfg.MinPerSecond * cfg.Window.Seconds()
	for i := range b.buckets {
		b.buckets[i].epoch = math.MinInt64
	}
	return b, nil
}

// bucket returns the current bucket, reset if it is stale. Requires b.mu.
func (b *RetryBudget) bucket(epoch int64) *budgetBucket {
	bk := &b.buckets[uint64(epoch)%budgetBuckets]
	if bk.epoch != epoch {
		*bk = budgetBucket{epoch: epoch}
	}
	return bk
}

// totals sums the buckets inside the window ending at epoch. Requires b.mu.
func (b *RetryBudget) totals(epoch int64) (calls, retries int64) {
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bk.epoch > epoch-budgetBuckets && bk.epoch <= epoch {
			calls += bk.calls
			retries += bk.retries
		}
	}
	return calls, retries
}

func (b *RetryBudget) epoch() int64 { return b.clock.Now().UnixNano() / b.width }

// Deposit records one call (not a retry).
func (b *RetryBudget) Deposit() {
	e := b.epoch()
	b.mu.Lock()
	b.bucket(e).calls++
	b.mu.Unlock()
}

// Withdraw asks for one retry: it reports whether the budget allows it and,
// if so, records it.
func (b *RetryBudget) Withdraw() bool {
	e := b.epoch()
	b.mu.Lock()
	calls, retries := b.totals(e)
	ok := float64(retries+1) <= b.cfg.Ratio*float64(calls)+b.floor
	if ok {
		b.bucket(e).retries++
	}
	b.mu.Unlock()
	if !ok {
		core.Emit(b.obs, bulwark.Event{Kind: bulwark.EventRejected, Pattern: "retry_budget", Name: b.name,
			Time: b.clock.Now(), Err: ErrBudgetExhausted})
	}
	return ok
}

// Available returns how many retries the budget would allow now.
func (b *RetryBudget) Available() int {
	e := b.epoch()
	b.mu.Lock()
	calls, retries := b.totals(e)
	b.mu.Unlock()
	n := math.Floor(b.cfg.Ratio*float64(calls) + b.floor - float64(retries))
	return int(max(n, 0))
}
