package local

import (
	"context"
	"fmt"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// FallbackStep is one alternative of a [Fallback]: when When accepts the
// current error (nil When accepts every error), Func is called and its
// result replaces the failure; a nil Func means Value is the answer.
type FallbackStep[T any] struct {
	When  func(err error) bool
	Func  func(ctx context.Context, err error) (T, error)
	Value T
}

// FallbackValue is a step that answers v for every failure.
func FallbackValue[T any](v T) FallbackStep[T] { return FallbackStep[T]{Value: v} }

// FallbackFunc is a step that calls f for every failure.
func FallbackFunc[T any](f func(ctx context.Context, err error) (T, error)) FallbackStep[T] {
	return FallbackStep[T]{Func: f}
}

// Fallback replaces a failure of the rest of the composition with an
// alternative answer. It is a bulwark.ResultPolicy for results of type T.
//
// On failure it walks its steps in order, forming a chain: a step applies
// when its When accepts the current error (first the call's error, then the
// error of the last step that failed); a value step ends the chain, a
// function step ends it when it succeeds and otherwise passes its error on.
// When no step succeeds, Run returns the call's error, wrapping the last
// step's error too when there is one. Each replacement emits an
// EventFallback whose Err is the call's error and whose Attempt is the
// position of the step that answered, from 1.
//
// Steps run with the ctx the fallback received, on the caller's goroutine.
// Safe for concurrent use; a run without failure allocates nothing.
type Fallback[T any] struct {
	steps []FallbackStep[T]
	clock bulwark.Clock
	obs   bulwark.Observer
	name  string
}

var _ bulwark.ResultPolicy = (*Fallback[int])(nil)

// NewFallback returns a fallback trying steps in order; at least one step
// is needed (an error wrapping bulwark.ErrInvalidConfig otherwise). Options
// WithObserver, WithName and WithClock (for event times) apply.
func NewFallback[T any](steps []FallbackStep[T], opts ...Option) (*Fallback[T], error) {
	if len(steps) == 0 {
		return nil, core.ConfigError("fallback needs at least one step")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Fallback[T]{steps: append([]FallbackStep[T](nil), steps...), clock: o.clock, obs: o.observer, name: o.name}, nil
}

// AcceptsResult reports whether slot is a *T.
func (f *Fallback[T]) AcceptsResult(slot any) bool {
	_, ok := slot.(*T)
	return ok
}

// Run runs next and, when it fails, the fallback chain.
func (f *Fallback[T]) Run(ctx context.Context, next bulwark.Next) error {
	err := next.Run(ctx)
	if err == nil {
		return nil
	}
	slot, ok := bulwark.ResultOf[T](next)
	if !ok {
		return fmt.Errorf("%w (fallback not applied: %w)", err,
			core.ArgumentError("composition result is not of the fallback's type"))
	}
	cur := err
	for i := range f.steps {
		s := &f.steps[i]
		if s.When != nil && !s.When(cur) {
			continue
		}
		v := s.Value
		if s.Func != nil {
			var ferr error
			if v, ferr = s.Func(ctx, cur); ferr != nil {
				cur = ferr
				continue
			}
		}
		*slot = v
		core.Emit(f.obs, bulwark.Event{Kind: bulwark.EventFallback, Pattern: "fallback", Name: f.name,
			Time: f.clock.Now(), Attempt: i + 1, Err: err})
		return nil
	}
	if cur != err {
		return fmt.Errorf("%w (fallback failed: %w)", err, cur)
	}
	return err
}
