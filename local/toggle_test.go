package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestToggleFlipsAtRunTime(t *testing.T) {
	obs := &policyEvents{}
	tg, err := NewToggle(ToggleConfig{Percent: 100}, WithObserver(obs), WithName("new-pricing"))
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := bulwark.Compose[string](tg)
	fn := func(context.Context) (string, error) { return "new", nil }
	ctx := context.Background()
	if v, err := ex.Run(ctx, fn); v != "new" || err != nil {
		t.Fatalf("on: %q, %v", v, err)
	}
	tg.Set(false)
	if _, err := ex.Run(ctx, fn); !errors.Is(err, ErrDisabled) {
		t.Fatalf("off: err = %v, want ErrDisabled", err)
	}
	tg.Set(true)
	if v, err := ex.Run(ctx, fn); v != "new" || err != nil {
		t.Fatalf("on again: %q, %v", v, err)
	}
	changes := obs.of(bulwark.EventLimitChanged)
	if len(changes) != 2 || changes[0].Limit != 0 || changes[1].Limit != 100 {
		t.Fatalf("change events = %+v", changes)
	}
	if rej := obs.of(bulwark.EventRejected); len(rej) != 1 || !errors.Is(rej[0].Err, ErrDisabled) {
		t.Fatalf("rejected events = %+v", rej)
	}
	tg.Set(true) // no change, no event
	if len(obs.of(bulwark.EventLimitChanged)) != 2 {
		t.Fatal("event for a no-op Set")
	}
}

func TestTogglePercentWithRandomDraws(t *testing.T) {
	draw := 0.3
	tg, _ := NewToggle(ToggleConfig{Percent: 50, Rand: func() float64 { return draw }})
	if !tg.Enabled() {
		t.Fatal("draw 0.3 at 50% should be on")
	}
	if err := tg.SetPercent(20); err != nil {
		t.Fatal(err)
	}
	if tg.Enabled() || tg.Percent() != 20 {
		t.Fatalf("draw 0.3 at 20%% should be off (percent %v)", tg.Percent())
	}
	draw = 0.1999
	if !tg.Enabled() {
		t.Fatal("draw 0.1999 at 20% should be on")
	}
	for _, p := range []float64{-1, 100.5} {
		if err := tg.SetPercent(p); !errors.Is(err, bulwark.ErrInvalidConfig) || tg.Percent() != 20 {
			t.Fatalf("SetPercent(%v) = %v; percent now %v", p, err, tg.Percent())
		}
	}
	if _, err := NewToggle(ToggleConfig{Percent: 101}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatal("NewToggle accepted 101%")
	}
}

func TestToggleStickyPercentByKey(t *testing.T) {
	tg, _ := NewToggle(ToggleConfig{Percent: 30})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("tenant-%d", i)
	}
	on30 := map[string]bool{}
	for _, k := range keys {
		if tg.EnabledFor(k) {
			on30[k] = true
		}
		if tg.EnabledFor(k) != on30[k] {
			t.Fatalf("answer for %s changed between two calls", k)
		}
	}
	if n := len(on30); n < 200 || n > 400 {
		t.Fatalf("%d of 1000 keys on at 30%%", n)
	}
	_ = tg.SetPercent(60)
	n60 := 0
	for _, k := range keys {
		on := tg.EnabledFor(k)
		if on30[k] && !on {
			t.Fatalf("%s was on at 30%% and is off at 60%%", k)
		}
		if on {
			n60++
		}
	}
	if n60 <= len(on30) {
		t.Fatalf("raising the percentage turned no key on (%d then %d)", len(on30), n60)
	}
	// The Key function makes the gate sticky.
	byTenant, _ := NewToggle(ToggleConfig{Percent: 30, Key: func(ctx context.Context) string { return ctx.Value(ctxTenant{}).(string) }})
	for _, k := range keys[:50] {
		ctx := context.WithValue(context.Background(), ctxTenant{}, k)
		_, err := bulwark.Do(ctx, func(context.Context) (int, error) { return 1, nil }, byTenant)
		if (err == nil) != on30[k] {
			t.Fatalf("gate for %s: err %v, want on=%v", k, err, on30[k])
		}
	}
}

type ctxTenant struct{}

func TestToggleGuardSwitchesAPolicy(t *testing.T) {
	tg, _ := NewToggle(ToggleConfig{Percent: 0})
	retry, _ := NewRetry(RetryConfig[int]{MaxAttempts: 3})
	ex, err := bulwark.Compose[int](tg.Guard(retry))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	fn := func(context.Context) (int, error) { calls++; return 0, errTransient }
	_, _ = ex.Run(context.Background(), fn)
	if calls != 1 {
		t.Fatalf("guard off: %d calls, want 1 (no retry)", calls)
	}
	tg.Set(true)
	calls = 0
	_, _ = ex.Run(context.Background(), fn)
	if calls != 3 {
		t.Fatalf("guard on: %d calls, want 3", calls)
	}
	if _, err := bulwark.Compose[int](tg.Guard(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Guard(nil): %v", err)
	}
	fb, _ := NewFallback([]FallbackStep[string]{FallbackValue("x")})
	if _, err := bulwark.Compose[int](tg.Guard(fb)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("guarded Fallback[string] in Compose[int]: %v", err)
	}
}

func TestToggleConcurrentFlips(t *testing.T) {
	tg, _ := NewToggle(ToggleConfig{Percent: 50})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 1000 {
				if i == 0 {
					tg.Set(j%2 == 0)
				} else {
					_ = tg.Enabled()
					_ = tg.EnabledFor("k")
				}
			}
		}()
	}
	wg.Wait()
	if n := testing.AllocsPerRun(100, func() { _ = tg.Enabled(); _ = tg.EnabledFor("tenant") }); n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}

func ExampleToggle_Guard() {
	retries, _ := NewToggle(ToggleConfig{Percent: 100})
	retry, _ := NewRetry(RetryConfig[int]{MaxAttempts: 3})
	ex, _ := bulwark.Compose[int](retries.Guard(retry))
	for _, on := range []bool{true, false} {
		retries.Set(on)
		calls := 0
		_, _ = ex.Run(context.Background(), func(context.Context) (int, error) { calls++; return 0, errTransient })
		fmt.Println("retries on:", on, "calls:", calls)
	}
	// Output:
	// retries on: true calls: 3
	// retries on: false calls: 1
}
