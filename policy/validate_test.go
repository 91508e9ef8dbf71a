package policy_test

import (
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/policy"
)

func TestValidateListsEveryProblem(t *testing.T) {
	s, err := policy.Parse([]byte(`{
		"name": "bad name",
		"ratelimit": {"algorithm": "token_buckt", "limit": -5, "per": "-1s", "burst": -1, "key": "cookie:x", "scope": "fleat", "retry_after": "never"},
		"circuitbreaker": {"failure_rate": 2, "window": "0s", "minimum_calls": 0, "consecutive_failures": -1, "half_open_calls": 0, "scope": "tiered"},
		"bulkhead": {"max_wait": "3s", "max_waiting": -1, "lease_ttl": "1ms"},
		"timeout": "2s",
		"retry": {"attempts": 0, "delay": "-1s", "backoff": "exponentail", "jitter": "ful", "multiplier": 0.5, "statuses": [99]},
		"hedge": {"max": 0},
		"shed": {"priority": "ip"}
	}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantProblems(t, problems(t, s.Validate()),
		`name: must be printable ASCII`,
		`ratelimit.algorithm: unknown value "token_buckt" (one of [token_bucket sliding_window sliding_log fixed_window]); did you mean "token_bucket"?`,
		`ratelimit.scope: unknown value "fleat"`,
		`ratelimit.retry_after: unknown value "never"`,
		`ratelimit.key: unknown key source "cookie:x"`,
		`ratelimit.limit: must be at least 1, got -5`,
		`ratelimit.per: must be at least 1µs, got -1s`,
		`ratelimit.burst: must be at least 0, got -1`,
		`circuitbreaker.scope: unknown value "tiered"`,
		`circuitbreaker.window: must be at least 1ms, got 0s`,
		`circuitbreaker.minimum_calls: must be at least 1, got 0`,
		`circuitbreaker.failure_rate: must be in (0,1], got 2`,
		`circuitbreaker.consecutive_failures: must be at least 0, got -1`,
		`circuitbreaker.half_open_calls: must be at least 1, got 0`,
		`bulkhead.max_concurrent: is required`,
		`bulkhead.max_waiting: must be at least 0, got -1`,
		`bulkhead.lease_ttl: must be at least 10ms, got 1ms`,
		`bulkhead.max_wait: waits up to 3s for a slot, not less than the timeout 2s`,
		`retry.attempts: must be at least 1, got 0`,
		`retry.delay: must not be negative, got -1s`,
		`retry.multiplier: must be at least 1, got 0.5`,
		`retry.backoff: unknown value "exponentail"`,
		`retry.jitter: unknown value "ful"`,
		`retry.statuses.0: must be an HTTP status (100 to 599), got 99`,
		`hedge.delay: is required`,
		`hedge.max: must be at least 1, got 0`,
		`shed.max_in_flight: is required`,
		`shed.priority: must be header:NAME or query:NAME, got "ip"`,
	)
}

func TestValidateGood(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"enabled": false, "ratelimit": {"limit": -1}}`,
		`{"ratelimit": {"limit": 10}}`,
		`{"ratelimit": {"limit": 10, "enabled": false, "per": "-1s"}}`,
		`{"bulkhead": {"max_concurrent": 1, "max_wait": "100ms"}, "timeout": "2s"}`,
		`{"circuitbreaker": {"slow_call": "1s"}}`,
		`{"timeout": 0}`,
	} {
		s, err := policy.Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%s): %v", in, err)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", in, err)
		}
	}
}

func TestValidateLimitTooLarge(t *testing.T) {
	s := policy.Spec{RateLimit: &policy.RateLimit{Limit: new(1 << 40), Per: policy.D(time.Hour)}}
	wantProblems(t, problems(t, s.Validate()), "ratelimit: bulwark: invalid config: limit")
}

func TestMerge(t *testing.T) {
	root := policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: new(100), Per: policy.D(time.Minute), Key: "ip"},
		CircuitBreaker: &policy.CircuitBreaker{OpenFor: policy.D(30 * time.Second)},
		Timeout:        policy.D(2 * time.Second),
	}
	path := policy.Spec{RateLimit: &policy.RateLimit{Key: "header:X-Tenant"}}
	op := policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: new(10)},
		CircuitBreaker: &policy.CircuitBreaker{Enabled: new(false)},
		Timeout:        policy.D(0),
	}
	got := policy.MergeAll(root, path, op)
	if *got.RateLimit.Limit != 10 || got.RateLimit.Per.Std() != time.Minute || got.RateLimit.Key != "header:X-Tenant" {
		t.Errorf("merged ratelimit = %+v", *got.RateLimit)
	}
	if got.HasCircuitBreaker() {
		t.Error("enabled: false did not switch the inherited breaker off")
	}
	if got.CircuitBreaker.OpenFor.Std() != 30*time.Second {
		t.Error("a disabled block lost its inherited fields")
	}
	if got.TimeoutDuration() != 0 {
		t.Errorf("timeout 0 did not switch the inherited timeout off: %v", got.TimeoutDuration())
	}
	// Re-enabling in a yet more specific layer brings the inherited fields back.
	again := got.Merge(policy.Spec{CircuitBreaker: &policy.CircuitBreaker{Enabled: new(true)}})
	if !again.HasCircuitBreaker() || again.CircuitBreaker.OpenFor.Std() != 30*time.Second {
		t.Errorf("re-enabled breaker = %+v", again.CircuitBreaker)
	}
	// Neither input is modified, and the result shares no pointer.
	if *root.RateLimit.Limit != 100 || root.RateLimit.Key != "ip" || root.CircuitBreaker.Enabled != nil {
		t.Errorf("Merge modified its receiver: %+v", root.RateLimit)
	}
	*got.RateLimit.Limit = 1
	if *op.RateLimit.Limit != 10 {
		t.Error("the merged Spec shares a pointer with its argument")
	}
	// Merging with nothing is the identity.
	if d := policy.Diff(root, root.Merge(policy.Spec{})); len(d) != 0 {
		t.Errorf("Merge(Spec{}) changed %v", d)
	}
	// A block declared only in the specific layer is taken whole.
	only := policy.Spec{}.Merge(policy.Spec{Hedge: &policy.Hedge{Delay: policy.D(time.Millisecond)}})
	if !only.HasHedge() {
		t.Error("a block from the specific layer was lost")
	}
}

func TestMergeShadowAndStatuses(t *testing.T) {
	a := policy.Spec{Shadow: new(true), Retry: &policy.Retry{Statuses: []int{503}}}
	b := policy.Spec{Shadow: new(false), Retry: &policy.Retry{Attempts: new(5)}}
	m := a.Merge(b)
	if m.IsShadow() || *m.Retry.Attempts != 5 || len(m.Retry.Statuses) != 1 {
		t.Errorf("merge = shadow %v retry %+v", m.IsShadow(), m.Retry)
	}
	m.Retry.Statuses[0] = 1
	if a.Retry.Statuses[0] != 503 {
		t.Error("merged statuses share the receiver's slice")
	}
}

func TestDiff(t *testing.T) {
	a := policy.Spec{RateLimit: &policy.RateLimit{Limit: new(100), Per: policy.D(time.Minute)}, Timeout: policy.D(time.Second)}
	b := a.Merge(policy.Spec{RateLimit: &policy.RateLimit{Limit: new(50)}, Bulkhead: &policy.Bulkhead{MaxConcurrent: new(4)}})
	b.Timeout = nil
	var got []string
	for _, c := range policy.Diff(a, b) {
		got = append(got, c.String())
	}
	want := []string{"bulkhead.max_concurrent: (unset) -> 4", "ratelimit.limit: 100 -> 50", `timeout: "1s" -> (unset)`}
	if len(got) != len(want) {
		t.Fatalf("Diff = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Diff[%d] = %q, want %q", i, got[i], want[i])
		}
	}
	if !policy.Equal(a, a.Clone()) {
		t.Error("a Spec differs from its clone")
	}
	if policy.Equal(policy.Spec{}, policy.Spec{Bulkhead: &policy.Bulkhead{}}) {
		t.Error("an empty block is not told apart from no block")
	}
}

func TestRetryPlanWait(t *testing.T) {
	s := policy.Spec{Retry: &policy.Retry{Delay: policy.D(100 * time.Millisecond), MaxDelay: policy.D(300 * time.Millisecond)}}
	stack, err := policy.Build("op", s)
	if err != nil {
		t.Fatal(err)
	}
	p := stack.Load().Retry
	for k, want := range []time.Duration{100, 200, 300, 300} {
		if got := p.Wait(k + 1); got != want*time.Millisecond {
			t.Errorf("Wait(%d) = %v, want %v", k+1, got, want*time.Millisecond)
		}
	}
	if p.Attempts != policy.DefaultAttempts || len(p.Statuses) != 3 {
		t.Errorf("defaults = %+v", p)
	}
}
