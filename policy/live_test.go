package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/policy"
)

func ip(v int) *int { return &v }

// TestUpdateLocalLimitInPlace: a new limit of a local limiter keeps each
// key's spent tokens; a new period starts afresh.
func TestUpdateLocalLimitInPlace(t *testing.T) {
	for _, alg := range []string{policy.TokenBucket, policy.SlidingWindow, policy.FixedWindow} {
		t.Run(alg, func(t *testing.T) {
			clk := fakeclock.New(time.Unix(1_000_000, 0))
			spec := policy.Spec{RateLimit: &policy.RateLimit{Algorithm: alg, Limit: ip(10), Per: policy.D(time.Minute), Key: "global"}}
			s, err := policy.Build("op", spec, policy.WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			for i := 0; i < 8; i++ {
				if d, _ := s.Load().Limiter.Allow(ctx, "k", 1); !d.Allowed {
					t.Fatalf("request %d denied", i)
				}
			}
			// A window keeps its count: 8 taken of 5, denied; then 12 more
			// of 20. A token bucket keeps its arrival time: 8 of 10/min is
			// 48s of debt, 4 tokens at 5/min (one more admitted, then 60s
			// of debt: full), and still full at 20/min.
			afterShrink, afterRaise := 0, 12
			if alg == policy.TokenBucket {
				afterShrink, afterRaise = 1, 0
			}
			count := func() int {
				n := 0
				for ; n < 30; n++ {
					d, err := s.Load().Limiter.Allow(ctx, "k", 1)
					if err != nil || d.Remaining < 0 {
						t.Fatalf("%+v, %v", d, err)
					}
					if !d.Allowed {
						break
					}
				}
				return n
			}
			spec.RateLimit.Limit = ip(5)
			if err := s.Update(spec); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != afterShrink {
				t.Fatalf("8 spent, limit now 5: admitted %d more, want %d (a fresh limiter would admit 5)", n, afterShrink)
			}
			spec.RateLimit.Limit = ip(20)
			if err := s.Update(spec); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != afterRaise {
				t.Fatalf("limit raised to 20: admitted %d more, want %d", n, afterRaise)
			}
			spec.RateLimit.Per = policy.D(2 * time.Minute)
			if err := s.Update(spec); err != nil {
				t.Fatal(err)
			}
			if d, _ := s.Load().Limiter.Allow(ctx, "k", 1); !d.Allowed || d.Remaining != 19 {
				t.Fatalf("new period: %+v, want a fresh bucket", d)
			}
		})
	}
}

// TestUpdateLocalBulkheadInPlace: held slots stay held across a change of
// max_concurrent; a shrunken cap admits nobody until enough are released.
func TestUpdateLocalBulkheadInPlace(t *testing.T) {
	spec := policy.Spec{Bulkhead: &policy.Bulkhead{MaxConcurrent: ip(3), Scope: policy.ScopeLocal}}
	s, err := policy.Build("op", spec)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var rel []func()
	for i := 0; i < 3; i++ {
		r, err := s.Load().Bulkhead.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, r)
	}
	spec.Bulkhead.MaxConcurrent = ip(2)
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	b := s.Load().Bulkhead.(*local.Bulkhead)
	if b.InUse() != 3 || b.MaxConcurrent() != 2 {
		t.Fatalf("in use %d of %d, want 3 of 2", b.InUse(), b.MaxConcurrent())
	}
	rel[0]()
	if _, err := b.Acquire(ctx); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("2 held of 2: %v, want full", err)
	}
	rel[1]()
	r, err := b.Acquire(ctx)
	if err != nil {
		t.Fatalf("1 held of 2: %v", err)
	}
	r()
	rel[2]()
}

// TestForce: circuitbreaker.force opens or closes a breaker without
// touching its counts.
func TestForce(t *testing.T) {
	spec := policy.Spec{CircuitBreaker: &policy.CircuitBreaker{Scope: policy.ScopeLocal, ConsecutiveFailures: ip(1), MinimumCalls: ip(100)}}
	s, err := policy.Build("op", spec)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	inner := s.Load().Breaker
	spec.CircuitBreaker.Force = policy.ForceOpen
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	err = s.Do(ctx, func(context.Context) error { return nil })
	if !errors.Is(err, bulwark.ErrOpen) || !policy.IsForced(err) {
		t.Fatalf("forced open: %v", err)
	}
	if st := s.Load().Breaker.State(ctx); st != bulwark.Open {
		t.Fatalf("state %v", st)
	}
	spec.CircuitBreaker.Force = policy.ForceClosed
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		_ = s.Do(ctx, func(context.Context) error { return errors.New("boom") })
	}
	if inner.State(ctx) != bulwark.Closed {
		t.Fatal("failures under force=closed reached the breaker")
	}
	spec.CircuitBreaker.Force = ""
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	if s.Load().Breaker != inner {
		t.Fatal("removing the override did not give the same breaker back")
	}
	spec.CircuitBreaker.Force = "opn"
	if err := s.Update(spec); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("bad force: %v", err)
	}
}

// TestUpdateLocalBreakerInPlace: new thresholds of a local breaker keep
// its window's counts.
func TestUpdateLocalBreakerInPlace(t *testing.T) {
	spec := policy.Spec{CircuitBreaker: &policy.CircuitBreaker{Scope: policy.ScopeLocal, ConsecutiveFailures: ip(10), MinimumCalls: ip(100)}}
	s, err := policy.Build("op", spec)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	fail := func() { _ = s.Do(ctx, func(context.Context) error { return errors.New("boom") }) }
	for i := 0; i < 3; i++ {
		fail()
	}
	inner := s.Load().Breaker
	spec.CircuitBreaker.ConsecutiveFailures = ip(4)
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	if s.Load().Breaker != inner {
		t.Fatal("a new threshold rebuilt the breaker")
	}
	if got := inner.(*local.Breaker).Config().ConsecutiveFailures; got != 4 {
		t.Fatalf("consecutive failures %d, want 4", got)
	}
	fail() // the 4th in a row: trips only if the first 3 were kept
	if st := inner.State(ctx); st != bulwark.Open {
		t.Fatalf("state %v after 4 failures in a row with the threshold at 4, want open", st)
	}
	spec.CircuitBreaker.Window = policy.D(time.Minute)
	if err := s.Update(spec); err != nil {
		t.Fatal(err)
	}
	if s.Load().Breaker == inner || s.Load().Breaker.State(ctx) != bulwark.Closed {
		t.Fatal("a new window did not start a fresh breaker")
	}
}

// TestRelimitLocalMatchesFleet: after a limit change, a local token bucket
// (Relimit) and the fleet-wide one (the same Redis state read with the new
// limit) decide alike, step by step, on one clock.
func TestRelimitLocalMatchesFleet(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	c := redistest.Default(t)
	store, err := distributed.New(c, distributed.WithPrefix(redistest.Prefix(t, c)), distributed.WithClock(clk),
		distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	spec := func(limit, burst int, scope string) policy.Spec {
		return policy.Spec{RateLimit: &policy.RateLimit{Limit: ip(limit), Burst: ip(burst), Per: policy.D(time.Minute), Key: "global", Scope: scope}}
	}
	loc, err := policy.Build("op", spec(10, 10, policy.ScopeLocal), policy.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	fleet, err := policy.Build("op", spec(10, 10, policy.ScopeFleet), policy.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	ctx := context.Background()
	step := func(what string) {
		t.Helper()
		a, err1 := loc.Load().Limiter.Allow(ctx, "", 1)
		b, err2 := fleet.Load().Limiter.Allow(ctx, "", 1)
		if err1 != nil || err2 != nil || b.Degraded {
			t.Fatalf("%s: %v, %v, degraded %v", what, err1, err2, b.Degraded)
		}
		if a.Allowed != b.Allowed || a.Remaining != b.Remaining || a.RetryAfter != b.RetryAfter {
			t.Fatalf("%s: local %+v, fleet %+v", what, a, b)
		}
	}
	for i := 0; i < 7; i++ {
		step("before the change")
	}
	for _, l := range [][2]int{{4, 4}, {6, 12}, {3, 2}, {17, 17}} {
		if err := loc.Update(spec(l[0], l[1], policy.ScopeLocal)); err != nil {
			t.Fatal(err)
		}
		if err := fleet.Update(spec(l[0], l[1], policy.ScopeFleet)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ {
			step(fmt.Sprintf("limit %d burst %d, step %d", l[0], l[1], i))
			clk.Advance(3700 * time.Millisecond)
		}
	}
}
