package policy

import "time"

// Spec is the declarative stack of one named operation. Every field is
// optional: a nil block (or nil pointer, or empty string) means "not set
// here", to be inherited from a more general layer by [Spec.Merge] or to
// take its default when built. The zero Spec protects nothing.
//
// Patterns run in this order, outermost first: load shedding, rate limit,
// circuit breaker, bulkhead, retry, hedge, timeout (per attempt).
//
// Spec is a plain value, safe to copy and compare with [Diff]; [Spec.Clone]
// makes a deep copy when a copy must not share pointers.
type Spec struct {
	// Name names every pattern of the stack (metric labels, Redis keys,
	// the RateLimit-Policy name) instead of the operation's name. Keep it
	// stable: a new name starts fresh fleet-wide state.
	Name string `json:"name,omitempty"`
	// Enabled false switches the whole stack off (requests pass untouched).
	Enabled *bool `json:"enabled,omitempty"`
	// Shadow true runs the stack without enforcing it: the limiter is asked
	// and its header fields set, rejections of every pattern are reported
	// to the observer as events with Shadow set, but the request goes
	// through, and the timeout is not applied. It is the default of
	// RateLimit.Shadow.
	Shadow *bool `json:"shadow,omitempty"`

	RateLimit      *RateLimit      `json:"ratelimit,omitempty"`
	CircuitBreaker *CircuitBreaker `json:"circuitbreaker,omitempty"`
	Bulkhead       *Bulkhead       `json:"bulkhead,omitempty"`
	// Timeout is the time budget of one attempt; 0 switches an inherited
	// timeout off.
	Timeout *Duration `json:"timeout,omitempty"`
	Retry   *Retry    `json:"retry,omitempty"`
	Hedge   *Hedge    `json:"hedge,omitempty"`
	Shed    *Shed     `json:"shed,omitempty"`
}

// The rate-limit algorithms, spelled as in a Spec.
const (
	TokenBucket   = "token_bucket"   // GCRA: local.NewTokenBucket, Store.TokenBucket (default)
	SlidingWindow = "sliding_window" // weighted sliding-window counter
	SlidingLog    = "sliding_log"    // exact sliding window
	FixedWindow   = "fixed_window"   // windows aligned to the Unix epoch
)

// The scopes of a stateful pattern, spelled as in a Spec.
const (
	// ScopeFleet shares the pattern's state through the distributed.Store
	// given to Build (WithStore); without a store it is local. The default.
	ScopeFleet = "fleet"
	// ScopeLocal keeps the pattern's state in this process.
	ScopeLocal = "local"
	// ScopeTiered (rate limits only) puts a local limiter with the same
	// limit in front of the fleet one (distributed.Tiered): a replica that
	// alone spent the whole limit rejects without a Redis round trip.
	ScopeTiered = "tiered"
)

// The Retry-After strategies of a rate limit, spelled as in a Spec.
const (
	// RetryAfterLimiter advertises the limiter's own wait (the default).
	RetryAfterLimiter = "limiter"
	// RetryAfterBackpressure advertises the larger of the limiter's wait
	// and a local.Backpressure estimate that grows with the operation's
	// latency, so clients stay away longer while the service struggles.
	RetryAfterBackpressure = "backpressure"
)

// The back-off shapes and jitters of a retry, spelled as in a Spec.
const (
	BackoffConstant    = "constant"
	BackoffLinear      = "linear"
	BackoffExponential = "exponential" // the default
	JitterNone         = "none"
	JitterFull         = "full" // the default
	JitterEqual        = "equal"
	JitterDecorrelated = "decorrelated"
)

// RateLimit is the rate-limit block of a Spec. Limit requests are allowed
// per Per, with bursts up to Burst (token bucket only; 0 or unset means
// Limit), counted per Key.
type RateLimit struct {
	Enabled   *bool     `json:"enabled,omitempty"`
	Algorithm string    `json:"algorithm,omitempty"` // TokenBucket (default), SlidingWindow, SlidingLog, FixedWindow
	Limit     *int      `json:"limit,omitempty"`     // required: requests per Per, at least 1
	Per       *Duration `json:"per,omitempty"`       // the period (default 1s)
	Burst     *int      `json:"burst,omitempty"`     // token-bucket capacity (0: Limit)
	// Key says whose requests share a budget: "ip" (default), "header:NAME",
	// "query:NAME", "route" (one budget for the operation) or "global"
	// (one budget for everything sharing the stack's name). See [ParseKey].
	Key          string        `json:"key,omitempty"`
	Scope        string        `json:"scope,omitempty"` // ScopeFleet (default), ScopeLocal, ScopeTiered
	Shadow       *bool         `json:"shadow,omitempty"`
	RetryAfter   string        `json:"retry_after,omitempty"` // RetryAfterLimiter (default) or RetryAfterBackpressure
	Backpressure *Backpressure `json:"backpressure,omitempty"`
}

// Backpressure tunes the estimator behind RetryAfterBackpressure (see
// local.BackpressureConfig; unset fields take its defaults).
type Backpressure struct {
	Window        *int      `json:"window,omitempty"`          // latencies kept, at least 4
	Baseline      *Duration `json:"baseline,omitempty"`        // healthy p95 (0: learned)
	MinRetryAfter *Duration `json:"min_retry_after,omitempty"` // Retry-After at no stress
	MaxRetryAfter *Duration `json:"max_retry_after,omitempty"` // most added under full stress
}

// CircuitBreaker is the circuit-breaker block of a Spec, with the meaning of
// bulwark.BreakerConfig; unset fields take bulwark.DefaultBreakerConfig's
// values.
type CircuitBreaker struct {
	Enabled             *bool     `json:"enabled,omitempty"`
	Window              *Duration `json:"window,omitempty"`
	MinimumCalls        *int      `json:"minimum_calls,omitempty"`
	FailureRate         *float64  `json:"failure_rate,omitempty"`
	ConsecutiveFailures *int      `json:"consecutive_failures,omitempty"`
	SlowCall            *Duration `json:"slow_call,omitempty"`
	SlowCallRate        *float64  `json:"slow_call_rate,omitempty"`
	OpenFor             *Duration `json:"open_for,omitempty"`
	HalfOpenCalls       *int      `json:"half_open_calls,omitempty"`
	Scope               string    `json:"scope,omitempty"` // ScopeFleet (default) or ScopeLocal
	// Force overrides the breaker's own state: ForceOpen rejects every
	// call with bulwark.ErrOpen, ForceClosed lets every call through
	// without counting it, ForceNone (or unset) leaves the breaker alone.
	// The breaker's counts are untouched either way, so removing the
	// override resumes where it was. An operator's switch, usually set
	// live (package control) during an incident.
	Force string `json:"force,omitempty"`
}

// The breaker overrides of CircuitBreaker.Force, spelled as in a Spec.
const (
	ForceNone   = "none"
	ForceOpen   = "open"
	ForceClosed = "closed"
)

// Bulkhead is the bulkhead block of a Spec, with the meaning of
// bulwark.BulkheadConfig.
type Bulkhead struct {
	Enabled       *bool     `json:"enabled,omitempty"`
	MaxConcurrent *int      `json:"max_concurrent,omitempty"` // required, at least 1
	MaxWait       *Duration `json:"max_wait,omitempty"`       // default 0: no waiting
	MaxWaiting    *int      `json:"max_waiting,omitempty"`    // default 0: no cap beyond MaxWait
	LeaseTTL      *Duration `json:"lease_ttl,omitempty"`      // fleet only (default bulwark.DefaultLeaseTTL)
	Scope         string    `json:"scope,omitempty"`          // ScopeFleet (default) or ScopeLocal
}

// Retry is the retry block of a Spec, with the meaning of local.RetryConfig.
// Unset fields take DefaultRetry's values.
type Retry struct {
	Enabled    *bool     `json:"enabled,omitempty"`
	Attempts   *int      `json:"attempts,omitempty"`   // attempts in all, the first included
	Delay      *Duration `json:"delay,omitempty"`      // the first back-off
	Backoff    string    `json:"backoff,omitempty"`    // BackoffConstant, BackoffLinear, BackoffExponential
	Multiplier *float64  `json:"multiplier,omitempty"` // exponential growth factor, at least 1
	MaxDelay   *Duration `json:"max_delay,omitempty"`  // cap on a back-off (0: none)
	Jitter     string    `json:"jitter,omitempty"`     // JitterNone, JitterFull, JitterEqual, JitterDecorrelated
	// Statuses are the HTTP response statuses worth another attempt
	// (default 502, 503, 504; a client also retries 429).
	Statuses []int `json:"statuses,omitempty"`
}

// Hedge is the hedge block of a Spec (client side, idempotent methods only):
// when an attempt has not answered after Delay another starts, up to Max
// extra attempts.
type Hedge struct {
	Enabled *bool     `json:"enabled,omitempty"`
	Delay   *Duration `json:"delay,omitempty"` // required, positive
	Max     *int      `json:"max,omitempty"`   // default 1
}

// Shed is the load-shedding block of a Spec (local.Shedder): at most
// MaxInFlight requests run at once, low-priority work being shed first.
type Shed struct {
	Enabled     *bool `json:"enabled,omitempty"`
	MaxInFlight *int  `json:"max_in_flight,omitempty"` // required, at least 1
	// Priority names where a request's priority comes from, as a key
	// source ("header:X-Priority", "query:priority"): a number 0 (low) to
	// 3 (critical), or low, normal, high, critical. Unset or unreadable
	// means normal.
	Priority string `json:"priority,omitempty"`
}

// The defaults of a built stack, for fields a Spec leaves unset.
const (
	DefaultPer           = time.Second
	DefaultAttempts      = 3
	DefaultRetryDelay    = 100 * time.Millisecond
	DefaultRetryMaxDelay = 5 * time.Second
	DefaultHedges        = 1
)

// DefaultRetryStatuses are the response statuses retried when a retry block
// names none.
var DefaultRetryStatuses = []int{502, 503, 504}

// On reports whether a pattern whose Enabled field is e, declared by a
// block that is not nil, is switched on: unset means on.
func on(present bool, e *bool) bool { return present && (e == nil || *e) }

// IsEnabled reports whether the stack is switched on (Enabled unset or true).
func (s Spec) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// IsShadow reports whether the stack runs in shadow mode.
func (s Spec) IsShadow() bool { return s.Shadow != nil && *s.Shadow }

// HasRateLimit reports whether the rate limit is declared and enabled.
func (s Spec) HasRateLimit() bool { return s.RateLimit != nil && on(true, s.RateLimit.Enabled) }

// HasCircuitBreaker reports whether the circuit breaker is declared and enabled.
func (s Spec) HasCircuitBreaker() bool {
	return s.CircuitBreaker != nil && on(true, s.CircuitBreaker.Enabled)
}

// HasBulkhead reports whether the bulkhead is declared and enabled.
func (s Spec) HasBulkhead() bool { return s.Bulkhead != nil && on(true, s.Bulkhead.Enabled) }

// HasRetry reports whether the retry is declared and enabled.
func (s Spec) HasRetry() bool { return s.Retry != nil && on(true, s.Retry.Enabled) }

// HasHedge reports whether the hedge is declared and enabled.
func (s Spec) HasHedge() bool { return s.Hedge != nil && on(true, s.Hedge.Enabled) }

// HasShed reports whether load shedding is declared and enabled.
func (s Spec) HasShed() bool { return s.Shed != nil && on(true, s.Shed.Enabled) }

// TimeoutDuration returns the declared time budget of one attempt, 0 when
// there is none.
func (s Spec) TimeoutDuration() Duration {
	if s.Timeout == nil || *s.Timeout < 0 {
		return 0
	}
	return *s.Timeout
}
