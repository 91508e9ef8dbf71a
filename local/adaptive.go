package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// rejection is a sentinel error that also matches a root sentinel, so that
// code that only knows package bulwark (an HTTP middleware mapping
// ErrBulkheadFull to 503) handles it too.
type rejection struct {
	msg  string
	also error
}

// Error returns the rejection message.
func (e *rejection) Error() string { return e.msg }

// Is reports whether target is the root sentinel this rejection stands for.
func (e *rejection) Is(target error) bool { return target == e.also }

// ErrLimitExceeded is returned by an [AdaptiveLimiter] that is saturated:
// as many calls are in flight as its current limit. It also matches
// bulwark.ErrBulkheadFull, since an adaptive limiter is a bulkhead whose
// size moves, so callers that map bulkhead rejections (to HTTP 503, say)
// need nothing new; a [Retry] does not retry it by default.
var ErrLimitExceeded error = &rejection{msg: "bulwark: adaptive concurrency limit exceeded", also: bulwark.ErrBulkheadFull}

// AdaptiveAlgorithm chooses how an [AdaptiveLimiter] moves its limit.
type AdaptiveAlgorithm uint8

// The algorithms.
const (
	// AIMD (additive increase, multiplicative decrease): after a drop (an
	// error counted by IsDrop, or a call slower than LatencyThreshold) the
	// limit is multiplied by BackoffRatio; after a good call, while at
	// least half the limit is in use, it grows by 1.
	AIMD AdaptiveAlgorithm = iota
	// Gradient, in the manner of Netflix's concurrency-limits: the limit
	// follows the ratio of the no-load latency (the smallest recent
	// latency) to the latency of each call:
	//
	//	gradient = clamp(Tolerance × rttNoLoad / rtt, 0.5, 1)
	//	target   = limit × gradient + √limit
	//	limit    = limit × (1 − Smoothing) + target × Smoothing
	//
	// so the limit grows by about √limit × Smoothing per call while
	// latency stays within Tolerance of the no-load latency (the √limit
	// term is the queue allowed to build) and shrinks as latency rises. A
	// drop multiplies the limit by BackoffRatio. rttNoLoad is the minimum
	// latency seen, re-measured every ProbeInterval samples so that it
	// can follow a lasting change.
	Gradient
)

// AdaptiveConfig is the shape of an [AdaptiveLimiter].
type AdaptiveConfig struct {
	Algorithm AdaptiveAlgorithm
	// InitialLimit, MinLimit and MaxLimit bound the limit:
	// 1 <= MinLimit <= InitialLimit <= MaxLimit.
	InitialLimit, MinLimit, MaxLimit int
	// BackoffRatio is the factor applied to the limit on a drop, in
	// [0.1, 1) (0 means 0.9).
	BackoffRatio float64
	// LatencyThreshold (AIMD): a call slower than this counts as a drop
	// (0: only errors do).
	LatencyThreshold time.Duration
	// Smoothing (Gradient): how fast the limit moves toward its target,
	// in (0,1] (0 means 0.2).
	Smoothing float64
	// Tolerance (Gradient): how many times the no-load latency is still
	// healthy, at least 1 (0 means 1.5).
	Tolerance float64
	// ProbeInterval (Gradient): after this many samples the no-load
	// latency is measured afresh, at least 10 (0 means 1000).
	ProbeInterval int
	// IsDrop says which call errors mean overload; nil means every error
	// except context.Canceled (the caller gave up).
	IsDrop func(error) bool
}

// DefaultAdaptiveConfig is an AIMD limiter between 1 and 200 that starts at
// 20 calls in flight.
func DefaultAdaptiveConfig() AdaptiveConfig {
	return AdaptiveConfig{Algorithm: AIMD, InitialLimit: 20, MinLimit: 1, MaxLimit: 200, BackoffRatio: 0.9}
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c AdaptiveConfig) Validate() error {
	switch {
	case c.Algorithm > Gradient:
		return core.ConfigError("unknown adaptive algorithm %d", c.Algorithm)
	case c.MinLimit < 1:
		return core.ConfigError("adaptive min limit must be at least 1, got %d", c.MinLimit)
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return core.ConfigError("adaptive limits must satisfy min <= initial <= max, got %d <= %d <= %d",
			c.MinLimit, c.InitialLimit, c.MaxLimit)
	case c.BackoffRatio != 0 && !(c.BackoffRatio >= 0.1 && c.BackoffRatio < 1):
		return core.ConfigError("adaptive backoff ratio must be in [0.1,1), got %v", c.BackoffRatio)
	case c.LatencyThreshold < 0:
		return core.ConfigError("adaptive latency threshold must not be negative, got %v", c.LatencyThreshold)
	case c.Smoothing != 0 && !(c.Smoothing > 0 && c.Smoothing <= 1):
		return core.ConfigError("adaptive smoothing must be in (0,1], got %v", c.Smoothing)
	case c.Tolerance != 0 && !(c.Tolerance >= 1 && !math.IsInf(c.Tolerance, 0)):
		return core.ConfigError("adaptive tolerance must be a finite number >= 1, got %v", c.Tolerance)
	case c.ProbeInterval != 0 && c.ProbeInterval < 10:
		return core.ConfigError("adaptive probe interval must be at least 10, got %d", c.ProbeInterval)
	}
	return nil
}

// String summarises the configuration.
func (c AdaptiveConfig) String() string {
	alg := "aimd"
	if c.Algorithm == Gradient {
		alg = "gradient"
	}
	return fmt.Sprintf("adaptive{%s, limit %d in [%d,%d]}", alg, c.InitialLimit, c.MinLimit, c.MaxLimit)
}

// AdaptiveLimiter is a concurrency limit that finds its own size: it admits
// calls while fewer than Limit() are in flight, rejects the rest at once
// with [ErrLimitExceeded] (and an EventRejected), and after each call moves
// the limit with the configured algorithm from the call's latency (on the
// injected clock) and error, within [MinLimit, MaxLimit]. Each change of
// the whole limit emits an EventLimitChanged.
//
// Safe for concurrent use; Run allocates nothing.
type AdaptiveLimiter struct {
	mu        sync.Mutex
	cfg       AdaptiveConfig
	limit     float64
	inflight  int
	rttNoLoad time.Duration
	samples   int
	isDrop    func(error) bool
	clock     bulwark.Clock
	obs       bulwark.Observer
	name      string
}

var _ bulwark.Policy = (*AdaptiveLimiter)(nil)

// NewAdaptiveLimiter returns an adaptive limiter; options WithClock (which
// measures latency), WithObserver and WithName apply.
func NewAdaptiveLimiter(cfg AdaptiveConfig, opts ...Option) (*AdaptiveLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg.BackoffRatio == 0 {
		cfg.BackoffRatio = 0.9
	}
	if cfg.Smoothing == 0 {
		cfg.Smoothing = 0.2
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = 1.5
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 1000
	}
	a := &AdaptiveLimiter{cfg: cfg, limit: float64(cfg.InitialLimit), isDrop: cfg.IsDrop,
		clock: o.clock, obs: o.observer, name: o.name}
	if a.isDrop == nil {
		a.isDrop = isOverload
	}
	return a, nil
}

func isOverload(err error) bool { return err != nil && !errors.Is(err, context.Canceled) }

// Limit returns the current limit, rounded down.
func (a *AdaptiveLimiter) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.limit)
}

// InFlight returns how many calls are running.
func (a *AdaptiveLimiter) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inflight
}

// Run admits next when below the limit and learns from its outcome.
func (a *AdaptiveLimiter) Run(ctx context.Context, next bulwark.Next) error {
	a.mu.Lock()
	if a.inflight >= int(a.limit) {
		limit := int(a.limit)
		a.mu.Unlock()
		core.Emit(a.obs, bulwark.Event{Kind: bulwark.EventRejected, Pattern: "adaptive", Name: a.name,
			Time: a.clock.Now(), Limit: limit, Err: ErrLimitExceeded})
		return ErrLimitExceeded
	}
	a.inflight++
	a.mu.Unlock()
	start := a.clock.Now()
	done := false
	defer func() {
		if !done { // next panicked: free the slot, count a drop
			a.Observe(a.clock.Now().Sub(start), true)
		}
	}()
	err := next.Run(ctx)
	done = true
	a.Observe(a.clock.Now().Sub(start), a.isDrop(err))
	return err
}

// Observe ends one admitted call that took rtt (dropped: it failed for
// overload) and moves the limit. Run calls it; it is exported for callers
// that admit work by hand with [AdaptiveLimiter.TryAcquire].
func (a *AdaptiveLimiter) Observe(rtt time.Duration, dropped bool) {
	a.mu.Lock()
	inflight := a.inflight
	a.inflight--
	before := int(a.limit)
	a.update(inflight, rtt, dropped)
	after := int(a.limit)
	a.mu.Unlock()
	if after != before {
		core.Emit(a.obs, bulwark.Event{Kind: bulwark.EventLimitChanged, Pattern: "adaptive", Name: a.name,
			Time: a.clock.Now(), Limit: after, Duration: rtt})
	}
}

// TryAcquire admits one call if the limit allows; the caller must then end
// it with exactly one Observe.
func (a *AdaptiveLimiter) TryAcquire() bool {
	a.mu.Lock()
	ok := a.inflight < int(a.limit)
	if ok {
		a.inflight++
	}
	a.mu.Unlock()
	return ok
}

// update moves the limit after a sample. Requires a.mu held.
func (a *AdaptiveLimiter) update(inflight int, rtt time.Duration, dropped bool) {
	c := &a.cfg
	lo, hi := float64(c.MinLimit), float64(c.MaxLimit)
	switch c.Algorithm {
	case AIMD:
		if dropped || (c.LatencyThreshold > 0 && rtt > c.LatencyThreshold) {
			a.limit = max(lo, a.limit*c.BackoffRatio)
		} else if 2*inflight >= int(a.limit) {
			a.limit = min(hi, a.limit+1)
		}
	case Gradient:
		a.samples++
		if rtt < 1 {
			rtt = 1
		}
		if a.rttNoLoad == 0 || rtt < a.rttNoLoad || a.samples%c.ProbeInterval == 0 {
			a.rttNoLoad = rtt
		}
		if dropped {
			a.limit = max(lo, a.limit*c.BackoffRatio)
			return
		}
		if 2*inflight < int(a.limit) {
			return // application-limited: the sample says nothing about capacity
		}
		g := min(1, max(0.5, c.Tolerance*float64(a.rttNoLoad)/float64(rtt)))
		target := a.limit*g + math.Sqrt(a.limit)
		a.limit = min(hi, max(lo, a.limit*(1-c.Smoothing)+target*c.Smoothing))
	}
}
