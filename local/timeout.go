package local

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// TimeoutError is what a [Timeout] returns when the call ran past its
// budget. It matches bulwark.ErrTimeout with errors.Is. It is also the
// cause (context.Cause) of the ctx the abandoned call saw.
type TimeoutError struct {
	Timeout time.Duration // the budget that ran out
}

// Error says how long the budget was.
func (e *TimeoutError) Error() string { return fmt.Sprintf("bulwark: timeout after %v", e.Timeout) }

// Is reports whether target is bulwark.ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == bulwark.ErrTimeout }

// Timeout bounds the rest of a composition in time, through its ctx.
//
// The call runs on the caller's goroutine with a ctx that is cancelled when
// the budget runs out; its cause is the policy's *TimeoutError. When the
// call returns after that, Run returns the *TimeoutError (matching
// bulwark.ErrTimeout) whatever the call returned, and emits an
// EventTimeout. The bound is cooperative: a call that ignores its ctx is
// cancelled but not interrupted, so Run returns when the call does. A ctx
// that ends earlier (the caller's deadline) wins, and its error is
// returned as the call returned it.
//
// With the system clock the ctx carries a real deadline (ctx.Deadline), so
// network clients below see it. With an injected bulwark.TimerClock (a fake
// clock in tests) a short-lived goroutine cancels the ctx when the clock's
// timer fires; it ends before Run returns.
//
// Safe for concurrent use. Each run allocates the derived context.
type Timeout struct {
	d      time.Duration
	err    *TimeoutError
	timers bulwark.TimerClock // non-nil for an injected timer clock
	clock  bulwark.Clock
	obs    bulwark.Observer
	name   string
}

var _ bulwark.Policy = (*Timeout)(nil)

// NewTimeout returns a timeout of d, which must be positive (an error
// wrapping bulwark.ErrInvalidConfig otherwise). Options WithClock,
// WithObserver and WithName apply.
func NewTimeout(d time.Duration, opts ...Option) (*Timeout, error) {
	if d <= 0 {
		return nil, core.ConfigError("timeout must be positive, got %v", d)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	t := &Timeout{d: d, err: &TimeoutError{Timeout: d}, clock: o.clock, obs: o.observer, name: o.name}
	if tc, ok := o.clock.(bulwark.TimerClock); ok && o.clock != bulwark.SystemClock {
		t.timers = tc
	}
	return t, nil
}

// Duration returns the budget.
func (t *Timeout) Duration() time.Duration { return t.d }

// Run runs next with a ctx bounded by the budget.
func (t *Timeout) Run(ctx context.Context, next bulwark.Next) error {
	var err error
	var cctx context.Context
	if t.timers == nil {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeoutCause(ctx, t.d, t.err)
		defer cancel()
		err = next.Run(cctx)
	} else {
		cctx, err = t.runOnTimer(ctx, next)
	}
	if context.Cause(cctx) == error(t.err) {
		core.Emit(t.obs, bulwark.Event{Kind: bulwark.EventTimeout, Pattern: "timeout", Name: t.name,
			Time: t.clock.Now(), Duration: t.d, Err: t.err})
		return t.err
	}
	return err
}

// runOnTimer runs next with a ctx cancelled by the injected clock's timer.
// The goroutine waiting for the timer ends before it returns, even when
// next panics.
func (t *Timeout) runOnTimer(ctx context.Context, next bulwark.Next) (context.Context, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	timer := t.timers.NewTimer(t.d)
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-timer.C():
			cancel(t.err)
		case <-stop:
			timer.Stop()
		}
	}()
	defer func() {
		close(stop)
		<-exited
		cancel(nil)
	}()
	return cctx, next.Run(cctx)
}
