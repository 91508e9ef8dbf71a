package bulwarkgrpc

import (
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/policy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func stack(t *testing.T, name, spec string) *policy.Stack {
	t.Helper()
	sp, err := policy.Parse([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	st, err := policy.Build(name, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestServerPolicies(t *testing.T) {
	sayStack := stack(t, "say", `{"ratelimit": {"limit": 1, "per": "1m", "key": "header:X-Tenant", "scope": "local"}}`)
	svcStack := stack(t, "echo", `{"ratelimit": {"limit": 2, "per": "1m", "key": "route", "scope": "local"}}`)
	obs := &events{}
	ic, err := ServerPolicies(map[string]*policy.Stack{methodSay: sayStack, "/test.Echo/*": svcStack},
		WithRateLimitMetadata("", 0), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, startServer(t, newEcho(), serve(ic)...))
	ctx := ctxT(t)
	a := metadata.AppendToOutgoingContext(ctx, "x-tenant", "a")
	b := metadata.AppendToOutgoingContext(ctx, "x-tenant", "b")
	_, err, hdr, _ := say(a, conn, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(RateLimitPolicyKey); len(got) != 1 || got[0] != `"say";q=1;w=60` {
		t.Errorf("policy metadata = %q, want the stack's name and period", got)
	}
	_, err, _, _ = say(a, conn, "ok")
	wantCode(t, err, codes.ResourceExhausted)
	if _, err, _, _ := say(b, conn, "ok"); err != nil {
		t.Errorf("tenant b shares tenant a's budget: %v", err)
	}
	for range 2 {
		if _, err, _ := watch(ctx, conn, "x"); err != nil {
			t.Fatal(err)
		}
	}
	_, err, _ = watch(ctx, conn, "x")
	wantCode(t, err, codes.ResourceExhausted)

	// A live update applies from the next call.
	sp, _ := policy.Parse([]byte(`{"enabled": false}`))
	if err := sayStack.Update(sp); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err, _, _ := say(a, conn, "ok"); err != nil {
			t.Fatalf("disabled stack still limits: %v", err)
		}
	}
	sp, _ = policy.Parse([]byte(`{"ratelimit": {"limit": 1, "per": "1m", "key": "global", "scope": "local", "shadow": true}}`))
	if err := sayStack.Update(sp); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err, _, _ := say(a, conn, "ok"); err != nil {
			t.Fatalf("shadow limit enforced: %v", err)
		}
	}
	var shadowed int
	for _, ev := range obs.of(bulwark.EventDecision) {
		if ev.Shadow && ev.Name == "say" {
			shadowed++
		}
	}
	if shadowed != 2 {
		t.Errorf("shadow denials reported = %d, want 2 (of 3 calls over a limit of 1)", shadowed)
	}
	if _, err := ServerPolicies(map[string]*policy.Stack{"nope": sayStack}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad method key: %v", err)
	}
}

func TestServerPoliciesBreakerBulkheadTimeout(t *testing.T) {
	st := stack(t, "guarded", `{"circuitbreaker": {"consecutive_failures": 1, "minimum_calls": 100, "open_for": "1h", "scope": "local"},
		"timeout": "50ms"}`)
	ic, err := ServerPolicies(map[string]*policy.Stack{methodSay: st})
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, startServer(t, newEcho(), serve(ic)...))
	ctx := ctxT(t)
	_, err, _, _ = say(ctx, conn, "block")
	wantCode(t, err, codes.DeadlineExceeded)
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.Unavailable) // the timeout tripped the breaker
}

func TestClientMethodPolicies(t *testing.T) {
	st := stack(t, "say", `{"retry": {"attempts": 2}, "circuitbreaker": {"consecutive_failures": 3, "minimum_calls": 100, "open_for": "1h", "scope": "local"}}`)
	cl := mustClient(t, WithMaxRetries(0), WithBackoff(1e3, 1e3), WithMethodPolicies(map[string]*policy.Stack{methodSay: st}))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	ctx := ctxT(t)
	_, err, _, _ := say(ctx, conn, "code=14")
	wantCode(t, err, codes.Unavailable)
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("calls = %d, want 2 (the stack's two attempts)", n)
	}
	// Watch is not in the map: the client's own options (no retry).
	if _, err, _ := watch(ctx, conn, "code=14"); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch: %v", err)
	}
	// The stack's breaker: two attempts failed above, one more trips it.
	_, _, _, _ = say(ctx, conn, "code=13")
	if s := st.Load().Breaker.State(ctx); s != bulwark.Open {
		t.Fatalf("stack breaker %v, want open", s)
	}
	_, err, _, _ = say(ctx, conn, "ok")
	if !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("call with the stack's breaker open: %v", err)
	}
	if _, err := NewClient(WithMethodPolicies(map[string]*policy.Stack{"bad": st})); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad method key: %v", err)
	}
}

func TestClientMethodPolicyTimeoutCountsAsFailure(t *testing.T) {
	st := stack(t, "slow", `{"timeout": "50ms", "circuitbreaker": {"consecutive_failures": 1, "minimum_calls": 100, "open_for": "1h", "scope": "local"}}`)
	cl := mustClient(t, WithMethodPolicies(map[string]*policy.Stack{methodSay: st}))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	ctx := ctxT(t)
	_, err, _, _ := say(ctx, conn, "block")
	wantCode(t, err, codes.DeadlineExceeded)
	if s := st.Load().Breaker.State(ctx); s != bulwark.Open {
		t.Fatalf("breaker %v after an attempt ran past its timeout, want open", s)
	}
}
