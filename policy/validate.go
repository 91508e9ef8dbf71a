package policy

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

// Validate checks s as it would be built, defaults applied, and returns nil
// or an error wrapping bulwark.ErrInvalidConfig whose [*Error] lists every
// problem, each naming its field ("ratelimit.limit: must be at least 1,
// got -5"). A disabled pattern is not checked; a disabled Spec only for its
// name. Besides each field's range it rejects stacks that cannot work as
// declared, such as a bulkhead that waits longer than the timeout.
func (s Spec) Validate() error {
	_, ps := resolve(s)
	return asError(ps)
}

// resolved is a Spec with defaults applied, in the constructors' types.
type resolved struct {
	name    string
	enabled bool
	shadow  bool
	rl      *rateConf
	cb      *breakerConf
	bh      *bulkheadConf
	timeout time.Duration
	retry   *RetryPlan
	hedge   *local.HedgeConfig
	shed    *shedConf
}

type rateConf struct {
	algorithm  string
	limit      bulwark.Limit
	key        Key
	scope      string
	shadow     bool
	retryAfter string
	bp         local.BackpressureConfig
}

type breakerConf struct {
	cfg   bulwark.BreakerConfig
	scope string
	force string // ForceOpen, ForceClosed or "" (none)
}

type bulkheadConf struct {
	cfg   bulwark.BulkheadConfig
	scope string
}

type shedConf struct {
	cfg      local.ShedderConfig
	priority Key // Kind 0: every request normal
}

// RetryPlan is a retry block with defaults applied: what a retry does.
type RetryPlan struct {
	Attempts   int // in all, the first included
	Delay      time.Duration
	MaxDelay   time.Duration // 0: no cap
	Backoff    local.Backoff
	Multiplier float64
	Jitter     local.Jitter
	Statuses   []int // HTTP statuses worth another attempt
}

// LocalConfig returns p as the configuration of a local.Retry for calls
// returning T.
func LocalConfig[T any](p RetryPlan) local.RetryConfig[T] {
	return local.RetryConfig[T]{
		MaxAttempts: p.Attempts, Backoff: p.Backoff, Delay: p.Delay, MaxDelay: p.MaxDelay,
		Multiplier: p.Multiplier, Jitter: p.Jitter,
	}
}

// Wait returns the back-off before attempt k+1 (k = 1 before the second
// attempt) without jitter, capped by MaxDelay.
func (p RetryPlan) Wait(k int) time.Duration {
	var d float64
	switch p.Backoff {
	case local.BackoffConstant:
		d = float64(p.Delay)
	case local.BackoffLinear:
		d = float64(p.Delay) * float64(k)
	default:
		d = float64(p.Delay) * math.Pow(p.Multiplier, float64(k-1))
	}
	if p.MaxDelay > 0 && d > float64(p.MaxDelay) {
		d = float64(p.MaxDelay)
	}
	if d > float64(math.MaxInt64) {
		d = float64(math.MaxInt64)
	}
	return time.Duration(d)
}

type checker struct{ ps []Problem }

func (c *checker) add(path, format string, args ...any) {
	c.ps = append(c.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) enum(path, got string, valid ...string) {
	if got == "" || slices.Contains(valid, got) {
		return
	}
	msg := fmt.Sprintf("unknown value %q (one of %v)", got, valid)
	if s := Suggest(got, valid); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	c.ps = append(c.ps, Problem{Path: path, Message: msg})
}

func (c *checker) minInt(path string, p *int, least int, required bool) int {
	switch {
	case p == nil && required:
		c.add(path, "is required")
		return 0
	case p == nil:
		return 0
	case *p < least:
		c.add(path, "must be at least %d, got %d", least, *p)
	}
	return *p
}

func (c *checker) dur(path string, p *Duration, least time.Duration, def time.Duration) time.Duration {
	if p == nil {
		return def
	}
	if d := p.Std(); d < least {
		if least == 0 {
			c.add(path, "must not be negative, got %v", d)
		} else {
			c.add(path, "must be at least %v, got %v", least, d)
		}
	}
	return p.Std()
}

func (c *checker) rate(path string, p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	if math.IsNaN(*p) || *p <= 0 || *p > 1 {
		c.add(path, "must be in (0,1], got %v", *p)
	}
	return *p
}

func resolve(s Spec) (resolved, []Problem) {
	var c checker
	r := resolved{name: s.Name, enabled: s.IsEnabled(), shadow: s.IsShadow()}
	if s.Name != "" {
		checkName(&c, "name", s.Name)
	}
	if !r.enabled {
		return r, c.ps
	}
	if s.Timeout != nil {
		r.timeout = c.dur("timeout", s.Timeout, 0, 0)
	}
	if s.HasRateLimit() {
		r.rl = resolveRate(&c, s.RateLimit, r.shadow)
	}
	if s.HasCircuitBreaker() {
		r.cb = resolveBreaker(&c, s.CircuitBreaker)
	}
	if s.HasBulkhead() {
		r.bh = resolveBulkhead(&c, s.Bulkhead)
		if r.bh.cfg.MaxWait > 0 && r.timeout > 0 && r.bh.cfg.MaxWait >= r.timeout {
			c.add("bulkhead.max_wait", "waits up to %v for a slot, not less than the timeout %v: a request could spend its whole budget queueing", r.bh.cfg.MaxWait, r.timeout)
		}
	}
	if s.HasRetry() {
		r.retry = resolveRetry(&c, s.Retry)
	}
	if s.HasHedge() {
		h := &local.HedgeConfig{MaxHedges: DefaultHedges}
		if s.Hedge.Delay == nil {
			c.add("hedge.delay", "is required")
		} else {
			h.Delay = c.dur("hedge.delay", s.Hedge.Delay, 1, 0)
		}
		if s.Hedge.Max != nil {
			h.MaxHedges = c.minInt("hedge.max", s.Hedge.Max, 1, false)
		}
		r.hedge = h
	}
	if s.HasShed() {
		sh := &shedConf{}
		sh.cfg.MaxInFlight = c.minInt("shed.max_in_flight", s.Shed.MaxInFlight, 1, true)
		if s.Shed.Priority != "" {
			k, err := ParseKey(s.Shed.Priority)
			switch {
			case err != nil:
				c.add("shed.priority", "%v", err)
			case k.Kind != KeyHeader && k.Kind != KeyQuery:
				c.add("shed.priority", "must be header:NAME or query:NAME, got %q", s.Shed.Priority)
			default:
				sh.priority = k
			}
		}
		r.shed = sh
	}
	return r, c.ps
}

func checkName(c *checker, path, name string) {
	if len(name) > 64 {
		c.add(path, "must be at most 64 characters, got %d", len(name))
	}
	for _, ch := range name {
		if ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\' {
			c.add(path, "must be printable ASCII without spaces, quotes or backslashes, got %q", name)
			return
		}
	}
}

func resolveRate(c *checker, b *RateLimit, shadow bool) *rateConf {
	rc := &rateConf{algorithm: TokenBucket, scope: ScopeFleet, retryAfter: RetryAfterLimiter, shadow: shadow}
	c.enum("ratelimit.algorithm", b.Algorithm, TokenBucket, SlidingWindow, SlidingLog, FixedWindow)
	c.enum("ratelimit.scope", b.Scope, ScopeFleet, ScopeLocal, ScopeTiered)
	c.enum("ratelimit.retry_after", b.RetryAfter, RetryAfterLimiter, RetryAfterBackpressure)
	rc.algorithm = pickStr(rc.algorithm, b.Algorithm)
	rc.scope = pickStr(rc.scope, b.Scope)
	rc.retryAfter = pickStr(rc.retryAfter, b.RetryAfter)
	if b.Shadow != nil {
		rc.shadow = *b.Shadow
	}
	k, err := ParseKey(b.Key)
	if err != nil {
		c.add("ratelimit.key", "%v", err)
	}
	rc.key = k
	n := len(c.ps)
	rc.limit.Events = c.minInt("ratelimit.limit", b.Limit, 1, true)
	rc.limit.Period = c.dur("ratelimit.per", b.Per, time.Microsecond, DefaultPer)
	if rc.limit.Period%time.Microsecond != 0 {
		c.add("ratelimit.per", "must be a whole number of microseconds, got %v", rc.limit.Period)
	}
	if b.Burst != nil {
		rc.limit.Burst = c.minInt("ratelimit.burst", b.Burst, 0, false)
	}
	if len(c.ps) == n {
		if err := rc.limit.Validate(); err != nil {
			c.add("ratelimit", "%v", err)
		}
	}
	rc.bp = local.DefaultBackpressureConfig()
	if bp := b.Backpressure; bp != nil {
		if bp.Window != nil {
			rc.bp.Window = c.minInt("ratelimit.backpressure.window", bp.Window, 4, false)
		}
		rc.bp.Baseline = c.dur("ratelimit.backpressure.baseline", bp.Baseline, 0, rc.bp.Baseline)
		rc.bp.MinRetryAfter = c.dur("ratelimit.backpressure.min_retry_after", bp.MinRetryAfter, 1, rc.bp.MinRetryAfter)
		rc.bp.MaxRetryAfter = c.dur("ratelimit.backpressure.max_retry_after", bp.MaxRetryAfter, 0, rc.bp.MaxRetryAfter)
	}
	return rc
}

func resolveBreaker(c *checker, b *CircuitBreaker) *breakerConf {
	bc := &breakerConf{cfg: bulwark.DefaultBreakerConfig(), scope: pickStr(ScopeFleet, b.Scope)}
	c.enum("circuitbreaker.scope", b.Scope, ScopeFleet, ScopeLocal)
	c.enum("circuitbreaker.force", b.Force, ForceNone, ForceOpen, ForceClosed)
	if b.Force != ForceNone {
		bc.force = b.Force
	}
	cfg := &bc.cfg
	cfg.Window = c.dur("circuitbreaker.window", b.Window, time.Millisecond, cfg.Window)
	if b.MinimumCalls != nil {
		cfg.MinimumCalls = c.minInt("circuitbreaker.minimum_calls", b.MinimumCalls, 1, false)
	}
	cfg.FailureRate = c.rate("circuitbreaker.failure_rate", b.FailureRate, cfg.FailureRate)
	if b.ConsecutiveFailures != nil {
		cfg.ConsecutiveFailures = c.minInt("circuitbreaker.consecutive_failures", b.ConsecutiveFailures, 0, false)
	}
	cfg.SlowCall = c.dur("circuitbreaker.slow_call", b.SlowCall, 0, 0)
	if b.SlowCallRate != nil || cfg.SlowCall > 0 {
		cfg.SlowCallRate = c.rate("circuitbreaker.slow_call_rate", b.SlowCallRate, 1)
	}
	cfg.OpenFor = c.dur("circuitbreaker.open_for", b.OpenFor, time.Millisecond, cfg.OpenFor)
	if b.HalfOpenCalls != nil {
		cfg.HalfOpenCalls = c.minInt("circuitbreaker.half_open_calls", b.HalfOpenCalls, 1, false)
	}
	return bc
}

func resolveBulkhead(c *checker, b *Bulkhead) *bulkheadConf {
	bc := &bulkheadConf{scope: pickStr(ScopeFleet, b.Scope)}
	c.enum("bulkhead.scope", b.Scope, ScopeFleet, ScopeLocal)
	bc.cfg.MaxConcurrent = c.minInt("bulkhead.max_concurrent", b.MaxConcurrent, 1, true)
	bc.cfg.MaxWait = c.dur("bulkhead.max_wait", b.MaxWait, 0, 0)
	if b.MaxWaiting != nil {
		bc.cfg.MaxWaiting = c.minInt("bulkhead.max_waiting", b.MaxWaiting, 0, false)
	}
	bc.cfg.LeaseTTL = c.dur("bulkhead.lease_ttl", b.LeaseTTL, 0, 0)
	if bc.cfg.LeaseTTL > 0 && bc.cfg.LeaseTTL < 10*time.Millisecond {
		c.add("bulkhead.lease_ttl", "must be at least 10ms, got %v", bc.cfg.LeaseTTL)
	}
	return bc
}

func resolveRetry(c *checker, b *Retry) *RetryPlan {
	p := &RetryPlan{Attempts: DefaultAttempts, Delay: DefaultRetryDelay, MaxDelay: DefaultRetryMaxDelay,
		Backoff: local.BackoffExponential, Multiplier: 2, Jitter: local.JitterFull,
		Statuses: slices.Clone(DefaultRetryStatuses)}
	if b.Attempts != nil {
		p.Attempts = c.minInt("retry.attempts", b.Attempts, 1, false)
	}
	p.Delay = c.dur("retry.delay", b.Delay, 0, p.Delay)
	p.MaxDelay = c.dur("retry.max_delay", b.MaxDelay, 0, p.MaxDelay)
	if b.Multiplier != nil {
		if math.IsNaN(*b.Multiplier) || *b.Multiplier < 1 {
			c.add("retry.multiplier", "must be at least 1, got %v", *b.Multiplier)
		}
		p.Multiplier = *b.Multiplier
	}
	c.enum("retry.backoff", b.Backoff, BackoffConstant, BackoffLinear, BackoffExponential)
	switch b.Backoff {
	case BackoffConstant:
		p.Backoff = local.BackoffConstant
	case BackoffLinear:
		p.Backoff = local.BackoffLinear
	}
	c.enum("retry.jitter", b.Jitter, JitterNone, JitterFull, JitterEqual, JitterDecorrelated)
	switch b.Jitter {
	case JitterNone:
		p.Jitter = local.JitterNone
	case JitterEqual:
		p.Jitter = local.JitterEqual
	case JitterDecorrelated:
		p.Jitter = local.JitterDecorrelated
	}
	if b.Statuses != nil {
		for i, st := range b.Statuses {
			if st < 100 || st > 599 {
				c.add(fmt.Sprintf("retry.statuses.%d", i), "must be an HTTP status (100 to 599), got %d", st)
			}
		}
		p.Statuses = slices.Clone(b.Statuses)
	}
	return p
}
