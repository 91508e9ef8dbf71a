package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func newWaterMark(t *testing.T, cfg WaterMarkConfig, opts ...Option) (*WaterMark, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New(fakeclock.Epoch)
	w, err := NewWaterMark(cfg, append([]Option{WithClock(clk)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return w, clk
}

// The marks as a step table: +1 takes an item (TryAcquire), -1 releases
// one; backpressure turns on at the high mark and off only at the low one.
func TestWaterMarkHysteresis(t *testing.T) {
	obs := &policyEvents{}
	w, _ := newWaterMark(t, WaterMarkConfig{High: 4, Low: 1}, WithObserver(obs))
	var held []func()
	steps := []struct {
		op      int
		ok      bool // for +1: admitted
		pending int
		on      bool
	}{
		{+1, true, 1, false},
		{+1, true, 2, false},
		{+1, true, 3, false},
		{+1, true, 4, true}, // on at the high mark
		{+1, false, 4, true},
		{-1, true, 3, true}, // between the marks, falling: still on
		{+1, false, 3, true},
		{-1, true, 2, true},
		{-1, true, 1, false}, // off at the low mark
		{+1, true, 2, false}, // between the marks, rising: admitted
		{+1, true, 3, false},
		{+1, true, 4, true},
	}
	for i, st := range steps {
		if st.op > 0 {
			r, ok := w.TryAcquire()
			if ok != st.ok {
				t.Fatalf("step %d: TryAcquire ok %v, want %v", i, ok, st.ok)
			}
			if ok {
				held = append(held, r)
			}
		} else {
			held[len(held)-1]()
			held = held[:len(held)-1]
		}
		if w.Pending() != st.pending || w.On() != st.on {
			t.Fatalf("step %d: pending %d, on %v; want %d, %v", i, w.Pending(), w.On(), st.pending, st.on)
		}
	}
	changes := obs.of(bulwark.EventLimitChanged)
	if len(changes) != 3 || changes[0].Allowed || !changes[1].Allowed || changes[1].Limit != 1 || changes[2].Allowed {
		t.Fatalf("switch events %+v, want on, off at 1, on", changes)
	}
}

// A waiting Acquire is admitted when backpressure turns off, with the wait
// in its event; one that waits MaxWait on the fake clock fails with
// ErrBackpressure; a cancelled one with ctx's error.
func TestWaterMarkAcquireWaits(t *testing.T) {
	obs := &policyEvents{}
	w, clk := newWaterMark(t, WaterMarkConfig{High: 2, Low: 0, MaxWait: time.Second}, WithObserver(obs))
	ctx := context.Background()
	r1, err := w.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := w.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := w.Acquire(ctx)
		if err == nil {
			r()
		}
		got <- err
	}()
	clk.WaitTimers(1)
	clk.Advance(300 * time.Millisecond)
	r1()
	select {
	case err := <-got:
		t.Fatalf("admitted above the low mark: %v", err)
	default:
	}
	r2() // pending 0: off
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	acq := obs.of(bulwark.EventBulkheadAcquired)
	if d := acq[len(acq)-1].Duration; d != 300*time.Millisecond {
		t.Fatalf("waited %v, want 300ms", d)
	}

	// Time out.
	r1, _ = w.Acquire(ctx)
	r2, _ = w.Acquire(ctx)
	go func() { _, err := w.Acquire(ctx); got <- err }()
	clk.WaitTimers(1)
	clk.Advance(time.Second)
	if err := <-got; !errors.Is(err, ErrBackpressure) || !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("timed-out waiter: %v", err)
	}
	// Cancelled.
	cctx, cancel := context.WithCancel(ctx)
	go func() { _, err := w.Acquire(cctx); got <- err }()
	clk.WaitTimers(1)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if q, d := len(obs.of(bulwark.EventBulkheadQueued)), len(obs.of(bulwark.EventBulkheadDequeued)); q != 3 || d != 3 {
		t.Fatalf("queued %d, dequeued %d; want 3 and 3", q, d)
	}
	r1()
	r2()
	if w.Pending() != 0 {
		t.Fatalf("pending at the end: %d", w.Pending())
	}
}

// Woken waiters share the room up to the high mark again; the others wait
// on (with what is left of their MaxWait).
func TestWaterMarkWakesWaitersUpToHigh(t *testing.T) {
	w, clk := newWaterMark(t, WaterMarkConfig{High: 3, Low: 0, MaxWait: time.Second})
	ctx := context.Background()
	var held []func()
	for range 3 {
		r, err := w.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	results := make(chan func(), 5)
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			r, err := w.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			results <- r
		}()
	}
	clk.WaitTimers(5)
	for _, r := range held {
		r()
	}
	for range 3 {
		<-results
	}
	if !w.On() || w.Pending() != 3 {
		t.Fatalf("pending %d, on %v; want 3 admitted and on again", w.Pending(), w.On())
	}
	clk.Advance(time.Second)
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrBackpressure) {
			t.Fatalf("left-over waiter: %v", err)
		}
	}
}

// Critical work and Force skip backpressure, not the hard cap; MaxWait 0
// fails at once.
func TestWaterMarkCapAndCritical(t *testing.T) {
	w, _ := newWaterMark(t, WaterMarkConfig{High: 2, Low: 1, Max: 4})
	ctx := context.Background()
	for range 2 {
		if _, err := w.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Acquire(ctx); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("no wait allowed: %v", err)
	}
	if _, err := w.Acquire(WithPriority(ctx, PriorityCritical)); err != nil {
		t.Fatalf("critical: %v", err)
	}
	if _, ok := w.Force(); !ok {
		t.Fatal("Force below the cap refused")
	}
	if _, ok := w.Force(); ok {
		t.Fatal("Force above the cap admitted")
	}
	if _, err := w.Acquire(WithPriority(ctx, PriorityCritical)); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("critical at the cap: %v", err)
	}
	if w.Pending() != 4 {
		t.Fatalf("pending %d, want 4", w.Pending())
	}
}

// Run holds an item for the call; a panicking observer is recovered and
// counted; a done ctx is refused.
func TestWaterMarkRunAndObserverPanic(t *testing.T) {
	obs := bulwark.ObserverFunc(func(bulwark.Event) { panic("observer") })
	w, _ := newWaterMark(t, WaterMarkConfig{High: 1}, WithObserver(obs))
	ex, err := bulwark.Compose[int](w)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ex.Run(context.Background(), func(context.Context) (int, error) { return w.Pending(), nil })
	if err != nil || n != 1 {
		t.Fatalf("Run: %d, %v; want 1 pending during the call", n, err)
	}
	if w.Pending() != 0 || w.ObserverPanics() == 0 {
		t.Fatalf("pending %d, observer panics %d", w.Pending(), w.ObserverPanics())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
}

func TestWaterMarkConfigErrors(t *testing.T) {
	for _, c := range []WaterMarkConfig{{}, {High: 2, Low: 2}, {High: 2, Low: -1}, {High: 3, Max: 2}, {High: 1, MaxWait: -1}} {
		if _, err := NewWaterMark(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}

// The paths that do not wait allocate nothing.
func TestWaterMarkAllocatesNothing(t *testing.T) {
	w, _ := newWaterMark(t, WaterMarkConfig{High: 10, Low: 5})
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		r, err := w.Acquire(ctx)
		if err == nil {
			r()
		}
	}); n != 0 {
		t.Fatalf("allocations per Acquire: %v", n)
	}
}
