package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/local"
)

// Do runs fn under the stack's current patterns, outermost first: load
// shedding, rate limit (one token of the key set with WithKey, or of ""),
// circuit breaker (any error but a cancelled ctx is a failure), bulkhead,
// retry, hedge and the per-attempt timeout. It returns fn's error or the
// rejection of a pattern (matching bulwark.ErrRateLimited, ErrOpen,
// ErrBulkheadFull or ErrTimeout). A disabled stack runs fn as it is; in
// shadow mode rejections are reported to the observer and fn runs anyway.
// This is the stack for calls that are not HTTP requests (jobs, queue
// consumers, gRPC); package openapi and bulwarkhttp serve HTTP.
func (s *Stack) Do(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return core.ArgumentError("policy: nil function")
	}
	if s == nil {
		return core.ArgumentError("policy: nil stack")
	}
	p := s.cur.Load()
	if !p.Enabled || p.exec == nil {
		return fn(ctx)
	}
	_, err := p.exec.Run(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Policies returns the Parts' patterns as bulwark.Policy values for a
// composition of its own (bulwark.Compose), in Do's order, with the rate
// limit keyed by key (nil: bulwark.FixedKey("")). It returns an error
// wrapping bulwark.ErrInvalidConfig when a pattern cannot be made a policy.
func (p *Parts) Policies(key func(context.Context) string) ([]bulwark.Policy, error) {
	if p == nil {
		return nil, nil
	}
	if key == nil {
		key = bulwark.FixedKey("")
	}
	return p.policies(key, nil)
}

func (s *Stack) buildExecutor(p *Parts) error {
	if !p.Enabled {
		return nil
	}
	pols, err := p.policies(keyFrom, s)
	if err != nil {
		return err
	}
	e, err := bulwark.Compose[struct{}](pols...)
	if err != nil {
		return fmt.Errorf("policy: %s: %w", p.Name, err)
	}
	p.exec = e
	return nil
}

func (p *Parts) policies(key func(context.Context) string, s *Stack) ([]bulwark.Policy, error) {
	var obs bulwark.Observer
	var lo []local.Option
	if s != nil {
		obs = s.opts.observer
		lo = s.localOpts(p.Name)
	} else {
		lo = []local.Option{local.WithName(p.Name)}
	}
	shadow, clk := p.Shadow, p.clock(s)
	var out []bulwark.Policy
	switch {
	case p.Shedder != nil && shadow:
		out = append(out, shadowBulkhead(p.Shedder, obs, clk, p.Name, "shed"))
	case p.Shedder != nil:
		out = append(out, bulwark.BulkheadPolicy(p.Shedder))
	}
	switch {
	case p.Limiter != nil && p.LimitShadow:
		out = append(out, shadowLimit(p.Limiter, key, obs, clk, p.Name))
	case p.Limiter != nil:
		out = append(out, bulwark.LimiterPolicy(p.Limiter, key, 1))
	}
	switch {
	case p.Breaker != nil && shadow:
		out = append(out, shadowBreaker(p.Breaker, obs, clk, p.Name))
	case p.Breaker != nil:
		out = append(out, bulwark.BreakerPolicy(p.Breaker, nil))
	}
	switch {
	case p.Bulkhead != nil && shadow:
		out = append(out, shadowBulkhead(p.Bulkhead, obs, clk, p.Name, "bulkhead"))
	case p.Bulkhead != nil:
		out = append(out, bulwark.BulkheadPolicy(p.Bulkhead))
	}
	if p.Retry != nil {
		r, err := local.NewRetry(LocalConfig[struct{}](*p.Retry), lo...)
		if err != nil {
			return nil, fmt.Errorf("policy: %s: retry: %w", p.Name, err)
		}
		out = append(out, r)
	}
	if p.Hedge != nil {
		h, err := local.NewHedge(*p.Hedge, lo...)
		if err != nil {
			return nil, fmt.Errorf("policy: %s: hedge: %w", p.Name, err)
		}
		out = append(out, h)
	}
	if p.Timeout > 0 && !shadow {
		t, err := local.NewTimeout(p.Timeout, lo...)
		if err != nil {
			return nil, fmt.Errorf("policy: %s: timeout: %w", p.Name, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// IsRejection reports whether err is a protective pattern's refusal (rate
// limited, breaker open, bulkhead full or load shed) rather than a failure
// of the call itself.
func IsRejection(err error) bool {
	return errors.Is(err, bulwark.ErrRateLimited) || errors.Is(err, bulwark.ErrOpen) ||
		errors.Is(err, bulwark.ErrBulkheadFull) || errors.Is(err, local.ErrShed)
}

func (p *Parts) clock(s *Stack) bulwark.Clock {
	if s != nil && s.opts.clock != nil {
		return s.opts.clock
	}
	return bulwark.SystemClock
}

func rejected(obs bulwark.Observer, clk bulwark.Clock, name, pattern string, err error) {
	core.Emit(obs, bulwark.Event{Kind: bulwark.EventRejected, Pattern: pattern, Name: name,
		Time: clk.Now(), Shadow: true, Err: err})
}

// shadowBulkhead takes a slot of b when there is one and runs the call
// either way, reporting a refusal.
func shadowBulkhead(b bulwark.Bulkhead, obs bulwark.Observer, clk bulwark.Clock, name, pattern string) bulwark.Policy {
	return bulwark.PolicyFunc(func(ctx context.Context, next bulwark.Next) error {
		release, err := b.Acquire(ctx)
		if err != nil {
			rejected(obs, clk, name, pattern, err)
			return next.Run(ctx)
		}
		defer release()
		return next.Run(ctx)
	})
}

// shadowBreaker asks b and runs the call either way, reporting a refusal;
// the outcome of an admitted call is reported to b.
func shadowBreaker(b bulwark.Breaker, obs bulwark.Observer, clk bulwark.Clock, name string) bulwark.Policy {
	return bulwark.PolicyFunc(func(ctx context.Context, next bulwark.Next) error {
		done, err := b.Allow(ctx)
		if err != nil {
			rejected(obs, clk, name, "breaker", err)
			return next.Run(ctx)
		}
		err = next.Run(ctx)
		done(!bulwark.IsFailure(err))
		return err
	})
}

// shadowLimit asks l and always runs the call, reporting the decision.
func shadowLimit(l bulwark.Limiter, key func(context.Context) string, obs bulwark.Observer, clk bulwark.Clock, name string) bulwark.Policy {
	return bulwark.PolicyFunc(func(ctx context.Context, next bulwark.Next) error {
		d, err := l.Allow(ctx, key(ctx), 1)
		if err == nil {
			core.Emit(obs, bulwark.Event{Kind: bulwark.EventDecision, Pattern: "ratelimit", Name: name,
				Time: clk.Now(), Shadow: true, Allowed: d.Allowed, Degraded: d.Degraded,
				Limit: d.Limit, Remaining: d.Remaining, Duration: d.RetryAfter})
		}
		return next.Run(ctx)
	})
}
