package policy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/policy"
)

func mustBuild(t *testing.T, name string, s policy.Spec, opts ...policy.Option) *policy.Stack {
	t.Helper()
	st, err := policy.Build(name, s, opts...)
	if err != nil {
		t.Fatalf("Build(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func allow(t *testing.T, l bulwark.Limiter, key string, n int) (admitted int) {
	t.Helper()
	for range n {
		d, err := l.Allow(context.Background(), key, 1)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if d.Allowed {
			admitted++
		}
	}
	return admitted
}

func TestBuildLocal(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	for _, alg := range []string{policy.TokenBucket, policy.SlidingWindow, policy.SlidingLog, policy.FixedWindow} {
		s := policy.Spec{
			RateLimit:      &policy.RateLimit{Algorithm: alg, Limit: new(5), Per: policy.D(time.Minute)},
			CircuitBreaker: &policy.CircuitBreaker{},
			Bulkhead:       &policy.Bulkhead{MaxConcurrent: new(2)},
			Shed:           &policy.Shed{MaxInFlight: new(10)},
			Timeout:        policy.D(time.Second),
		}
		st := mustBuild(t, "getPet", s, policy.WithClock(clk))
		p := st.Load()
		if p.Name != "getPet" || p.LimitScope != policy.ScopeLocal || p.Algorithm != alg || p.Limit != bulwark.PerMinute(5) {
			t.Errorf("%s: parts = %q %q %q %v", alg, p.Name, p.LimitScope, p.Algorithm, p.Limit)
		}
		if got := allow(t, p.Limiter, "k", 8); got != 5 {
			t.Errorf("%s: admitted %d of 8, want 5", alg, got)
		}
		if p.Breaker == nil || p.Bulkhead == nil || p.Shedder == nil || p.Timeout != time.Second || p.BreakerConfig != bulwark.DefaultBreakerConfig() {
			t.Errorf("%s: parts missing: %+v", alg, p)
		}
	}
}

func TestBuildRejectsBadSpecWhole(t *testing.T) {
	_, err := policy.Build("", policy.Spec{RateLimit: &policy.RateLimit{Limit: new(0)}})
	wantProblems(t, problems(t, err), "name: a stack needs a name", "ratelimit.limit: must be at least 1, got 0")
	_, err = policy.Build("op", policy.Spec{}, policy.WithMaxKeys(-1))
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("WithMaxKeys(-1) = %v", err)
	}
	if _, err := policy.Build("op", policy.Spec{}, nil); err != nil {
		t.Errorf("a nil option: %v", err)
	}
}

func TestSpecNameNamesThePatterns(t *testing.T) {
	st := mustBuild(t, "listPets", policy.Spec{Name: "pets-read", RateLimit: &policy.RateLimit{Limit: new(1)}})
	if st.Load().Name != "pets-read" || st.Name() != "listPets" {
		t.Errorf("names = %q, %q", st.Load().Name, st.Name())
	}
}

func testStore(t *testing.T, prefix string) *distributed.Store {
	t.Helper()
	c := redistest.Default(t)
	s, err := distributed.New(c, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestBuildFleetSharesTheLimit(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Default(t))
	spec := policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: new(7), Per: policy.D(time.Hour)},
		CircuitBreaker: &policy.CircuitBreaker{},
		Bulkhead:       &policy.Bulkhead{MaxConcurrent: new(1)},
	}
	// Two replicas: two stores on one prefix, two stacks of one name.
	a := mustBuild(t, "createOrder", spec, policy.WithStore(testStore(t, prefix)))
	b := mustBuild(t, "createOrder", spec, policy.WithStore(testStore(t, prefix)))
	pa, pb := a.Load(), b.Load()
	if pa.LimitScope != policy.ScopeFleet {
		t.Fatalf("scope = %q, want fleet", pa.LimitScope)
	}
	if got := allow(t, pa.Limiter, "tenant", 5) + allow(t, pb.Limiter, "tenant", 5); got != 7 {
		t.Errorf("two replicas admitted %d, want the fleet limit 7", got)
	}
	if _, ok := pa.Breaker.(*distributed.Breaker); !ok {
		t.Errorf("breaker is %T, want *distributed.Breaker", pa.Breaker)
	}
	rel, err := pa.Bulkhead.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := pb.Bulkhead.Acquire(ctx); err == nil {
		t.Error("the other replica got a slot of a full fleet-wide bulkhead of 1")
	}
	rel()
}

func TestBuildTieredAndLocalScope(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Default(t))
	store := testStore(t, prefix)
	tiered := mustBuild(t, "op", policy.Spec{RateLimit: &policy.RateLimit{Limit: new(3), Per: policy.D(time.Hour), Scope: policy.ScopeTiered}}, policy.WithStore(store))
	if _, ok := tiered.Load().Limiter.(*distributed.Tiered); !ok {
		t.Errorf("tiered limiter is %T", tiered.Load().Limiter)
	}
	if got := allow(t, tiered.Load().Limiter, "k", 5); got != 3 {
		t.Errorf("tiered admitted %d, want 3", got)
	}
	loc := mustBuild(t, "op2", policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: new(3), Scope: policy.ScopeLocal},
		CircuitBreaker: &policy.CircuitBreaker{Scope: policy.ScopeLocal},
		Bulkhead:       &policy.Bulkhead{MaxConcurrent: new(1), Scope: policy.ScopeLocal},
	}, policy.WithStore(store))
	p := loc.Load()
	if _, ok := p.Limiter.(*local.TokenBucket); !ok || p.LimitScope != policy.ScopeLocal {
		t.Errorf("local-scope limiter is %T (%s)", p.Limiter, p.LimitScope)
	}
	if _, ok := p.Breaker.(*local.Breaker); !ok {
		t.Errorf("local-scope breaker is %T", p.Breaker)
	}
	if _, ok := p.Bulkhead.(*local.Bulkhead); !ok {
		t.Errorf("local-scope bulkhead is %T", p.Bulkhead)
	}
}

func TestBackpressureRetryAfter(t *testing.T) {
	st := mustBuild(t, "op", policy.Spec{RateLimit: &policy.RateLimit{Limit: new(1), Per: policy.D(time.Millisecond),
		RetryAfter: policy.RetryAfterBackpressure,
		Backpressure: &policy.Backpressure{Window: new(4), Baseline: policy.D(10 * time.Millisecond),
			MinRetryAfter: policy.D(5 * time.Second), MaxRetryAfter: policy.D(0)}}})
	p := st.Load()
	if p.Backpressure == nil {
		t.Fatal("no backpressure estimator")
	}
	allow(t, p.Limiter, "k", 1)
	d, err := p.Limiter.Allow(context.Background(), "k", 1)
	if err != nil || d.Allowed {
		t.Fatalf("second call = %+v, %v", d, err)
	}
	if d.RetryAfter < 4*time.Second {
		t.Errorf("RetryAfter = %v, want the estimator's ~5s", d.RetryAfter)
	}
}

func TestUpdate(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	spec := policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: new(2), Per: policy.D(time.Hour)},
		CircuitBreaker: &policy.CircuitBreaker{},
	}
	st := mustBuild(t, "op", spec, policy.WithClock(clk))
	first := st.Load()
	if first.Version != 1 {
		t.Errorf("first version = %d", first.Version)
	}
	allow(t, first.Limiter, "k", 2)

	// Unchanged patterns are carried over with their state.
	if err := st.Update(spec.Merge(policy.Spec{Timeout: policy.D(time.Second)})); err != nil {
		t.Fatal(err)
	}
	second := st.Load()
	if second.Version != 2 || second.Limiter != first.Limiter || second.Breaker != first.Breaker || second.Timeout != time.Second {
		t.Errorf("update did not carry the unchanged patterns over: %+v", second)
	}
	if got := allow(t, second.Limiter, "k", 1); got != 0 {
		t.Error("the carried-over limiter forgot its state")
	}

	// A changed limit builds a new limiter.
	if err := st.Update(spec.Merge(policy.Spec{RateLimit: &policy.RateLimit{Limit: new(5)}})); err != nil {
		t.Fatal(err)
	}
	third := st.Load()
	if third.Limiter == second.Limiter || third.Limit.Events != 5 || third.Breaker != first.Breaker {
		t.Errorf("changed limit: %+v", third)
	}

	// An invalid update changes nothing.
	err := st.Update(policy.Spec{RateLimit: &policy.RateLimit{Limit: new(-1)}})
	wantProblems(t, problems(t, err), "ratelimit.limit: must be at least 1")
	if st.Load() != third {
		t.Error("an invalid update replaced the parts")
	}

	// Removing a pattern removes it.
	if err := st.Update(policy.Spec{}); err != nil {
		t.Fatal(err)
	}
	if p := st.Load(); p.Limiter != nil || p.Breaker != nil {
		t.Errorf("emptied stack still has %+v", p)
	}
	_ = st.Close()
	if err := st.Update(spec); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("Update after Close = %v", err)
	}
}

func TestUpdateFleetKeepsState(t *testing.T) {
	prefix := redistest.Prefix(t, redistest.Default(t))
	store := testStore(t, prefix)
	spec := policy.Spec{RateLimit: &policy.RateLimit{Limit: new(4), Per: policy.D(time.Hour)}, CircuitBreaker: &policy.CircuitBreaker{}}
	st := mustBuild(t, "op", spec, policy.WithStore(store))
	allow(t, st.Load().Limiter, "k", 3)
	// Raise the limit: the fleet state (3 taken) stays, so fewer than a fresh
	// bucket's 6 are admitted (how many depends on the algorithm's
	// arithmetic across a change of rate), and at least one.
	if err := st.Update(spec.Merge(policy.Spec{RateLimit: &policy.RateLimit{Limit: new(6)},
		CircuitBreaker: &policy.CircuitBreaker{OpenFor: policy.D(time.Minute)}})); err != nil {
		t.Fatal(err)
	}
	if got := allow(t, st.Load().Limiter, "k", 6); got < 1 || got >= 6 {
		t.Errorf("after raising the limit admitted %d, want between 1 and 5 (the state kept)", got)
	}
}

func TestUpdateRetiresReplacedFleetPatterns(t *testing.T) {
	store := testStore(t, redistest.Prefix(t, redistest.Default(t)))
	spec := policy.Spec{CircuitBreaker: &policy.CircuitBreaker{}}
	st := mustBuild(t, "op", spec, policy.WithStore(store))
	first := st.Load().Breaker
	if err := st.Update(policy.Spec{CircuitBreaker: &policy.CircuitBreaker{OpenFor: policy.D(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if st.Load().Breaker == first {
		t.Fatal("a changed breaker was carried over")
	}
	// A call that loaded the old Parts still works...
	done, err := first.Allow(context.Background())
	if err != nil {
		t.Fatalf("the replaced breaker right after the update: %v", err)
	}
	done(true)
	// ...until the next update closes it.
	if err := st.Update(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Allow(context.Background()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("the breaker replaced two updates ago = %v, want ErrClosed", err)
	}
}

func TestDo(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	fn := func(context.Context) error { calls.Add(1); return nil }

	st := mustBuild(t, "op", policy.Spec{RateLimit: &policy.RateLimit{Limit: new(1), Per: policy.D(time.Hour), Key: "global"}})
	if err := st.Do(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if err := st.Do(ctx, fn); !errors.Is(err, bulwark.ErrRateLimited) {
		t.Errorf("second Do = %v, want ErrRateLimited", err)
	}
	if err := st.Do(policy.WithKey(ctx, "other"), fn); err != nil {
		t.Errorf("Do with another key = %v", err)
	}
	if err := st.Do(ctx, nil); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("Do(nil) = %v", err)
	}

	// Shadow: rejections are reported, the call runs.
	var shadowed atomic.Int32
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Shadow && (!e.Allowed || e.Kind == bulwark.EventRejected) {
			shadowed.Add(1)
		}
	})
	sh := mustBuild(t, "op", policy.Spec{Shadow: new(true), RateLimit: &policy.RateLimit{Limit: new(1), Per: policy.D(time.Hour)},
		Bulkhead: &policy.Bulkhead{MaxConcurrent: new(1)}}, policy.WithObserver(obs))
	calls.Store(0)
	for range 3 {
		if err := sh.Do(ctx, fn); err != nil {
			t.Errorf("shadow Do = %v", err)
		}
	}
	hold := make(chan struct{})
	entered := make(chan struct{})
	go func() {
		_ = sh.Do(ctx, func(context.Context) error { close(entered); <-hold; return nil })
	}()
	<-entered
	if err := sh.Do(ctx, fn); err != nil {
		t.Errorf("shadow Do with a full bulkhead = %v", err)
	}
	close(hold)
	if calls.Load() != 4 || shadowed.Load() < 4 {
		t.Errorf("shadow: %d calls, %d shadow rejections; want 4 and at least 4", calls.Load(), shadowed.Load())
	}

	// Disabled: nothing applies.
	off := mustBuild(t, "op", policy.Spec{Enabled: new(false), RateLimit: &policy.RateLimit{Limit: new(1), Per: policy.D(time.Hour)}})
	for range 3 {
		if err := off.Do(ctx, fn); err != nil {
			t.Errorf("disabled Do = %v", err)
		}
	}
}

func TestDoRetryAndTimeout(t *testing.T) {
	ctx := context.Background()
	st := mustBuild(t, "op", policy.Spec{
		Retry:   &policy.Retry{Attempts: new(3), Delay: policy.D(time.Millisecond), Jitter: policy.JitterNone},
		Timeout: policy.D(20 * time.Millisecond),
	})
	var n atomic.Int32
	boom := errors.New("boom")
	err := st.Do(ctx, func(context.Context) error { n.Add(1); return boom })
	if !errors.Is(err, boom) || n.Load() != 3 {
		t.Errorf("Do = %v after %d attempts, want boom after 3", err, n.Load())
	}
	n.Store(0)
	err = st.Do(ctx, func(ctx context.Context) error { n.Add(1); <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, bulwark.ErrTimeout) || n.Load() != 3 {
		t.Errorf("Do = %v after %d attempts, want ErrTimeout after 3", err, n.Load())
	}
	pols, err := st.Load().Policies(nil)
	if err != nil || len(pols) != 2 {
		t.Errorf("Policies = %d, %v; want retry and timeout", len(pols), err)
	}
}

func TestDoBreakerOpens(t *testing.T) {
	st := mustBuild(t, "op", policy.Spec{CircuitBreaker: &policy.CircuitBreaker{ConsecutiveFailures: new(2), MinimumCalls: new(100)}})
	boom := errors.New("boom")
	for range 2 {
		_ = st.Do(context.Background(), func(context.Context) error { return boom })
	}
	if err := st.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, bulwark.ErrOpen) {
		t.Errorf("after two failures Do = %v, want ErrOpen", err)
	}
}

func TestNilStack(t *testing.T) {
	var s *policy.Stack
	if s.Name() != "" || s.Load() == nil || s.Load().Enabled || s.Close() != nil {
		t.Error("a nil Stack is not inert")
	}
	if err := s.Update(policy.Spec{}); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("nil Update = %v", err)
	}
	if err := s.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("nil Do = %v", err)
	}
	var p *policy.Parts
	if pols, err := p.Policies(nil); pols != nil || err != nil {
		t.Errorf("nil Parts.Policies = %v, %v", pols, err)
	}
}
