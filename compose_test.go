package bulwark_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// recorder keeps an ordered log of what fakes and observers saw.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// Observe records events as "event:kind".
func (r *recorder) Observe(e bulwark.Event) { r.add("event:" + e.Kind.String()) }

// countingLimiter admits the first max calls, then denies with a one-second
// RetryAfter.
type countingLimiter struct {
	mu    sync.Mutex
	calls int
	max   int
	rec   *recorder
}

func (l *countingLimiter) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	l.rec.add("limiter")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls > l.max {
		return bulwark.Decision{Limit: l.max, RetryAfter: time.Second}, nil
	}
	return bulwark.Decision{Allowed: true, Limit: l.max, Remaining: l.max - l.calls}, nil
}

// fakeBreaker rejects while open and counts reported outcomes.
type fakeBreaker struct {
	mu        sync.Mutex
	open      bool
	successes int
	failures  int
	rec       *recorder
	done      func(bool)
}

func newFakeBreaker(rec *recorder) *fakeBreaker {
	b := &fakeBreaker{rec: rec}
	b.done = b.report
	return b
}

func (b *fakeBreaker) Allow(ctx context.Context) (func(bool), error) {
	b.rec.add("breaker")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return nil, bulwark.ErrOpen
	}
	return b.done, nil
}

func (b *fakeBreaker) report(ok bool) {
	if ok {
		b.rec.add("breaker:success")
	} else {
		b.rec.add("breaker:failure")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.successes++
	} else {
		b.failures++
	}
}

func (b *fakeBreaker) counts() (successes, failures int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.successes, b.failures
}

func (b *fakeBreaker) State(ctx context.Context) bulwark.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return bulwark.Open
	}
	return bulwark.Closed
}

// semBulkhead is a channel semaphore that never waits.
type semBulkhead struct {
	sem     chan struct{}
	rec     *recorder
	release func()
}

func newSemBulkhead(n int, rec *recorder) *semBulkhead {
	b := &semBulkhead{sem: make(chan struct{}, n), rec: rec}
	b.release = func() { b.rec.add("bulkhead:release"); <-b.sem }
	return b
}

func (b *semBulkhead) Acquire(ctx context.Context) (func(), error) {
	select {
	case b.sem <- struct{}{}:
		b.rec.add("bulkhead:acquire")
		return b.release, nil
	default:
		b.rec.add("bulkhead:full")
		return nil, bulwark.ErrBulkheadFull
	}
}

var (
	_ bulwark.Limiter  = (*countingLimiter)(nil)
	_ bulwark.Breaker  = (*fakeBreaker)(nil)
	_ bulwark.Bulkhead = (*semBulkhead)(nil)
)

// tracer is a policy that logs around the rest.
func tracer(rec *recorder, name string) bulwark.Policy {
	return bulwark.PolicyFunc(func(ctx context.Context, next bulwark.Next) error {
		rec.add(name + ">")
		err := next.Run(ctx)
		rec.add("<" + name)
		return err
	})
}

func ok42(context.Context) (int, error) { return 42, nil }

func TestComposeRunsPoliciesOutermostFirst(t *testing.T) {
	rec := &recorder{}
	ex, err := bulwark.Compose[int](tracer(rec, "a"), tracer(rec, "b"), tracer(rec, "c"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ex.Run(context.Background(), func(context.Context) (int, error) {
		rec.add("call")
		return 7, nil
	})
	if got != 7 || err != nil {
		t.Fatalf("Run = %d, %v; want 7, nil", got, err)
	}
	want := []string{"a>", "b>", "c>", "call", "<c", "<b", "<a"}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if ex.Len() != 3 {
		t.Fatalf("Len = %d, want 3", ex.Len())
	}
}

func TestExecutorEmptyAndZeroValue(t *testing.T) {
	var zero bulwark.Executor[int]
	if got, err := zero.Run(context.Background(), ok42); got != 42 || err != nil {
		t.Fatalf("zero Executor Run = %d, %v; want 42, nil", got, err)
	}
	got, err := bulwark.Do(context.Background(), ok42)
	if got != 42 || err != nil {
		t.Fatalf("Do without policies = %d, %v; want 42, nil", got, err)
	}
	if _, err := zero.Run(context.Background(), nil); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("Run(nil) err = %v, want ErrInvalidArgument", err)
	}
}

func TestRunReturnsValueAndErrorOfCall(t *testing.T) {
	boom := errors.New("boom")
	got, err := bulwark.Do(context.Background(), func(context.Context) (string, error) { return "partial", boom },
		tracer(nil, "x"))
	if got != "partial" || !errors.Is(err, boom) {
		t.Fatalf("Do = %q, %v; want partial, boom", got, err)
	}
}

// stringOnly is a result policy for strings.
type stringOnly struct{}

func (stringOnly) Run(ctx context.Context, next bulwark.Next) error { return next.Run(ctx) }
func (stringOnly) AcceptsResult(slot any) bool {
	_, ok := slot.(*string)
	return ok
}

func TestComposeRejectsInvalidStacks(t *testing.T) {
	lim := &countingLimiter{max: 1}
	cases := []struct {
		name     string
		policies []bulwark.Policy
	}{
		{"nil policy", []bulwark.Policy{nil}},
		{"nil limiter", []bulwark.Policy{bulwark.LimiterPolicy(nil, bulwark.FixedKey("k"), 1)}},
		{"nil key", []bulwark.Policy{bulwark.LimiterPolicy(lim, nil, 1)}},
		{"zero n", []bulwark.Policy{bulwark.LimiterPolicy(lim, bulwark.FixedKey("k"), 0)}},
		{"nil breaker", []bulwark.Policy{bulwark.BreakerPolicy(nil, nil)}},
		{"nil bulkhead", []bulwark.Policy{bulwark.BulkheadPolicy(nil)}},
		{"result type", []bulwark.Policy{stringOnly{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := bulwark.Compose[int](c.policies...); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("Compose err = %v, want ErrInvalidConfig", err)
			}
			if _, err := bulwark.Do(context.Background(), ok42, c.policies...); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("Do err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := bulwark.Compose[string](stringOnly{}); err != nil {
		t.Fatalf("Compose[string](stringOnly) = %v, want nil", err)
	}
}

func TestInvalidAdaptersFailAtRunToo(t *testing.T) {
	for _, p := range []bulwark.Policy{
		bulwark.LimiterPolicy(nil, nil, 0), bulwark.BreakerPolicy(nil, nil), bulwark.BulkheadPolicy(nil),
	} {
		var n bulwark.Next // never reached: the policy fails first
		err := p.Run(context.Background(), n)
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Fatalf("%T.Run err = %v, want ErrInvalidConfig", p, err)
		}
	}
}

func TestZeroNext(t *testing.T) {
	var n bulwark.Next
	if err := n.Run(context.Background()); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("zero Next Run = %v, want ErrInvalidArgument", err)
	}
	if _, ok := bulwark.ResultOf[int](n); ok {
		t.Fatal("ResultOf on zero Next reported ok")
	}
	n.Adopt(n.Fork()) // must not panic
}

func TestResultOfAndForkAdopt(t *testing.T) {
	calls := 0
	fork := bulwark.PolicyFunc(func(ctx context.Context, next bulwark.Next) error {
		if _, ok := bulwark.ResultOf[string](next); ok {
			t.Error("ResultOf[string] ok in an int composition")
		}
		slot, ok := bulwark.ResultOf[int](next)
		if !ok {
			t.Fatal("ResultOf[int] not ok")
		}
		a, b := next.Fork(), next.Fork()
		if err := a.Run(ctx); err != nil {
			return err
		}
		if err := b.Run(ctx); err != nil {
			return err
		}
		as, _ := bulwark.ResultOf[int](a)
		bs, _ := bulwark.ResultOf[int](b)
		if *as != 1 || *bs != 2 || *slot != 0 {
			t.Errorf("fork slots = %d, %d, parent %d; want 1, 2, 0", *as, *bs, *slot)
		}
		next.Adopt(a)
		return nil
	})
	got, err := bulwark.Do(context.Background(), func(context.Context) (int, error) {
		calls++
		return calls, nil
	}, fork)
	if got != 1 || err != nil {
		t.Fatalf("Do = %d, %v; want the adopted 1, nil", got, err)
	}
}

func TestLimiterPolicy(t *testing.T) {
	lim := &countingLimiter{max: 1}
	var keys []string
	key := func(ctx context.Context) string { k := ctx.Value(ctxKey{}).(string); keys = append(keys, k); return k }
	ex, err := bulwark.Compose[int](bulwark.LimiterPolicy(lim, key, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "tenant-a")
	if got, err := ex.Run(ctx, ok42); got != 42 || err != nil {
		t.Fatalf("first Run = %d, %v; want 42, nil", got, err)
	}
	called := false
	_, err = ex.Run(ctx, func(context.Context) (int, error) { called = true; return 0, nil })
	var rl *bulwark.RateLimitedError
	if !errors.Is(err, bulwark.ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("second Run err = %v, want a RateLimitedError with RetryAfter 1s", err)
	}
	if called {
		t.Fatal("denied call ran")
	}
	if !slices.Equal(keys, []string{"tenant-a", "tenant-a"}) {
		t.Fatalf("keys = %v", keys)
	}
}

type ctxKey struct{}

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, int) (bulwark.Decision, error) {
	return bulwark.Decision{}, fmt.Errorf("%w: n too large", bulwark.ErrInvalidArgument)
}

func TestLimiterPolicyPassesAllowErrors(t *testing.T) {
	_, err := bulwark.Do(context.Background(), ok42, bulwark.LimiterPolicy(failingLimiter{}, bulwark.FixedKey("k"), 1))
	if !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
}

func TestBreakerPolicyReportsOutcomes(t *testing.T) {
	boom := errors.New("boom")
	br := newFakeBreaker(nil)
	ex, err := bulwark.Compose[int](bulwark.BreakerPolicy(br, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = ex.Run(ctx, ok42)
	_, _ = ex.Run(ctx, func(context.Context) (int, error) { return 0, boom })
	_, _ = ex.Run(ctx, func(context.Context) (int, error) { return 0, fmt.Errorf("wrapped: %w", context.Canceled) })
	if s, f := br.counts(); s != 2 || f != 1 {
		t.Fatalf("successes, failures = %d, %d; want 2, 1", s, f)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic did not propagate")
			}
		}()
		_, _ = ex.Run(ctx, func(context.Context) (int, error) { panic("kaboom") })
	}()
	if s, f := br.counts(); s != 2 || f != 2 {
		t.Fatalf("after panic successes, failures = %d, %d; want 2, 2", s, f)
	}

	br.open = true
	called := false
	_, err = ex.Run(ctx, func(context.Context) (int, error) { called = true; return 0, nil })
	if !errors.Is(err, bulwark.ErrOpen) || called {
		t.Fatalf("open breaker: err = %v, called = %v; want ErrOpen, false", err, called)
	}

	// A custom classifier: only boom is a failure.
	br2 := newFakeBreaker(nil)
	onlyBoom := func(err error) bool { return errors.Is(err, boom) }
	_, _ = bulwark.Do(ctx, func(context.Context) (int, error) { return 0, errors.New("other") },
		bulwark.BreakerPolicy(br2, onlyBoom))
	if s, f := br2.counts(); s != 1 || f != 0 {
		t.Fatalf("custom classifier: successes, failures = %d, %d; want 1, 0", s, f)
	}
}

func TestBulkheadPolicy(t *testing.T) {
	rec := &recorder{}
	bh := newSemBulkhead(1, rec)
	ex, err := bulwark.Compose[int](bulwark.BulkheadPolicy(bh))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := ex.Run(ctx, func(ctx context.Context) (int, error) {
		// The only slot is ours: a nested call is rejected.
		_, err := ex.Run(ctx, ok42)
		if !errors.Is(err, bulwark.ErrBulkheadFull) {
			t.Errorf("nested Run err = %v, want ErrBulkheadFull", err)
		}
		return 1, nil
	})
	if got != 1 || err != nil {
		t.Fatalf("Run = %d, %v", got, err)
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = ex.Run(ctx, func(context.Context) (int, error) { panic("kaboom") })
	}()
	if len(bh.sem) != 0 {
		t.Fatalf("slots held after calls = %d, want 0", len(bh.sem))
	}
	want := []string{"bulkhead:acquire", "bulkhead:full", "bulkhead:release", "bulkhead:acquire", "bulkhead:release"}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("log = %v, want %v", got, want)
	}
}

// newStack builds the recommended stack of the Compose doc, on a fake clock,
// with every fake and observer logging to rec.
func newStack(t *testing.T, clk *fakeclock.Clock, rec *recorder, lim *countingLimiter, br *fakeBreaker,
	bh *semBulkhead) *bulwark.Executor[string] {
	t.Helper()
	opts := []local.Option{local.WithClock(clk), local.WithObserver(rec)}
	fb, err := local.NewFallback([]local.FallbackStep[string]{local.FallbackValue("fallback")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := local.NewRetry(local.RetryConfig[string]{MaxAttempts: 2, Delay: 10 * time.Millisecond}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	to, err := local.NewTimeout(time.Second, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := bulwark.Compose[string](
		fb,
		rt,
		bulwark.LimiterPolicy(lim, bulwark.FixedKey("svc"), 1),
		bulwark.BulkheadPolicy(bh),
		bulwark.BreakerPolicy(br, nil),
		to,
	)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestStackOrderByEvents(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	rec := &recorder{}
	lim := &countingLimiter{max: 100, rec: rec}
	br := newFakeBreaker(rec)
	bh := newSemBulkhead(1, rec)
	ex := newStack(t, clk, rec, lim, br, bh)

	transient := errors.New("transient")
	started := make(chan int, 2)
	attempt := 0
	type result struct {
		v   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := ex.Run(context.Background(), func(ctx context.Context) (string, error) {
			attempt++
			rec.add(fmt.Sprintf("call%d", attempt))
			started <- attempt
			if attempt == 1 {
				<-ctx.Done() // hangs until the timeout cancels it
				if !errors.Is(context.Cause(ctx), bulwark.ErrTimeout) {
					t.Errorf("cause of the abandoned ctx = %v, want ErrTimeout", context.Cause(ctx))
				}
				return "", ctx.Err()
			}
			return "", transient
		})
		done <- result{v, err}
	}()
	<-started
	clk.WaitTimers(1) // the timeout's timer
	clk.Advance(time.Second)
	clk.WaitTimers(1) // the retry back-off
	clk.Advance(10 * time.Millisecond)
	<-started
	r := <-done
	if r.v != "fallback" || r.err != nil {
		t.Fatalf("Run = %q, %v; want fallback, nil", r.v, r.err)
	}
	want := []string{
		"limiter", "bulkhead:acquire", "breaker", "call1", "event:timeout", "breaker:failure", "bulkhead:release",
		"event:retry",
		"limiter", "bulkhead:acquire", "breaker", "call2", "breaker:failure", "bulkhead:release",
		"event:fallback",
	}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
}

func TestStackDoesNotRetryRejections(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	ctx := context.Background()

	t.Run("breaker open", func(t *testing.T) {
		rec := &recorder{}
		br := newFakeBreaker(rec)
		br.open = true
		ex := newStack(t, clk, rec, &countingLimiter{max: 100, rec: rec}, br, newSemBulkhead(1, rec))
		v, err := ex.Run(ctx, func(context.Context) (string, error) { rec.add("call"); return "x", nil })
		if v != "fallback" || err != nil {
			t.Fatalf("Run = %q, %v; want fallback, nil", v, err)
		}
		want := []string{"limiter", "bulkhead:acquire", "breaker", "bulkhead:release", "event:fallback"}
		if got := rec.lines(); !slices.Equal(got, want) {
			t.Fatalf("events:\n got %v\nwant %v", got, want)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		rec := &recorder{}
		ex := newStack(t, clk, rec, &countingLimiter{max: 0, rec: rec}, newFakeBreaker(rec), newSemBulkhead(1, rec))
		v, err := ex.Run(ctx, func(context.Context) (string, error) { rec.add("call"); return "x", nil })
		if v != "fallback" || err != nil {
			t.Fatalf("Run = %q, %v; want fallback, nil", v, err)
		}
		want := []string{"limiter", "event:fallback"}
		if got := rec.lines(); !slices.Equal(got, want) {
			t.Fatalf("events:\n got %v\nwant %v", got, want)
		}
	})
	t.Run("success", func(t *testing.T) {
		rec := &recorder{}
		ex := newStack(t, clk, rec, &countingLimiter{max: 100, rec: rec}, newFakeBreaker(rec), newSemBulkhead(1, rec))
		v, err := ex.Run(ctx, func(context.Context) (string, error) { rec.add("call"); return "real", nil })
		if v != "real" || err != nil {
			t.Fatalf("Run = %q, %v; want real, nil", v, err)
		}
		want := []string{"limiter", "bulkhead:acquire", "breaker", "call", "breaker:success", "bulkhead:release"}
		if got := rec.lines(); !slices.Equal(got, want) {
			t.Fatalf("events:\n got %v\nwant %v", got, want)
		}
	})
}

// fourPolicies is the stack measured for allocations: limiter, bulkhead,
// breaker and retry, none of which fails.
func fourPolicies(tb testing.TB) *bulwark.Executor[int] {
	tb.Helper()
	rt, err := local.NewRetry(local.RetryConfig[int]{MaxAttempts: 3, Delay: time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	ex, err := bulwark.Compose[int](
		rt,
		bulwark.LimiterPolicy(&countingLimiter{max: 1 << 62}, bulwark.FixedKey("k"), 1),
		bulwark.BulkheadPolicy(newSemBulkhead(1024, nil)),
		bulwark.BreakerPolicy(newFakeBreaker(nil), nil),
	)
	if err != nil {
		tb.Fatal(err)
	}
	return ex
}

func TestComposeAllocations(t *testing.T) {
	ctx := context.Background()
	empty, err := bulwark.Compose[int]()
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = empty.Run(ctx, ok42) }); n != 0 {
		t.Fatalf("empty composition allocates %v per call, want 0", n)
	}
	ex := fourPolicies(t)
	if n := testing.AllocsPerRun(200, func() { _, _ = ex.Run(ctx, ok42) }); n > 1 {
		t.Fatalf("4-policy stack allocates %v per call, want at most 1 (the result slot)", n)
	}
}

func BenchmarkComposeEmpty(b *testing.B) {
	ex, err := bulwark.Compose[int]()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ex.Run(ctx, ok42)
	}
}

func BenchmarkCompose4Policies(b *testing.B) {
	ex := fourPolicies(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ex.Run(ctx, ok42)
	}
}

// BenchmarkCompose6Policies adds a fallback and a per-attempt timeout (a
// real context with a deadline) to the 4-policy stack.
func BenchmarkCompose6Policies(b *testing.B) {
	rt, _ := local.NewRetry(local.RetryConfig[int]{MaxAttempts: 3, Delay: time.Millisecond})
	fb, _ := local.NewFallback([]local.FallbackStep[int]{local.FallbackValue(0)})
	to, _ := local.NewTimeout(time.Second)
	ex, err := bulwark.Compose[int](
		fb, rt,
		bulwark.LimiterPolicy(&countingLimiter{max: 1 << 62}, bulwark.FixedKey("k"), 1),
		bulwark.BulkheadPolicy(newSemBulkhead(1024, nil)),
		bulwark.BreakerPolicy(newFakeBreaker(nil), nil),
		to,
	)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ex.Run(ctx, ok42)
	}
}

func ExampleCompose() {
	retry, _ := local.NewRetry(local.RetryConfig[string]{MaxAttempts: 3})
	fallback, _ := local.NewFallback([]local.FallbackStep[string]{local.FallbackValue("default")})
	// Build once, outermost first; reuse for every call.
	ex, err := bulwark.Compose[string](fallback, retry)
	if err != nil {
		panic(err)
	}
	calls := 0
	v, err := ex.Run(context.Background(), func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("flaky")
		}
		return "fresh", nil
	})
	fmt.Println(v, err, calls)
	v, err = ex.Run(context.Background(), func(ctx context.Context) (string, error) {
		return "", errors.New("down")
	})
	fmt.Println(v, err)
	// Output:
	// fresh <nil> 3
	// default <nil>
}

func ExampleDo() {
	timeout, _ := local.NewTimeout(time.Second)
	n, err := bulwark.Do(context.Background(), func(ctx context.Context) (int, error) {
		return 42, nil
	}, timeout)
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// badPolicy is a custom policy whose Validate reports a plain error, one
// that does not wrap ErrInvalidConfig itself.
type badPolicy struct{}

func (badPolicy) Run(ctx context.Context, next bulwark.Next) error { return next.Run(ctx) }
func (badPolicy) Validate() error                                  { return errors.New("threshold out of range") }

func TestComposeWrapsCustomValidateError(t *testing.T) {
	_, err := bulwark.Compose[int](badPolicy{})
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Compose(custom policy with a bad Validate) error = %v, want ErrInvalidConfig", err)
	}
	if got := err.Error(); !strings.Contains(got, "threshold out of range") {
		t.Errorf("error %q lost the policy's own message", got)
	}
}

// ptrPolicy is a custom policy implemented on a pointer, to pass as a
// typed nil.
type ptrPolicy struct{ n int }

func (p *ptrPolicy) Run(ctx context.Context, next bulwark.Next) error { p.n++; return next.Run(ctx) }

func TestComposeRejectsTypedNils(t *testing.T) {
	if _, err := bulwark.Compose[int]((*ptrPolicy)(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Compose((*ptrPolicy)(nil)) error = %v, want ErrInvalidConfig", err)
	}
	var tb *local.TokenBucket
	if _, err := bulwark.Compose[int](bulwark.LimiterPolicy(tb, bulwark.FixedKey("k"), 1)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("LimiterPolicy with a typed nil limiter: error = %v, want ErrInvalidConfig", err)
	}
	var br *local.Breaker
	if _, err := bulwark.Compose[int](bulwark.BreakerPolicy(br, nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("BreakerPolicy with a typed nil breaker: error = %v, want ErrInvalidConfig", err)
	}
	var bh *local.Bulkhead
	if _, err := bulwark.Compose[int](bulwark.BulkheadPolicy(bh)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("BulkheadPolicy with a typed nil bulkhead: error = %v, want ErrInvalidConfig", err)
	}
}
