package local

import (
	"context"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// HedgeConfig is the shape of a [Hedge].
//
// Worked example: {Delay: 50ms, MaxHedges: 2} starts the call; if no
// attempt has succeeded after 50ms it starts a second one, after 100ms a
// third; the first to succeed wins.
type HedgeConfig struct {
	// Delay is how long to wait for a success before starting each extra
	// attempt; positive. Set it near the call's p95 latency so that only
	// the slow tail is hedged.
	Delay time.Duration
	// MaxHedges is how many extra attempts may start, at least 1.
	MaxHedges int
	// Budget, when set, must allow each extra attempt (one withdrawal per
	// hedge, one deposit per run), so hedging cannot multiply the load of a
	// struggling dependency. It may be shared with [Retry] policies.
	Budget *RetryBudget
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when Delay is
// not positive or MaxHedges < 1.
func (c HedgeConfig) Validate() error {
	switch {
	case c.Delay <= 0:
		return core.ConfigError("hedge delay must be positive, got %v", c.Delay)
	case c.MaxHedges < 1:
		return core.ConfigError("hedge max hedges must be at least 1, got %d", c.MaxHedges)
	}
	return nil
}

// Hedge cuts tail latency by racing attempts: it starts the rest of the
// composition, and each time Delay passes without a success it starts one
// more attempt, up to MaxHedges extra. The first success wins: its result
// becomes the call's (each attempt writes to its own slot through
// bulwark.Next.Fork), and every other attempt's ctx is cancelled.
//
// Failures: an attempt that fails does not stop the others; when every
// attempt started so far has failed, Run returns the last failure at once
// without starting the remaining hedges (trying again after failures is
// the business of [Retry]). When ctx is done, Run returns its error.
//
// Attempts run on goroutines of their own. An attempt that panics does not
// kill the process from there: Run re-panics with its value on the
// caller's goroutine, as the call would have unhedged (the panic of an
// attempt that ends after Run returned is dropped). Run returns as soon as
// a winner is known; the cancelled losers end when their calls honour their ctx,
// which they must. Each extra attempt emits an EventHedge (Attempt: 2 for
// the first hedge). Only idempotent calls should be hedged.
//
// Safe for concurrent use. Each run allocates (goroutines, channel, ctx,
// result slots).
type Hedge struct {
	cfg   HedgeConfig
	clock bulwark.Clock
	obs   bulwark.Observer
	name  string
}

var _ bulwark.Policy = (*Hedge)(nil)

// NewHedge returns a hedging policy; options WithClock (whose timers drive
// the hedge delays), WithObserver and WithName apply.
func NewHedge(cfg HedgeConfig, opts ...Option) (*Hedge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Hedge{cfg: cfg, clock: o.clock, obs: o.observer, name: o.name}, nil
}

type hedgeResult struct {
	next     bulwark.Next
	err      error
	panicked bool
	value    any // what the attempt panicked with
}

// Run races attempts of next as described on [Hedge].
func (h *Hedge) Run(ctx context.Context, next bulwark.Next) error {
	if h.cfg.Budget != nil {
		h.cfg.Budget.Deposit()
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel() // cancels every attempt still running
	results := make(chan hedgeResult, h.cfg.MaxHedges+1)
	start := func() {
		f := next.Fork()
		go func() {
			r := hedgeResult{next: f}
			defer func() {
				// An attempt runs on a goroutine of the policy: its panic is
				// handed to the caller, who re-panics with it on its own
				// goroutine (as an unhedged call would), instead of
				// killing the process from here.
				if v := recover(); v != nil {
					r.panicked, r.value = true, v
				}
				results <- r
			}()
			r.err = f.Run(actx)
		}()
	}
	start()
	started, running := 1, 1
	var timer bulwark.Timer
	var fire <-chan time.Time
	arm := func() {
		timer, fire = nil, nil
		if started <= h.cfg.MaxHedges {
			timer = core.NewTimer(h.clock, h.cfg.Delay)
			fire = timer.C()
		}
	}
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
	}
	arm()
	for {
		select {
		case r := <-results:
			running--
			if r.panicked {
				stop()
				panic(r.value)
			}
			if r.err == nil {
				stop()
				next.Adopt(r.next)
				return nil
			}
			if running == 0 {
				stop()
				return r.err
			}
		case <-fire:
			if h.cfg.Budget != nil && !h.cfg.Budget.Withdraw() {
				timer, fire = nil, nil
				continue
			}
			start()
			started++
			running++
			core.Emit(h.obs, bulwark.Event{Kind: bulwark.EventHedge, Pattern: "hedge", Name: h.name,
				Time: h.clock.Now(), Attempt: started, Duration: h.cfg.Delay})
			arm()
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}
