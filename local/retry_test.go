package local

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// policyEvents records the events of the policies under test.
type policyEvents struct {
	mu     sync.Mutex
	events []bulwark.Event
}

func (p *policyEvents) Observe(e bulwark.Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

// of returns the recorded events of kind k.
func (p *policyEvents) of(k bulwark.EventKind) []bulwark.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []bulwark.Event
	for _, e := range p.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// seq returns a Rand function that yields vals in turn, repeating the last.
func seq(vals ...float64) func() float64 {
	var mu sync.Mutex
	i := 0
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

var errTransient = errors.New("transient")

func TestRetryDelaySequences(t *testing.T) {
	cases := []struct {
		name string
		cfg  RetryConfig[int]
		rand []float64
		want []time.Duration
	}{
		{"constant", RetryConfig[int]{Backoff: BackoffConstant, Delay: ms(100)}, nil,
			[]time.Duration{ms(100), ms(100), ms(100), ms(100)}},
		{"linear capped", RetryConfig[int]{Backoff: BackoffLinear, Delay: ms(100), MaxDelay: ms(350)}, nil,
			[]time.Duration{ms(100), ms(200), ms(300), ms(350), ms(350)}},
		{"exponential capped", RetryConfig[int]{Backoff: BackoffExponential, Delay: ms(100), MaxDelay: time.Second}, nil,
			[]time.Duration{ms(100), ms(200), ms(400), ms(800), time.Second, time.Second}},
		{"exponential x3", RetryConfig[int]{Backoff: BackoffExponential, Delay: ms(100), Multiplier: 3}, nil,
			[]time.Duration{ms(100), ms(300), ms(900), ms(2700)}},
		{"full jitter", RetryConfig[int]{Backoff: BackoffExponential, Delay: ms(100), Jitter: JitterFull},
			[]float64{0.5, 0.25, 0, 0.999},
			[]time.Duration{ms(50), ms(50), 0, ms(799.2)}},
		{"equal jitter", RetryConfig[int]{Backoff: BackoffExponential, Delay: ms(100), Jitter: JitterEqual},
			[]float64{0.5, 0, 0.5},
			[]time.Duration{ms(75), ms(100), ms(300)}},
		{"decorrelated jitter", RetryConfig[int]{Delay: ms(100), MaxDelay: time.Second, Jitter: JitterDecorrelated},
			[]float64{0.5},
			[]time.Duration{ms(200), ms(350), ms(575), ms(912.5), time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.MaxAttempts = 10
			if c.rand != nil {
				c.cfg.Rand = seq(c.rand...)
			}
			r, err := NewRetry(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			prev := c.cfg.Delay
			var got []time.Duration
			for k := 1; k <= len(c.want); k++ {
				got = append(got, r.delay(k, &prev))
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("delays = %v, want %v", got, c.want)
			}
		})
	}
}

// runRetry runs fn under r on clk in a goroutine, advancing the clock
// through every back-off, and returns Run's result.
func runRetry[T any](t *testing.T, clk *fakeclock.Clock, r *Retry[T], fn func(context.Context) (T, error),
	backoffs []time.Duration) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := bulwark.Do(context.Background(), fn, r)
		done <- result{v, err}
	}()
	for _, d := range backoffs {
		clk.WaitTimers(1)
		clk.Advance(d)
	}
	res := <-done
	return res.v, res.err
}

func TestRetryRunsOnFakeClockWithJitter(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	r, err := NewRetry(RetryConfig[string]{MaxAttempts: 4, Backoff: BackoffExponential, Delay: ms(100),
		Jitter: JitterEqual, Rand: seq(0.5)}, WithClock(clk), WithObserver(obs), WithName("api"))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	var times []time.Duration
	v, err := runRetry(t, clk, r, func(context.Context) (string, error) {
		calls++
		times = append(times, clk.Now().Sub(fakeclock.Epoch))
		if calls < 4 {
			return "", errTransient
		}
		return "ok", nil
	}, []time.Duration{ms(75), ms(150), ms(300)})
	if v != "ok" || err != nil {
		t.Fatalf("Run = %q, %v; want ok, nil", v, err)
	}
	if want := []time.Duration{0, ms(75), ms(225), ms(525)}; !slices.Equal(times, want) {
		t.Fatalf("attempt times = %v, want %v", times, want)
	}
	evs := obs.of(bulwark.EventRetry)
	if len(evs) != 3 {
		t.Fatalf("retry events = %d, want 3", len(evs))
	}
	for i, e := range evs {
		if e.Attempt != i+2 || !errors.Is(e.Err, errTransient) || e.Pattern != "retry" || e.Name != "api" {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
	if evs[2].Duration != ms(300) {
		t.Fatalf("third back-off = %v, want 300ms", evs[2].Duration)
	}
}

func TestRetryExhausted(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	r, _ := NewRetry(RetryConfig[int]{MaxAttempts: 3, Delay: ms(10)}, WithClock(clk))
	calls := 0
	_, err := runRetry(t, clk, r, func(context.Context) (int, error) { calls++; return 0, errTransient },
		[]time.Duration{ms(10), ms(10)})
	var re *RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, errTransient) {
		t.Fatalf("err = %v, want a RetryError after 3 attempts wrapping errTransient", err)
	}
	if errors.Is(err, ErrBudgetExhausted) || calls != 3 {
		t.Fatalf("calls = %d, budget match = %v", calls, errors.Is(err, ErrBudgetExhausted))
	}
}

func TestRetryPredicates(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	fatal := errors.New("fatal")
	r, _ := NewRetry(RetryConfig[string]{
		MaxAttempts:   5,
		RetryIf:       func(err error) bool { return errors.Is(err, errTransient) },
		RetryIfResult: func(s string) bool { return s == "busy" },
	}, WithClock(clk))

	calls := 0
	_, err := bulwark.Do(context.Background(), func(context.Context) (string, error) {
		calls++
		return "", &wrapErr{fatal}
	}, r)
	if !errors.Is(err, fatal) || calls != 1 {
		t.Fatalf("non-retryable: err = %v after %d calls; want fatal after 1", err, calls)
	}

	results := []string{"busy", "busy", "done"}
	calls = 0
	v, err := bulwark.Do(context.Background(), func(context.Context) (string, error) {
		calls++
		return results[calls-1], nil
	}, r)
	if v != "done" || err != nil || calls != 3 {
		t.Fatalf("result predicate: %q, %v after %d calls; want done, nil after 3", v, err, calls)
	}

	r2, _ := NewRetry(RetryConfig[string]{MaxAttempts: 2, RetryIfResult: func(s string) bool { return s == "busy" }},
		WithClock(clk))
	v, err = bulwark.Do(context.Background(), func(context.Context) (string, error) { return "busy", nil }, r2)
	var re *RetryError
	if v != "busy" || !errors.As(err, &re) || re.Err != nil || re.Attempts != 2 {
		t.Fatalf("rejected results: %q, %v; want busy and a RetryError with nil Err", v, err)
	}
	if _, err := bulwark.Compose[int](r2); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Retry[string] with a result predicate in a Compose[int]: %v, want ErrInvalidConfig", err)
	}
	if _, err := bulwark.Compose[int](r); err == nil {
		t.Fatal("want a type error")
	}
	plain, _ := NewRetry(RetryConfig[string]{MaxAttempts: 2})
	if _, err := bulwark.Compose[int](plain); err != nil {
		t.Fatalf("Retry without a result predicate fits any composition: %v", err)
	}
}

type wrapErr struct{ err error }

func (w *wrapErr) Error() string { return "wrapped: " + w.err.Error() }
func (w *wrapErr) Unwrap() error { return w.err }

func TestRetryNeverRetriesRejectionsUnlessAsked(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	rejections := []error{
		bulwark.ErrOpen,
		&bulwark.RateLimitedError{RetryAfter: time.Second},
		bulwark.ErrBulkheadFull,
		ErrLimitExceeded,
		ErrShed,
	}
	r, _ := NewRetry(RetryConfig[int]{MaxAttempts: 3}, WithClock(clk))
	for _, rej := range rejections {
		calls := 0
		_, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { calls++; return 0, rej }, r)
		if calls != 1 || !errors.Is(err, rej) {
			t.Fatalf("%v: %d calls, err %v; want 1 call and the rejection", rej, calls, err)
		}
	}

	obs := &policyEvents{}
	asked, _ := NewRetry(RetryConfig[int]{MaxAttempts: 2, Delay: ms(10), RetryRejections: true},
		WithClock(clk), WithObserver(obs))
	calls := 0
	v, err := runRetry(t, clk, asked, func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, &bulwark.RateLimitedError{RetryAfter: 5 * time.Second}
		}
		return 9, nil
	}, []time.Duration{5 * time.Second})
	if v != 9 || err != nil || calls != 2 {
		t.Fatalf("RetryRejections: %d, %v after %d calls", v, err, calls)
	}
	if evs := obs.of(bulwark.EventRetry); len(evs) != 1 || evs[0].Duration != 5*time.Second {
		t.Fatalf("retry events = %+v, want one waiting the 5s RetryAfter", evs)
	}
}

func TestRetryHonoursContextBetweenAttempts(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	r, _ := NewRetry(RetryConfig[int]{MaxAttempts: 5, Delay: time.Hour}, WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		_, err := bulwark.Do(ctx, func(context.Context) (int, error) { calls++; return 0, errTransient }, r)
		done <- err
	}()
	clk.WaitTimers(1)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) || calls != 1 {
		t.Fatalf("err = %v after %d calls; want Canceled and the last failure after 1", err, calls)
	}
	if clk.Timers() != 0 {
		t.Fatalf("timers left armed: %d", clk.Timers())
	}

	// A ctx already done after a failure ends the retry without waiting.
	ctx2, cancel2 := context.WithCancel(context.Background())
	_, err = bulwark.Do(ctx2, func(context.Context) (int, error) { cancel2(); return 0, errTransient }, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
}

func TestRetryBudgetStopsAmplification(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	budget, err := NewRetryBudget(BudgetConfig{Ratio: 0.5, Window: 10 * time.Second}, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewRetry(RetryConfig[int]{MaxAttempts: 5, Budget: budget}, WithClock(clk))
	attempts := func() (int, error) {
		calls := 0
		_, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { calls++; return 0, errTransient }, r)
		return calls, err
	}
	// Call 1: 1 call deposited, 0.5 retries allowed: no retry.
	n, err := attempts()
	if n != 1 || !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, errTransient) {
		t.Fatalf("call 1: %d attempts, %v; want 1 and ErrBudgetExhausted", n, err)
	}
	// Call 2: 2 calls, 1 retry allowed.
	if n, _ := attempts(); n != 2 {
		t.Fatalf("call 2: %d attempts, want 2", n)
	}
	// Ten calls of failures in total never make more than half as many retries.
	total := 3
	for range 8 {
		n, _ := attempts()
		total += n
	}
	if calls, retries := 10, total-10; float64(retries) > 0.5*float64(calls) {
		t.Fatalf("%d retries for %d calls exceeds the 0.5 ratio", retries, calls)
	}
	if len(obs.of(bulwark.EventRejected)) == 0 {
		t.Fatal("no rejection event from the budget")
	}
	// After the window, old calls no longer pay for retries.
	clk.Advance(11 * time.Second)
	if got := budget.Available(); got != 0 {
		t.Fatalf("Available after the window = %d, want 0", got)
	}
}

func TestRetryBudgetWindowAndFloor(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	b, err := NewRetryBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: 0.2, Window: 10 * time.Second}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	// Floor: 0.2/s over 10s = 2 retries with no calls at all.
	if got := b.Available(); got != 2 {
		t.Fatalf("Available = %d, want 2", got)
	}
	for range 20 {
		b.Deposit()
	}
	if got := b.Available(); got != 4 {
		t.Fatalf("Available after 20 calls = %d, want 4", got)
	}
	for i := range 4 {
		if !b.Withdraw() {
			t.Fatalf("withdraw %d refused", i)
		}
	}
	if b.Withdraw() {
		t.Fatal("fifth withdraw allowed")
	}
	// Half the window later everything still counts; a full window later
	// nothing does, and the floor is back.
	clk.Advance(5 * time.Second)
	if b.Withdraw() {
		t.Fatal("withdraw allowed mid-window")
	}
	clk.Advance(5 * time.Second)
	if got := b.Available(); got != 2 {
		t.Fatalf("Available after the window = %d, want 2", got)
	}
}

func TestRetryConfigValidation(t *testing.T) {
	bad := []RetryConfig[int]{
		{MaxAttempts: 0},
		{MaxAttempts: 1, Delay: -1},
		{MaxAttempts: 1, MaxDelay: -1},
		{MaxAttempts: 1, Multiplier: 0.5},
		{MaxAttempts: 1, Backoff: 9},
		{MaxAttempts: 1, Jitter: 9},
		{MaxAttempts: 1, Jitter: JitterDecorrelated, Delay: ms(1)},
	}
	for _, c := range bad {
		if _, err := NewRetry(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewRetry(%v) err = %v, want ErrInvalidConfig", c, err)
		}
	}
	badBudgets := []BudgetConfig{
		{Ratio: -1, Window: time.Second},
		{Ratio: 0, MinPerSecond: 0, Window: time.Second},
		{Ratio: 0.1, Window: time.Millisecond},
		{Ratio: 0.1, MinPerSecond: -1, Window: time.Second},
	}
	for _, c := range badBudgets {
		if _, err := NewRetryBudget(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewRetryBudget(%+v) err = %v, want ErrInvalidConfig", c, err)
		}
	}
	if _, err := NewRetryBudget(DefaultBudgetConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRetry(RetryConfig[int]{MaxAttempts: 1}, WithMaxKeys(0)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("bad option err = %v", err)
	}
}

func TestRetryBudgetAllocatesNothing(t *testing.T) {
	b, _ := NewRetryBudget(DefaultBudgetConfig())
	if n := testing.AllocsPerRun(100, func() { b.Deposit(); b.Withdraw() }); n != 0 {
		t.Fatalf("Deposit+Withdraw allocate %v, want 0", n)
	}
}
