package control_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

var checkoutDefaults = policy.Spec{
	RateLimit:      &policy.RateLimit{Limit: intp(100), Per: policy.D(time.Second), Key: "global"},
	CircuitBreaker: &policy.CircuitBreaker{},
}

// TestStoreSetHistoryRollback: a valid change is written with a new
// version and recorded with its reason and diff; an invalid one is refused
// with the field named and nothing changes; rollback restores the earlier
// value as a change of its own.
func TestStoreSetHistoryRollback(t *testing.T) {
	c := redistest.Default(t)
	prefix := prefixOf(t, c)
	f := startFleet(t, 1, prefix, func() redis.UniversalClient { return c }, checkoutDefaults)
	s := newStore(t, c, prefix)
	// The replica registers its defaults with its first heartbeat.
	eventually(t, 5*time.Second, "defaults registered", func() bool {
		e, err := s.Get(ctx, "checkout")
		return err == nil && e.Defaults != nil
	})

	r1, err := s.Assign(ctx, "checkout", []string{"ratelimit.limit=50"}, control.Meta{Who: "alice", Why: "incident 42"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || len(r1.Diff) != 1 || r1.Diff[0].Path != "ratelimit.limit" || r1.Diff[0].New != "50" {
		t.Fatalf("record %+v", r1)
	}
	r2, err := s.Assign(ctx, "checkout", []string{"ratelimit.shadow=true", "circuitbreaker.force=open"}, control.Meta{Who: "bob", Why: "test shadow"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version != 2 || r2.Prev != 1 || len(r2.Diff) != 2 {
		t.Fatalf("record %+v", r2)
	}

	// Invalid: refused, nothing written.
	_, err = s.Assign(ctx, "checkout", []string{"ratelimit.limit=-5"}, control.Meta{Who: "eve", Why: "oops"})
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("invalid limit: err %v, want ErrInvalidConfig", err)
	}
	if ps := policy.Problems(err); len(ps) != 1 || ps[0].Path != "ratelimit.limit" {
		t.Fatalf("problems %v", ps)
	}
	_, err = s.Assign(ctx, "checkout", []string{"ratelimit.limt=5"}, control.Meta{})
	if err == nil || !strings.Contains(err.Error(), `did you mean "limit"`) {
		t.Fatalf("unknown field: err %v", err)
	}
	_, err = s.Assign(ctx, "checkout", []string{"circuitbreaker.force=opn"}, control.Meta{})
	if err == nil || !strings.Contains(err.Error(), `did you mean "open"`) {
		t.Fatalf("bad force: err %v", err)
	}
	if v, err := s.Version(ctx); err != nil || v != 2 {
		t.Fatalf("version after refused changes: %d, %v; want 2", v, err)
	}

	// Rollback to version 1: shadow and force go, the limit stays 50.
	rb, err := s.Rollback(ctx, "checkout", 1, control.Meta{Who: "alice", Why: "undo shadow"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Version != 3 || rb.RollbackOf != 1 {
		t.Fatalf("rollback record %+v", rb)
	}
	e, err := s.Get(ctx, "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if eff := e.Effective(); *eff.RateLimit.Limit != 50 || eff.RateLimit.Shadow != nil || eff.CircuitBreaker.Force != "" {
		t.Fatalf("after rollback: %+v", eff.RateLimit)
	}
	// Rollback with no version: to the value before the current one (2).
	if rb, err = s.Rollback(ctx, "checkout", 0, control.Meta{Why: "redo"}); err != nil || rb.RollbackOf != 2 {
		t.Fatalf("rollback to previous: %+v, %v", rb, err)
	}
	if _, err := s.Rollback(ctx, "checkout", 99, control.Meta{}); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("rollback to unknown version: %v", err)
	}

	h, err := s.History(ctx, "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 4 || h[0].Version != 4 || h[3].Version != 1 || h[3].Why != "incident 42" || h[3].Who != "alice" || h[2].Why != "test shadow" {
		t.Fatalf("history %+v", h)
	}
	// The replica runs version 4 (= 2's value) within the poll bound.
	eventually(t, 2*time.Second, "replica applied version 4", func() bool {
		p := f.stacks[0].Load()
		return p.LimitShadow && p.BreakerForce == policy.ForceOpen && f.replicas[0].Version() == 4
	})
	if _, err := f.stacks[0].Load().Breaker.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("forced-open breaker admitted: %v", err)
	}
}

// TestStoreConflict: SetIf with a stale version writes nothing.
func TestStoreConflict(t *testing.T) {
	c := redistest.Default(t)
	s := newStore(t, c, prefixOf(t, c))
	l := policy.Spec{Timeout: policy.D(time.Second)}
	r, err := s.SetIf(ctx, "jobs", l, 0, control.Meta{Why: "first"})
	if err != nil || r.Version != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	if _, err := s.SetIf(ctx, "jobs", policy.Spec{Timeout: policy.D(2 * time.Second)}, 0, control.Meta{}); !errors.Is(err, control.ErrConflict) {
		t.Fatalf("stale SetIf: %v, want ErrConflict", err)
	}
	if r, err := s.Set(ctx, "jobs", l, control.Meta{}); err != nil || r.Version != 1 || len(r.Diff) != 0 {
		t.Fatalf("unchanged Set: %+v, %v; want no write", r, err)
	}
	if _, err := s.Set(ctx, "jobs", policy.Spec{Name: "x"}, control.Meta{}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("setting the name live: %v", err)
	}
	if _, err := s.Get(ctx, "bad name"); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
}

// TestAssignments: the path=value syntax.
func TestAssignments(t *testing.T) {
	base := policy.Spec{RateLimit: &policy.RateLimit{Limit: intp(10), Burst: intp(20)}}
	cases := []struct {
		in   []string
		want string // JSON of the result, or "error: <substring>"
	}{
		{[]string{"ratelimit.limit=50"}, `{"ratelimit":{"limit":50,"burst":20}}`},
		{[]string{"ratelimit.burst="}, `{"ratelimit":{"limit":10}}`},
		{[]string{"ratelimit.burst=unset", "ratelimit.limit=null"}, `{}`},
		{[]string{"timeout=2s"}, `{"ratelimit":{"limit":10,"burst":20},"timeout":"2s"}`},
		{[]string{"retry.statuses=[502,503]"}, `{"ratelimit":{"limit":10,"burst":20},"retry":{"statuses":[502,503]}}`},
		{[]string{"circuitbreaker.force=open"}, `{"ratelimit":{"limit":10,"burst":20},"circuitbreaker":{"force":"open"}}`},
		{[]string{"ratelimit.limit=many"}, "error: ratelimit.limit"},
		{[]string{"ratelimit.limit.x=1"}, "error: is not a block"},
		{[]string{"ratelimt.limit=1"}, `error: did you mean "ratelimit"`},
	}
	for _, c := range cases {
		var as []control.Assignment
		var err error
		for _, s := range c.in {
			var a control.Assignment
			if a, err = control.ParseAssignment(s); err != nil {
				break
			}
			as = append(as, a)
		}
		var got string
		if err == nil {
			var out policy.Spec
			if out, err = control.Apply(base, as...); err == nil {
				got = jsonOf(t, out)
			}
		}
		if err != nil {
			got = "error: " + err.Error()
		}
		if strings.HasPrefix(c.want, "error: ") {
			if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("%v: got %s, want %s", c.in, got, c.want)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%v: got %s, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"ratelimit.limit", "=5", "a..b=1"} {
		if _, err := control.ParseAssignment(bad); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("ParseAssignment(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
}
