package policy

import "slices"

// Merge returns s overlaid with over, field by field: every field over sets
// (a non-nil pointer, a non-empty string or slice) replaces s's, every field
// it leaves unset keeps s's. Blocks merge the same way, so
//
//	defaults := Spec{RateLimit: &RateLimit{Limit: new(100), Per: D(time.Minute), Key: "ip"}}
//	op := Spec{RateLimit: &RateLimit{Limit: new(10)}}
//	defaults.Merge(op) // ratelimit: 10 per minute, by ip
//
// and {"ratelimit": {"enabled": false}} in over switches an inherited rate
// limit off (its other fields stay, so a yet more specific layer can switch
// it on again). Neither argument is modified; the result shares no pointer
// with them.
func (s Spec) Merge(over Spec) Spec {
	out := s.Clone()
	o := over.Clone()
	out.Name = pickStr(out.Name, o.Name)
	out.Enabled = pick(out.Enabled, o.Enabled)
	out.Shadow = pick(out.Shadow, o.Shadow)
	out.Timeout = pick(out.Timeout, o.Timeout)
	out.RateLimit = mergeBlock(out.RateLimit, o.RateLimit, mergeRateLimit)
	out.CircuitBreaker = mergeBlock(out.CircuitBreaker, o.CircuitBreaker, mergeBreaker)
	out.Bulkhead = mergeBlock(out.Bulkhead, o.Bulkhead, mergeBulkhead)
	out.Retry = mergeBlock(out.Retry, o.Retry, mergeRetry)
	out.Hedge = mergeBlock(out.Hedge, o.Hedge, mergeHedge)
	out.Shed = mergeBlock(out.Shed, o.Shed, mergeShed)
	return out
}

// MergeAll merges layers left to right, the last most specific:
// MergeAll(root, path, operation).
func MergeAll(layers ...Spec) Spec {
	var out Spec
	for _, l := range layers {
		out = out.Merge(l)
	}
	return out
}

// Clone returns a deep copy of s.
func (s Spec) Clone() Spec {
	out := s
	out.Enabled = clonePtr(s.Enabled)
	out.Shadow = clonePtr(s.Shadow)
	out.Timeout = clonePtr(s.Timeout)
	if s.RateLimit != nil {
		r := *s.RateLimit
		r.Enabled, r.Limit, r.Per, r.Burst, r.Shadow = clonePtr(r.Enabled), clonePtr(r.Limit), clonePtr(r.Per), clonePtr(r.Burst), clonePtr(r.Shadow)
		if r.Backpressure != nil {
			b := *r.Backpressure
			b.Window, b.Baseline, b.MinRetryAfter, b.MaxRetryAfter = clonePtr(b.Window), clonePtr(b.Baseline), clonePtr(b.MinRetryAfter), clonePtr(b.MaxRetryAfter)
			r.Backpressure = &b
		}
		out.RateLimit = &r
	}
	if s.CircuitBreaker != nil {
		c := *s.CircuitBreaker
		c.Enabled, c.Window, c.MinimumCalls, c.FailureRate = clonePtr(c.Enabled), clonePtr(c.Window), clonePtr(c.MinimumCalls), clonePtr(c.FailureRate)
		c.ConsecutiveFailures, c.SlowCall, c.SlowCallRate = clonePtr(c.ConsecutiveFailures), clonePtr(c.SlowCall), clonePtr(c.SlowCallRate)
		c.OpenFor, c.HalfOpenCalls = clonePtr(c.OpenFor), clonePtr(c.HalfOpenCalls)
		out.CircuitBreaker = &c
	}
	if s.Bulkhead != nil {
		b := *s.Bulkhead
		b.Enabled, b.MaxConcurrent, b.MaxWait, b.MaxWaiting, b.LeaseTTL = clonePtr(b.Enabled), clonePtr(b.MaxConcurrent), clonePtr(b.MaxWait), clonePtr(b.MaxWaiting), clonePtr(b.LeaseTTL)
		out.Bulkhead = &b
	}
	if s.Retry != nil {
		r := *s.Retry
		r.Enabled, r.Attempts, r.Delay, r.Multiplier, r.MaxDelay = clonePtr(r.Enabled), clonePtr(r.Attempts), clonePtr(r.Delay), clonePtr(r.Multiplier), clonePtr(r.MaxDelay)
		r.Statuses = slices.Clone(r.Statuses)
		out.Retry = &r
	}
	if s.Hedge != nil {
		h := *s.Hedge
		h.Enabled, h.Delay, h.Max = clonePtr(h.Enabled), clonePtr(h.Delay), clonePtr(h.Max)
		out.Hedge = &h
	}
	if s.Shed != nil {
		h := *s.Shed
		h.Enabled, h.MaxInFlight = clonePtr(h.Enabled), clonePtr(h.MaxInFlight)
		out.Shed = &h
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func pick[T any](base, over *T) *T {
	if over != nil {
		return over
	}
	return base
}

func pickStr(base, over string) string {
	if over != "" {
		return over
	}
	return base
}

func mergeBlock[T any](base, over *T, f func(base, over *T)) *T {
	switch {
	case over == nil:
		return base
	case base == nil:
		return over
	}
	f(base, over)
	return base
}

func mergeRateLimit(b, o *RateLimit) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.Algorithm = pickStr(b.Algorithm, o.Algorithm)
	b.Limit = pick(b.Limit, o.Limit)
	b.Per = pick(b.Per, o.Per)
	b.Burst = pick(b.Burst, o.Burst)
	b.Key = pickStr(b.Key, o.Key)
	b.Scope = pickStr(b.Scope, o.Scope)
	b.Shadow = pick(b.Shadow, o.Shadow)
	b.RetryAfter = pickStr(b.RetryAfter, o.RetryAfter)
	b.Backpressure = mergeBlock(b.Backpressure, o.Backpressure, func(b, o *Backpressure) {
		b.Window = pick(b.Window, o.Window)
		b.Baseline = pick(b.Baseline, o.Baseline)
		b.MinRetryAfter = pick(b.MinRetryAfter, o.MinRetryAfter)
		b.MaxRetryAfter = pick(b.MaxRetryAfter, o.MaxRetryAfter)
	})
}

func mergeBreaker(b, o *CircuitBreaker) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.Window = pick(b.Window, o.Window)
	b.MinimumCalls = pick(b.MinimumCalls, o.MinimumCalls)
	b.FailureRate = pick(b.FailureRate, o.FailureRate)
	b.ConsecutiveFailures = pick(b.ConsecutiveFailures, o.ConsecutiveFailures)
	b.SlowCall = pick(b.SlowCall, o.SlowCall)
	b.SlowCallRate = pick(b.SlowCallRate, o.SlowCallRate)
	b.OpenFor = pick(b.OpenFor, o.OpenFor)
	b.HalfOpenCalls = pick(b.HalfOpenCalls, o.HalfOpenCalls)
	b.Scope = pickStr(b.Scope, o.Scope)
	b.Force = pickStr(b.Force, o.Force)
}

func mergeBulkhead(b, o *Bulkhead) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.MaxConcurrent = pick(b.MaxConcurrent, o.MaxConcurrent)
	b.MaxWait = pick(b.MaxWait, o.MaxWait)
	b.MaxWaiting = pick(b.MaxWaiting, o.MaxWaiting)
	b.LeaseTTL = pick(b.LeaseTTL, o.LeaseTTL)
	b.Scope = pickStr(b.Scope, o.Scope)
}

func mergeRetry(b, o *Retry) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.Attempts = pick(b.Attempts, o.Attempts)
	b.Delay = pick(b.Delay, o.Delay)
	b.Backoff = pickStr(b.Backoff, o.Backoff)
	b.Multiplier = pick(b.Multiplier, o.Multiplier)
	b.MaxDelay = pick(b.MaxDelay, o.MaxDelay)
	b.Jitter = pickStr(b.Jitter, o.Jitter)
	if o.Statuses != nil {
		b.Statuses = o.Statuses
	}
}

func mergeHedge(b, o *Hedge) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.Delay = pick(b.Delay, o.Delay)
	b.Max = pick(b.Max, o.Max)
}

func mergeShed(b, o *Shed) {
	b.Enabled = pick(b.Enabled, o.Enabled)
	b.MaxInFlight = pick(b.MaxInFlight, o.MaxInFlight)
	b.Priority = pickStr(b.Priority, o.Priority)
}
