package local

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// guard fails the test instead of hanging forever when ch never delivers.
func guard[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

type hedgeOutcome struct {
	v   string
	err error
}

func TestHedgeFirstSuccessWinsAndLosersAreCancelled(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	h, err := NewHedge(HedgeConfig{Delay: 50 * time.Millisecond, MaxHedges: 2}, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	started := make(chan int32, 3)
	cancelled := make(chan int32, 3)
	release3 := make(chan struct{})
	done := make(chan hedgeOutcome, 1)
	go func() {
		v, err := bulwark.Do(context.Background(), func(ctx context.Context) (string, error) {
			i := n.Add(1)
			started <- i
			if i == 3 {
				<-release3
				return "third", nil
			}
			<-ctx.Done() // attempts 1 and 2 hang until cancelled
			cancelled <- i
			return "", ctx.Err()
		}, h)
		done <- hedgeOutcome{v, err}
	}()
	guard(t, started, "attempt 1")
	clk.WaitTimers(1)
	clk.Advance(50 * time.Millisecond)
	guard(t, started, "attempt 2")
	clk.WaitTimers(1)
	clk.Advance(50 * time.Millisecond)
	guard(t, started, "attempt 3")
	close(release3)
	out := guard(t, done, "the result")
	if out.v != "third" || out.err != nil {
		t.Fatalf("Run = %q, %v; want third, nil", out.v, out.err)
	}
	got := map[int32]bool{guard(t, cancelled, "a loser"): true, guard(t, cancelled, "a loser"): true}
	if !got[1] || !got[2] {
		t.Fatalf("cancelled attempts = %v, want 1 and 2", got)
	}
	evs := obs.of(bulwark.EventHedge)
	if len(evs) != 2 || evs[0].Attempt != 2 || evs[1].Attempt != 3 {
		t.Fatalf("hedge events = %+v", evs)
	}
	if clk.Timers() != 0 {
		t.Fatalf("timers left: %d", clk.Timers())
	}
}

func TestHedgeFastCallStartsNoHedge(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	h, _ := NewHedge(HedgeConfig{Delay: time.Second, MaxHedges: 3}, WithClock(clk), WithObserver(obs))
	calls := 0
	v, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { calls++; return 5, nil }, h)
	if v != 5 || err != nil || calls != 1 || len(obs.of(bulwark.EventHedge)) != 0 || clk.Timers() != 0 {
		t.Fatalf("Run = %d, %v; calls %d, hedges %d, timers %d", v, err, calls, len(obs.of(bulwark.EventHedge)), clk.Timers())
	}
}

func TestHedgeFailures(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	h, _ := NewHedge(HedgeConfig{Delay: time.Second, MaxHedges: 1}, WithClock(clk))
	// A lone failure is returned at once, without hedging.
	_, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, errTransient }, h)
	if !errors.Is(err, errTransient) {
		t.Fatalf("err = %v", err)
	}
	// A failure while another attempt runs waits for that attempt.
	var n atomic.Int32
	started := make(chan int32, 2)
	fail1 := make(chan struct{})
	done := make(chan hedgeOutcome, 1)
	go func() {
		v, err := bulwark.Do(context.Background(), func(ctx context.Context) (string, error) {
			i := n.Add(1)
			started <- i
			if i == 1 {
				<-fail1
				return "", errTransient
			}
			return "second", nil
		}, h)
		done <- hedgeOutcome{v, err}
	}()
	guard(t, started, "attempt 1")
	clk.WaitTimers(1)
	clk.Advance(time.Second)
	guard(t, started, "attempt 2")
	close(fail1)
	out := guard(t, done, "the result")
	if out.v != "second" || out.err != nil {
		t.Fatalf("Run = %q, %v; want second", out.v, out.err)
	}
}

func TestHedgeContextCancelled(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	h, _ := NewHedge(HedgeConfig{Delay: time.Second, MaxHedges: 1}, WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := bulwark.Do(ctx, func(ctx context.Context) (int, error) {
			defer close(exited)
			<-ctx.Done()
			return 0, ctx.Err()
		}, h)
		done <- err
	}()
	clk.WaitTimers(1)
	cancel()
	if err := guard(t, done, "the result"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	guard(t, exited, "the attempt to end")
}

func TestHedgeBudget(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	budget, _ := NewRetryBudget(BudgetConfig{Ratio: 0.5, Window: time.Minute}, WithClock(clk))
	h, _ := NewHedge(HedgeConfig{Delay: time.Second, MaxHedges: 1, Budget: budget}, WithClock(clk), WithObserver(obs))
	release := make(chan struct{})
	done := make(chan hedgeOutcome, 1)
	var calls atomic.Int32
	go func() {
		v, err := bulwark.Do(context.Background(), func(ctx context.Context) (string, error) {
			calls.Add(1)
			<-release
			return "slow", nil
		}, h)
		done <- hedgeOutcome{v, err}
	}()
	clk.WaitTimers(1)
	clk.Advance(time.Second) // the budget (1 call × 0.5) refuses the hedge
	close(release)
	out := guard(t, done, "the result")
	if out.v != "slow" || out.err != nil || calls.Load() != 1 || len(obs.of(bulwark.EventHedge)) != 0 {
		t.Fatalf("Run = %q, %v; calls %d, hedges %d; want one unhedged call", out.v, out.err, calls.Load(),
			len(obs.of(bulwark.EventHedge)))
	}
}

func TestHedgeValidation(t *testing.T) {
	for _, c := range []HedgeConfig{{Delay: 0, MaxHedges: 1}, {Delay: time.Second, MaxHedges: 0}} {
		if _, err := NewHedge(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Fatalf("NewHedge(%+v) err = %v", c, err)
		}
	}
}

// TestHedgePanicReachesTheCaller: an attempt that panics on the hedge's
// goroutine does not kill the process; the caller gets the panic on its
// own goroutine, as with an unhedged call, and can recover it.
func TestHedgePanicReachesTheCaller(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	h, err := NewHedge(HedgeConfig{Delay: 50 * time.Millisecond, MaxHedges: 1}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_, _ = bulwark.Do(context.Background(), func(ctx context.Context) (string, error) {
			if n.Add(1) == 2 {
				panic("hedged attempt bug")
			}
			<-ctx.Done() // the first attempt hangs until cancelled
			return "", ctx.Err()
		}, h)
	}()
	clk.WaitTimers(1)
	clk.Advance(50 * time.Millisecond) // starts the attempt that panics
	if v := guard(t, recovered, "the caller's recover"); v != "hedged attempt bug" {
		t.Fatalf("the caller recovered %v, want the attempt's panic", v)
	}
}
