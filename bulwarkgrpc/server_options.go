package bulwarkgrpc

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"google.golang.org/grpc/codes"
)

// ServerOption configures a server interceptor built by [Limit],
// [Breaker], [Bulkhead], [Shed] or [Timeout]. Options that mean nothing
// for what is being built are ignored by it. A bad value makes the
// constructor return an error wrapping bulwark.ErrInvalidConfig.
type ServerOption func(*serverOptions)

type serverOptions struct {
	err         error
	key         KeyFunc
	cost        func(ctx context.Context, method string) int
	priority    func(ctx context.Context, method string) int
	isFailure   func(codes.Code) bool
	degradedKey string
	headers     bool
	policyName  string
	window      time.Duration
	observer    bulwark.Observer
	name        string
	shadow      bool
	panics      *atomic.Uint64 // shared by the timeouts ServerPolicies builds
}

func (o *serverOptions) fail(format string, args ...any) {
	if o.err == nil {
		o.err = core.ConfigError(format, args...)
	}
}

func buildServerOptions(opts []ServerOption) (*serverOptions, error) {
	o := &serverOptions{
		key:        peerKey,
		isFailure:  DefaultIsFailure,
		policyName: "default",
	}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return o, nil
}

// WithKey sets how [Limit] keys calls (default [KeyByPeer]).
func WithKey(k KeyFunc) ServerOption {
	return func(o *serverOptions) {
		if k == nil {
			o.fail("bulwarkgrpc: key func must not be nil")
			return
		}
		o.key = k
	}
}

// WithCost sets how many tokens a call takes from [Limit]'s limiter
// (default 1). A cost below 1 or above the limiter's capacity makes the
// call fail with INTERNAL: it is a bug of the server, not of the caller.
func WithCost(f func(ctx context.Context, method string) int) ServerOption {
	return func(o *serverOptions) {
		if f == nil {
			o.fail("bulwarkgrpc: cost func must not be nil")
			return
		}
		o.cost = f
	}
}

// WithPriority sets the priority [Shed] passes to its shedder for a call
// (default 1, local.PriorityNormal).
func WithPriority(f func(ctx context.Context, method string) int) ServerOption {
	return func(o *serverOptions) {
		if f == nil {
			o.fail("bulwarkgrpc: priority func must not be nil")
			return
		}
		o.priority = f
	}
}

// WithFailure sets which status codes a server-side [Breaker] counts as
// failures of the handler (default [DefaultIsFailure]).
func WithFailure(isFailure func(codes.Code) bool) ServerOption {
	return func(o *serverOptions) {
		if isFailure == nil {
			o.fail("bulwarkgrpc: failure classifier must not be nil")
			return
		}
		o.isFailure = isFailure
	}
}

// WithDegradedTrailer makes [Limit] add key: "true" to the call's trailing
// metadata when its limiter decided locally because the shared store was
// unreachable (bulwark.Decision.Degraded), allowed or not. An empty key
// means [DefaultDegradedKey].
func WithDegradedTrailer(key string) ServerOption {
	return func(o *serverOptions) {
		if key == "" {
			key = DefaultDegradedKey
		}
		if !validKey(key) {
			o.fail("bulwarkgrpc: invalid metadata key %q", key)
			return
		}
		o.degradedKey = key
	}
}

// WithRateLimitMetadata makes [Limit] describe the caller's quota with the
// IETF RateLimit-Policy and RateLimit fields under the metadata keys
// [RateLimitPolicyKey] and [RateLimitKey]: in the response headers of an
// allowed call, in the trailer of a denied one (so the denial stays a
// trailers-only response, which gRPC clients may retry). policy names the
// quota (an empty name means "default"); window, when positive, is
// advertised as the policy's "w" in whole seconds. A [Client] with a
// pacer reads them.
func WithRateLimitMetadata(policy string, window time.Duration) ServerOption {
	return func(o *serverOptions) {
		if policy == "" {
			policy = "default"
		}
		if window < 0 {
			o.fail("bulwarkgrpc: rate-limit window must not be negative, got %v", window)
			return
		}
		o.headers, o.policyName, o.window = true, policy, window
	}
}

// WithObserver sends the interceptor's rejections to obs as
// bulwark.EventRejected events (Pattern [PatternServer], Err matching
// bulwark.ErrRateLimited, ErrOpen, ErrBulkheadFull, ErrTimeout or the
// shedder's error), and a shadow limit's denials as bulwark.EventDecision
// events with Shadow set.
func WithObserver(obs bulwark.Observer) ServerOption {
	return func(o *serverOptions) {
		if isNil(obs) {
			obs = nil
		}
		o.observer = obs
	}
}

// WithName sets the Event.Name of the interceptor's events.
func WithName(name string) ServerOption { return func(o *serverOptions) { o.name = name } }

// withShadow makes [Limit] report denials without enforcing them.
func withShadow() ServerOption { return func(o *serverOptions) { o.shadow = true } }

// withPanics makes [Timeout] count recovered panics in c.
func withPanics(c *atomic.Uint64) ServerOption { return func(o *serverOptions) { o.panics = c } }

// validKey reports whether k is a valid gRPC metadata key: lower-case
// letters, digits, '-', '_' and '.', not starting with "grpc-".
func validKey(k string) bool {
	if k == "" || len(k) >= 5 && k[:5] == "grpc-" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
