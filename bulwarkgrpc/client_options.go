package bulwarkgrpc

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/local"
	"google.golang.org/grpc/codes"
)

// Client defaults.
const (
	// DefaultMaxRetries is how many times a [Client] retries a call at most.
	DefaultMaxRetries = 3
	// DefaultMaxPushback is the longest wait a [Client] accepts from a
	// server's pushback or RetryInfo; a longer one ends retrying.
	DefaultMaxPushback = 30 * time.Second
	// DefaultBackoff is the back-off before the first retry of a failure
	// without server advice; it doubles with each retry, up to
	// DefaultMaxBackoff, with ±20% jitter as gRPC's retry does.
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// ClientOption configures a [Client]. A bad value makes [NewClient]
// return an error wrapping bulwark.ErrInvalidConfig.
type ClientOption func(*clientOptions)

type clientOptions struct {
	err error

	maxRetries  int
	retryCodes  map[codes.Code]bool
	maxPushback time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	budget      *local.RetryBudget
	idempotent  []string

	breakerFor func(method string) bulwark.Breaker
	isFailure  func(codes.Code) bool

	hedgeDelay time.Duration
	maxHedges  int

	defaultTimeout time.Duration
	minRemaining   time.Duration

	pacer    *bulwarkhttp.Pacer
	policies *routes

	clock    bulwark.Clock
	random   func() float64
	observer bulwark.Observer
	name     string
}

func (o *clientOptions) fail(format string, args ...any) {
	if o.err == nil {
		o.err = core.ConfigError(format, args...)
	}
}

func buildClientOptions(opts []ClientOption) (*clientOptions, error) {
	o := &clientOptions{
		maxRetries:  DefaultMaxRetries,
		retryCodes:  map[codes.Code]bool{codes.Unavailable: true},
		maxPushback: DefaultMaxPushback,
		backoffBase: DefaultBackoff,
		backoffMax:  DefaultMaxBackoff,
		isFailure:   DefaultIsFailure,
		clock:       bulwark.SystemClock,
		random:      rand.Float64,
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

// WithMaxRetries sets how many times a call is retried at most (default
// [DefaultMaxRetries]); 0 turns retrying off.
func WithMaxRetries(n int) ClientOption {
	return func(o *clientOptions) {
		if n < 0 {
			o.fail("bulwarkgrpc: max retries must not be negative, got %d", n)
			return
		}
		o.maxRetries = n
	}
}

// WithRetryCodes replaces the status codes that are retried (default
// UNAVAILABLE only, as gRPC's own retry policy recommends).
// RESOURCE_EXHAUSTED is retried, whatever this list holds, when the server
// said how long to wait (pushback or RetryInfo), and only then: without
// advice it may be a hard quota, or a message too large. Naming
// DEADLINE_EXCEEDED or any code a call may fail with after the server
// acted on it is the caller's decision: retry only methods for which that
// is safe.
func WithRetryCodes(cs ...codes.Code) ClientOption {
	return func(o *clientOptions) {
		m := make(map[codes.Code]bool, len(cs))
		for _, c := range cs {
			if c == codes.OK || c > codes.Unauthenticated {
				o.fail("bulwarkgrpc: cannot retry status code %v", c)
				return
			}
			m[c] = true
		}
		o.retryCodes = m
	}
}

// WithMaxPushback caps the wait a client accepts from a server (default
// [DefaultMaxPushback]): a longer pushback or RetryInfo delay ends
// retrying and the call returns the server's status.
func WithMaxPushback(d time.Duration) ClientOption {
	return func(o *clientOptions) {
		if d <= 0 {
			o.fail("bulwarkgrpc: max pushback must be positive, got %v", d)
			return
		}
		o.maxPushback = d
	}
}

// WithBackoff sets the exponential back-off used when the server gave no
// advice: base before the first retry, doubling, at most maxBackoff, each
// wait multiplied by a random factor in [0.8, 1.2] (defaults
// [DefaultBackoff], [DefaultMaxBackoff]).
func WithBackoff(base, maxBackoff time.Duration) ClientOption {
	return func(o *clientOptions) {
		if base <= 0 || maxBackoff < base {
			o.fail("bulwarkgrpc: back-off needs 0 < base <= max, got %v and %v", base, maxBackoff)
			return
		}
		o.backoffBase, o.backoffMax = base, maxBackoff
	}
}

// WithRetryBudget bounds retries fleet-wide in proportion to calls: every
// call deposits into b and every retry withdraws from it; with the budget
// spent, failures are returned without retrying, so retries cannot
// multiply an outage.
func WithRetryBudget(b *local.RetryBudget) ClientOption {
	return func(o *clientOptions) {
		if isNil(b) {
			o.fail("bulwarkgrpc: retry budget must not be nil")
			return
		}
		o.budget = b
	}
}

// WithIdempotent declares methods safe to send more than once at the same
// time: full method names ("/pkg.Service/Method") or whole services
// ("/pkg.Service/*"). Only they are hedged ([WithHedge]).
func WithIdempotent(methods ...string) ClientOption {
	return func(o *clientOptions) {
		for _, m := range methods {
			if err := checkMethodPattern(m); err != nil {
				if o.err == nil {
					o.err = err
				}
				return
			}
		}
		o.idempotent = append(o.idempotent, methods...)
	}
}

// WithMethodBreaker gives each method its own circuit breaker, made by
// newBreaker the first time the method is called (outside any lock; it
// may return nil to leave a method unguarded). While a method's breaker is
// open its calls fail at once with UNAVAILABLE, matching bulwark.ErrOpen,
// without being sent. Outcomes are counted by [WithBreakerFailure].
func WithMethodBreaker(newBreaker func(method string) bulwark.Breaker) ClientOption {
	return func(o *clientOptions) {
		if newBreaker == nil {
			o.fail("bulwarkgrpc: breaker factory must not be nil")
			return
		}
		o.breakerFor = newBreaker
	}
}

// WithBreakerFailure sets which status codes the client's breakers count
// as failures of the dependency (default [DefaultIsFailure]). A call whose
// own context ended counts as a success: the dependency did not fail it.
func WithBreakerFailure(isFailure func(codes.Code) bool) ClientOption {
	return func(o *clientOptions) {
		if isFailure == nil {
			o.fail("bulwarkgrpc: failure classifier must not be nil")
			return
		}
		o.isFailure = isFailure
	}
}

// WithHedge turns on hedging for unary calls to methods declared with
// [WithIdempotent]: when an attempt has not answered after delay, the
// same request is sent again, up to maxHedges extra copies, each delay
// after the previous one. The first answer that is OK or a status not
// counted as a failure wins and the others are cancelled.
func WithHedge(delay time.Duration, maxHedges int) ClientOption {
	return func(o *clientOptions) {
		if delay <= 0 || maxHedges < 1 {
			o.fail("bulwarkgrpc: hedge needs a positive delay and at least one hedge, got %v and %d", delay, maxHedges)
			return
		}
		o.hedgeDelay, o.maxHedges = delay, maxHedges
	}
}

// WithDeadline sets deadline propagation rules. gRPC already sends the
// context's deadline to the server (grpc-timeout), which sees it on its
// own context and passes it on to the calls it makes with that context.
// This option adds: a call whose context has no deadline gets
// defaultTimeout (0: none); and a call with less than minRemaining left
// fails at once with DEADLINE_EXCEEDED instead of being sent to a server
// that cannot answer in time (0: off).
func WithDeadline(defaultTimeout, minRemaining time.Duration) ClientOption {
	return func(o *clientOptions) {
		if defaultTimeout < 0 || minRemaining < 0 {
			o.fail("bulwarkgrpc: deadlines must not be negative, got %v and %v", defaultTimeout, minRemaining)
			return
		}
		o.defaultTimeout, o.minRemaining = defaultTimeout, minRemaining
	}
}

// WithPacer makes the client pace itself by what servers say of their
// quotas (the RateLimit metadata, pushback, RetryInfo): see
// bulwarkhttp.Pacer. Calls are paced per target (ClientConn.Target).
func WithPacer(p *bulwarkhttp.Pacer) ClientOption {
	return func(o *clientOptions) {
		if p == nil {
			o.fail("bulwarkgrpc: pacer must not be nil")
			return
		}
		o.pacer = p
	}
}

// WithClock sets the clock whose timers drive the client's waits (a
// bulwark.TimerClock such as a fake clock in tests).
func WithClock(c bulwark.Clock) ClientOption {
	return func(o *clientOptions) {
		if isNil(c) {
			o.fail("bulwarkgrpc: clock must not be nil")
			return
		}
		o.clock = c
	}
}

// WithClientObserver sends the client's retries (bulwark.EventRetry) and
// hedges (bulwark.EventHedge) to obs, with Pattern [PatternClient].
func WithClientObserver(obs bulwark.Observer) ClientOption {
	return func(o *clientOptions) {
		if isNil(obs) {
			obs = nil
		}
		o.observer = obs
	}
}

// withRandom replaces the jitter source (tests).
func withRandom(f func() float64) ClientOption { return func(o *clientOptions) { o.random = f } }

func (o *clientOptions) backoff(retry int) time.Duration {
	d := float64(o.backoffBase) * math.Pow(2, float64(min(retry, 62)))
	d = min(d, float64(o.backoffMax))
	return time.Duration(d * (0.8 + 0.4*o.random()))
}
