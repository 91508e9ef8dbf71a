package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// fill admits n calls by hand.
func fill(t *testing.T, a *AdaptiveLimiter, n int) {
	t.Helper()
	for i := range n {
		if !a.TryAcquire() {
			t.Fatalf("TryAcquire %d refused (limit %d)", i, a.Limit())
		}
	}
}

func TestAIMDGrowsUnderHealthyLoadAndShrinksOnDrops(t *testing.T) {
	obs := &policyEvents{}
	a, err := NewAdaptiveLimiter(AdaptiveConfig{Algorithm: AIMD, InitialLimit: 4, MinLimit: 2, MaxLimit: 8,
		LatencyThreshold: 100 * time.Millisecond}, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	// Four calls in flight at limit 4, all fast: the first two completions
	// see at least half the limit in use and add one each.
	fill(t, a, 4)
	for range 4 {
		a.Observe(10*time.Millisecond, false)
	}
	if got := a.Limit(); got != 6 {
		t.Fatalf("limit after healthy load = %d, want 6", got)
	}
	// A lightly used limiter does not grow.
	fill(t, a, 1)
	a.Observe(time.Millisecond, false)
	if got := a.Limit(); got != 6 {
		t.Fatalf("limit after one lone call = %d, want 6", got)
	}
	// Slow calls and errors shrink it by 0.9 each, down to the minimum.
	fill(t, a, 1)
	a.Observe(200*time.Millisecond, false)
	if got := a.Limit(); got != 5 { // 6 × 0.9 = 5.4
		t.Fatalf("limit after a slow call = %d, want 5", got)
	}
	for range 20 {
		fill(t, a, 1)
		a.Observe(time.Millisecond, true)
	}
	if got := a.Limit(); got != 2 {
		t.Fatalf("limit after many drops = %d, want the minimum 2", got)
	}
	// And healthy saturation brings it up to the maximum, no further.
	for range 20 {
		l := a.Limit()
		fill(t, a, l)
		for range l {
			a.Observe(time.Millisecond, false)
		}
	}
	if got := a.Limit(); got != 8 {
		t.Fatalf("limit after sustained health = %d, want the maximum 8", got)
	}
	if len(obs.of(bulwark.EventLimitChanged)) == 0 {
		t.Fatal("no limit-changed events")
	}
}

func TestGradientFollowsLatency(t *testing.T) {
	a, err := NewAdaptiveLimiter(AdaptiveConfig{Algorithm: Gradient, InitialLimit: 20, MinLimit: 5, MaxLimit: 100,
		Smoothing: 1, Tolerance: 1})
	if err != nil {
		t.Fatal(err)
	}
	// At the no-load latency the gradient is 1: limit + √limit.
	fill(t, a, 20)
	a.Observe(10*time.Millisecond, false) // 20 + √20 = 24.47
	if got := a.Limit(); got != 24 {
		t.Fatalf("limit at no-load latency = %d, want 24", got)
	}
	for range 19 {
		a.Observe(10*time.Millisecond, false) // app-limited as in-flight falls
	}
	// Latency four times the no-load: gradient 0.5; the limit shrinks.
	prev := a.Limit()
	for range 10 {
		l := a.Limit()
		fill(t, a, l)
		a.Observe(40*time.Millisecond, false)
		for range l - 1 {
			a.Observe(40*time.Millisecond, false)
		}
	}
	if got := a.Limit(); got >= prev || got < 5 {
		t.Fatalf("limit under 4× latency = %d, want below %d and at least 5", got, prev)
	}
	// Drops multiply by the backoff ratio, to the floor.
	for range 30 {
		fill(t, a, 1)
		a.Observe(time.Millisecond, true)
	}
	if got := a.Limit(); got != 5 {
		t.Fatalf("limit after drops = %d, want 5", got)
	}
	// Back at the no-load latency, it grows again toward the maximum.
	for range 200 {
		l := a.Limit()
		fill(t, a, l)
		for range l {
			a.Observe(10*time.Millisecond, false)
		}
	}
	if got := a.Limit(); got != 100 {
		t.Fatalf("limit after recovery = %d, want 100", got)
	}
}

func TestAdaptiveRunMeasuresLatencyOnClock(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	a, _ := NewAdaptiveLimiter(AdaptiveConfig{Algorithm: AIMD, InitialLimit: 2, MinLimit: 1, MaxLimit: 10,
		LatencyThreshold: 100 * time.Millisecond}, WithClock(clk))
	slow := func(ctx context.Context) (int, error) { clk.Advance(time.Second); return 1, nil }
	fast := func(ctx context.Context) (int, error) { clk.Advance(time.Millisecond); return 1, nil }
	if _, err := bulwark.Do(context.Background(), fast, a); err != nil {
		t.Fatal(err)
	}
	if got := a.Limit(); got != 3 {
		t.Fatalf("limit after a fast call at half use = %d, want 3", got)
	}
	if _, err := bulwark.Do(context.Background(), slow, a); err != nil {
		t.Fatal(err)
	}
	if got := a.Limit(); got != 2 { // 3 × 0.9 = 2.7
		t.Fatalf("limit after an injected slow call = %d, want 2", got)
	}
	if _, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, errTransient }, a); !errors.Is(err, errTransient) {
		t.Fatal(err)
	}
	if got := a.Limit(); got != 2 { // 2.7 × 0.9 = 2.43
		t.Fatalf("limit after an error = %d, want 2", got)
	}
	// A cancelled caller is not a drop.
	_, _ = bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, context.Canceled }, a)
	if got := a.Limit(); got != 3 { // a success at half use: 2.43 + 1
		t.Fatalf("limit after a cancellation = %d, want 3", got)
	}
	if a.InFlight() != 0 {
		t.Fatalf("in flight = %d", a.InFlight())
	}
}

func TestAdaptiveRejectsWhenSaturated(t *testing.T) {
	obs := &policyEvents{}
	a, _ := NewAdaptiveLimiter(AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1}, WithObserver(obs))
	ex, _ := bulwark.Compose[int](a)
	var inner error
	_, err := ex.Run(context.Background(), func(ctx context.Context) (int, error) {
		_, inner = ex.Run(ctx, func(context.Context) (int, error) { return 0, nil })
		return 1, nil
	})
	if err != nil || !errors.Is(inner, ErrLimitExceeded) || !errors.Is(inner, bulwark.ErrBulkheadFull) {
		t.Fatalf("outer %v, inner %v; want the inner call rejected with ErrLimitExceeded", err, inner)
	}
	if evs := obs.of(bulwark.EventRejected); len(evs) != 1 || evs[0].Limit != 1 || evs[0].Pattern != "adaptive" {
		t.Fatalf("rejected events = %+v", evs)
	}
	// A panicking call frees its slot.
	func() {
		defer func() { _ = recover() }()
		_, _ = ex.Run(context.Background(), func(context.Context) (int, error) { panic("kaboom") })
	}()
	if a.InFlight() != 0 {
		t.Fatalf("in flight after panic = %d", a.InFlight())
	}
}

func TestAdaptiveValidation(t *testing.T) {
	bad := []AdaptiveConfig{
		{Algorithm: 7, InitialLimit: 1, MinLimit: 1, MaxLimit: 1},
		{InitialLimit: 1, MinLimit: 0, MaxLimit: 1},
		{InitialLimit: 5, MinLimit: 1, MaxLimit: 4},
		{InitialLimit: 1, MinLimit: 2, MaxLimit: 4},
		{InitialLimit: 1, MinLimit: 1, MaxLimit: 4, BackoffRatio: 1},
		{InitialLimit: 1, MinLimit: 1, MaxLimit: 4, LatencyThreshold: -1},
		{InitialLimit: 1, MinLimit: 1, MaxLimit: 4, Smoothing: 2},
		{InitialLimit: 1, MinLimit: 1, MaxLimit: 4, Tolerance: 0.5},
		{InitialLimit: 1, MinLimit: 1, MaxLimit: 4, ProbeInterval: 3},
	}
	for _, c := range bad {
		if _, err := NewAdaptiveLimiter(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewAdaptiveLimiter(%+v) err = %v", c, err)
		}
	}
	if _, err := NewAdaptiveLimiter(DefaultAdaptiveConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestAdaptiveRunAllocatesNothing(t *testing.T) {
	a, _ := NewAdaptiveLimiter(DefaultAdaptiveConfig())
	if n := testing.AllocsPerRun(100, func() {
		if a.TryAcquire() {
			a.Observe(time.Millisecond, false)
		}
	}); n != 0 {
		t.Fatalf("allocs = %v", n)
	}
	ex, _ := bulwark.Compose[int](a)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _, _ = ex.Run(ctx, func(context.Context) (int, error) { return 1, nil }) }); n > 1 {
		t.Fatalf("Run allocates %v, want at most the composition's result slot", n)
	}
}
