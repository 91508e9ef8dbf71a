package local

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// ErrDisabled is returned by a [Toggle] running as a gate when the feature
// is off for the call.
var ErrDisabled = errors.New("bulwark: feature disabled")

// toggleScale is the resolution of a toggle's percentage: millionths.
const toggleScale = 1_000_000

// ToggleConfig is the shape of a [Toggle].
type ToggleConfig struct {
	// Percent is the share of calls for which the feature is on, in
	// [0,100]: 0 is off, 100 is on. Resolution is 0.0001%.
	Percent float64
	// Key, when set, makes percentages sticky: the same key always gets
	// the same answer for a given percentage, and raising the percentage
	// only turns more keys on (keys are placed by an FNV-1a hash). Nil
	// means a fresh random draw per call.
	Key func(ctx context.Context) string
	// Rand is the source of uniform numbers in [0,1) for random draws
	// (nil: math/rand/v2).
	Rand func() float64
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when Percent
// is outside [0,100].
func (c ToggleConfig) Validate() error { return validPercent(c.Percent) }

func validPercent(p float64) error {
	if !(p >= 0 && p <= 100) {
		return core.ConfigError("toggle percent must be in [0,100], got %v", p)
	}
	return nil
}

// Toggle is a feature switch that can be flipped, or set to a percentage,
// at run time (from an admin endpoint or a config watcher) while calls go
// through it. Reads are one atomic load; Set and SetPercent take effect for
// every call that starts after they return.
//
// As a bulwark.Policy it is a gate: when the feature is off for a call, Run
// returns [ErrDisabled] without running the rest (a [Fallback] outside can
// answer instead). [Toggle.Guard] instead switches another policy on and
// off. Changes emit an EventLimitChanged whose Limit is the new percentage
// (rounded); refused calls emit an EventRejected.
//
// Safe for concurrent use; nothing allocates.
type Toggle struct {
	threshold atomic.Uint32 // in millionths: 0 off, toggleScale on
	key       func(context.Context) string
	rand      func() float64
	clock     bulwark.Clock
	obs       bulwark.Observer
	name      string
}

var _ bulwark.Policy = (*Toggle)(nil)

// NewToggle returns a toggle; options WithObserver, WithName and WithClock
// (for event times) apply.
func NewToggle(cfg ToggleConfig, opts ...Option) (*Toggle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	t := &Toggle{key: cfg.Key, rand: cfg.Rand, clock: o.clock, obs: o.observer, name: o.name}
	if t.rand == nil {
		t.rand = rand.Float64
	}
	t.threshold.Store(scalePercent(cfg.Percent))
	return t, nil
}

func scalePercent(p float64) uint32 { return uint32(math.Round(p * toggleScale / 100)) }

// Set turns the feature fully on or off.
func (t *Toggle) Set(on bool) {
	if on {
		t.store(toggleScale)
	} else {
		t.store(0)
	}
}

// SetPercent turns the feature on for p percent of calls; p outside
// [0,100] is an error wrapping bulwark.ErrInvalidConfig and changes nothing.
func (t *Toggle) SetPercent(p float64) error {
	if err := validPercent(p); err != nil {
		return err
	}
	t.store(scalePercent(p))
	return nil
}

func (t *Toggle) store(v uint32) {
	if old := t.threshold.Swap(v); old != v {
		core.Emit(t.obs, bulwark.Event{Kind: bulwark.EventLimitChanged, Pattern: "toggle", Name: t.name,
			Time: t.clock.Now(), Limit: int(math.Round(float64(v) * 100 / toggleScale))})
	}
}

// Percent returns the current percentage.
func (t *Toggle) Percent() float64 { return float64(t.threshold.Load()) * 100 / toggleScale }

// Enabled draws whether the feature is on for one call: always true at
// 100%, always false at 0%, otherwise true with the set probability.
func (t *Toggle) Enabled() bool {
	th := t.threshold.Load()
	switch th {
	case 0:
		return false
	case toggleScale:
		return true
	}
	return uint32(t.rand()*toggleScale) < th
}

// EnabledFor reports whether the feature is on for key: the same answer
// every time for a given percentage, and every key that is on stays on
// when the percentage rises.
func (t *Toggle) EnabledFor(key string) bool {
	th := t.threshold.Load()
	switch th {
	case 0:
		return false
	case toggleScale:
		return true
	}
	return uint32(fnv1a(key)%toggleScale) < th
}

// fnv1a is the 64-bit FNV-1a hash of s.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (t *Toggle) enabledCtx(ctx context.Context) bool {
	if t.key != nil {
		return t.EnabledFor(t.key(ctx))
	}
	return t.Enabled()
}

// Run runs next when the feature is on for the call, and returns
// ErrDisabled otherwise.
func (t *Toggle) Run(ctx context.Context, next bulwark.Next) error {
	if !t.enabledCtx(ctx) {
		core.Emit(t.obs, bulwark.Event{Kind: bulwark.EventRejected, Pattern: "toggle", Name: t.name,
			Time: t.clock.Now(), Err: ErrDisabled})
		return ErrDisabled
	}
	return next.Run(ctx)
}

// Guard returns a policy that runs p when the feature is on for the call
// and skips it (running the rest directly) when it is off: a retry, a
// hedge or a cache that operators can switch at run time. The guarded
// policy keeps p's result type and validation. A nil p makes a policy that
// bulwark.Compose reports as invalid.
func (t *Toggle) Guard(p bulwark.Policy) bulwark.Policy { return &guarded{t: t, p: p} }

type guarded struct {
	t *Toggle
	p bulwark.Policy
}

// Run runs the guarded policy when the toggle is on.
func (g *guarded) Run(ctx context.Context, next bulwark.Next) error {
	if g.p == nil {
		return g.Validate()
	}
	if g.t.enabledCtx(ctx) {
		return g.p.Run(ctx, next)
	}
	return next.Run(ctx)
}

// Validate reports a nil guarded policy, or the guarded policy's own
// configuration error.
func (g *guarded) Validate() error {
	if g.p == nil {
		return core.ConfigError("toggle guard: nil policy")
	}
	if v, ok := g.p.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// AcceptsResult forwards to the guarded policy.
func (g *guarded) AcceptsResult(slot any) bool {
	if r, ok := g.p.(bulwark.ResultPolicy); ok {
		return r.AcceptsResult(slot)
	}
	return true
}
