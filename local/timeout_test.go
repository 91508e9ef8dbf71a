package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func TestTimeoutCancelsInnerContext(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	to, err := NewTimeout(2*time.Second, WithClock(clk), WithObserver(obs), WithName("db"))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	cause := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		_, err := bulwark.Do(context.Background(), func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return 0, ctx.Err()
		}, to)
		done <- err
	}()
	<-started
	clk.WaitTimers(1)
	clk.Advance(time.Second)
	if clk.Timers() != 1 {
		t.Fatal("timeout fired early")
	}
	clk.Advance(time.Second)
	err = <-done
	var te *TimeoutError
	if !errors.Is(err, bulwark.ErrTimeout) || !errors.As(err, &te) || te.Timeout != 2*time.Second {
		t.Fatalf("err = %v, want a 2s TimeoutError", err)
	}
	if c := <-cause; !errors.Is(c, bulwark.ErrTimeout) {
		t.Fatalf("inner ctx cause = %v, want ErrTimeout", c)
	}
	evs := obs.of(bulwark.EventTimeout)
	if len(evs) != 1 || evs[0].Duration != 2*time.Second || evs[0].Name != "db" {
		t.Fatalf("timeout events = %+v", evs)
	}
}

func TestTimeoutFastCall(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	to, _ := NewTimeout(time.Second, WithClock(clk), WithObserver(obs))
	v, err := bulwark.Do(context.Background(), func(ctx context.Context) (string, error) {
		if ctx.Err() != nil {
			t.Error("ctx done during a fast call")
		}
		return "fast", nil
	}, to)
	if v != "fast" || err != nil {
		t.Fatalf("Run = %q, %v", v, err)
	}
	if clk.Timers() != 0 || len(obs.of(bulwark.EventTimeout)) != 0 {
		t.Fatalf("timers %d, timeout events %d; want 0, 0", clk.Timers(), len(obs.of(bulwark.EventTimeout)))
	}
	boom := errors.New("boom")
	if _, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, boom }, to); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the call's error", err)
	}
}

func TestTimeoutParentCancelWins(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	to, _ := NewTimeout(time.Second, WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	_, err := bulwark.Do(ctx, func(ctx context.Context) (int, error) {
		cancel()
		<-ctx.Done()
		return 0, ctx.Err()
	}, to)
	if !errors.Is(err, context.Canceled) || errors.Is(err, bulwark.ErrTimeout) {
		t.Fatalf("err = %v, want Canceled and not ErrTimeout", err)
	}
}

func TestTimeoutSystemClockSetsDeadline(t *testing.T) {
	to, _ := NewTimeout(time.Hour)
	_, err := bulwark.Do(context.Background(), func(ctx context.Context) (int, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("no deadline on the call's ctx")
		}
		return 0, nil
	}, to)
	if err != nil {
		t.Fatal(err)
	}
	// A tiny budget on the real clock: the call waits for its ctx, which
	// ends; the outcome is a timeout whatever the scheduling.
	short, _ := NewTimeout(time.Microsecond)
	_, err = bulwark.Do(context.Background(), func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}, short)
	if !errors.Is(err, bulwark.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestTimeoutValidation(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := NewTimeout(d); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Fatalf("NewTimeout(%v) err = %v", d, err)
		}
	}
	to, _ := NewTimeout(time.Second)
	if to.Duration() != time.Second {
		t.Fatal("Duration")
	}
}

func TestTimeoutPanicLeavesNoGoroutine(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	to, _ := NewTimeout(time.Second, WithClock(clk))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		_, _ = bulwark.Do(context.Background(), func(context.Context) (int, error) { panic("kaboom") }, to)
	}()
	if clk.Timers() != 0 {
		t.Fatalf("timers left: %d", clk.Timers())
	}
	// the leak check in TestMain checks that the timer goroutine ended.
}
