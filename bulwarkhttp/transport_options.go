package bulwarkhttp

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Transport defaults.
const (
	// DefaultMaxRetries is how many times a request is retried at most.
	DefaultMaxRetries = 3
	// DefaultMaxRetryAfter is the longest wait the transport accepts from a
	// Retry-After field or a client-side limiter.
	DefaultMaxRetryAfter = 30 * time.Second
	// DefaultJitter is the fraction of a wait that is randomised.
	DefaultJitter = 0.2
	// DefaultBackoff is the back-off before the first retry of a failure
	// that came without Retry-After; it doubles with each retry.
	DefaultBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the doubling back-off.
	DefaultMaxBackoff = 10 * time.Second
)

// The idempotent methods of RFC 9110, retried by default.
func defaultRetryMethods() map[string]bool {
	return map[string]bool{
		http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true,
		http.MethodTrace: true, http.MethodPut: true, http.MethodDelete: true,
	}
}

func defaultRetryStatuses() map[int]bool {
	return map[int]bool{
		http.StatusTooManyRequests: true, http.StatusBadGateway: true,
		http.StatusServiceUnavailable: true, http.StatusGatewayTimeout: true,
	}
}

// WithMaxRetries sets how many times [Transport] retries a request at most
// (default [DefaultMaxRetries]); 0 turns retrying off. n must not be
// negative.
func WithMaxRetries(n int) Option {
	return func(o *options) {
		if n < 0 {
			o.fail("bulwarkhttp: max retries must not be negative, got %d", n)
			return
		}
		o.maxRetries = n
	}
}

// WithMaxRetryAfter caps how long [Transport] waits before a retry, or for
// its client-side limiter (default [DefaultMaxRetryAfter]). A server asking
// for a longer wait with Retry-After is not retried: its response is
// returned as it is, so the caller sees the 429 or 503 and its Retry-After.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.fail("bulwarkhttp: max retry-after must be positive, got %v", d)
			return
		}
		o.maxRetryAfter = d
	}
}

// WithJitter sets the fraction of each wait that is randomised, in [0,1]
// (default [DefaultJitter]), so clients told the same thing do not come
// back in step. A Retry-After wait is only ever lengthened (by up to the
// fraction, within [WithMaxRetryAfter]); an exponential back-off is
// shortened by up to the fraction.
func WithJitter(fraction float64) Option {
	return func(o *options) {
		if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
			o.fail("bulwarkhttp: jitter must be in [0,1], got %v", fraction)
			return
		}
		o.jitter = fraction
	}
}

// WithBackoff sets the exponential back-off used when a failed attempt
// carried no Retry-After: base before the first retry, doubling each time,
// never above maxBackoff (defaults [DefaultBackoff], [DefaultMaxBackoff]).
func WithBackoff(base, maxBackoff time.Duration) Option {
	return func(o *options) {
		if base <= 0 || maxBackoff < base {
			o.fail("bulwarkhttp: back-off needs 0 < base <= max, got %v and %v", base, maxBackoff)
			return
		}
		o.backoffBase, o.backoffMax = base, maxBackoff
	}
}

// WithRetryMethods replaces the methods [Transport] retries. By default only
// RFC 9110's idempotent methods are (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE): a POST is sent once unless named here, or unless it carries an
// Idempotency-Key (or X-Idempotency-Key) header, as net/http also assumes.
// Retrying a request with a body needs http.Request.GetBody, which
// http.NewRequest sets for in-memory bodies; without it the request is
// sent once.
func WithRetryMethods(methods ...string) Option {
	return func(o *options) {
		m := make(map[string]bool, len(methods))
		for _, meth := range methods {
			if meth == "" || !validHeaderName(meth) {
				o.fail("bulwarkhttp: invalid retry method %q", meth)
				return
			}
			m[strings.ToUpper(meth)] = true
		}
		o.retryMethods = m
	}
}

// WithRetryStatuses replaces the response statuses [Transport] retries
// (default 429, 502, 503, 504). Transport errors other than the request's
// own context ending are always retryable.
func WithRetryStatuses(codes ...int) Option {
	return func(o *options) {
		m := make(map[int]bool, len(codes))
		for _, c := range codes {
			if c < 100 || c > 599 {
				o.fail("bulwarkhttp: invalid retry status %d", c)
				return
			}
			m[c] = true
		}
		o.retryStatuses = m
	}
}

// WithHostBreaker gives [Transport] a circuit breaker per destination host
// (URL.Host, with port when the URL has one). newBreaker is called the first
// time a host is seen, outside any lock (so, when the first requests to a
// host race, possibly more than once; one result is kept) and may return
// nil to leave a host unguarded. While a host's breaker is open, requests
// to it fail at once with an error matching bulwark.ErrOpen. A transport
// error or a 5xx response counts as a failure; a request whose own context
// ended counts as a success, not being the host's fault.
func WithHostBreaker(newBreaker func(host string) bulwark.Breaker) Option {
	return func(o *options) {
		if newBreaker == nil {
			o.fail("bulwarkhttp: host breaker factory must not be nil")
			return
		}
		o.breakerFor = newBreaker
	}
}

// WithHostLimiter rate-limits [Transport]'s own requests with l, keyed by
// destination host, one token per attempt. A denied attempt waits for the
// limiter's RetryAfter and asks again; when that wait would pass the
// request's deadline or [WithMaxRetryAfter], the request fails with the
// denial (an error matching bulwark.ErrRateLimited) without being sent.
func WithHostLimiter(l bulwark.Limiter) Option {
	return func(o *options) {
		if core.IsNil(l) {
			o.fail("bulwarkhttp: host limiter must not be nil")
			return
		}
		o.hostLimiter = l
	}
}

// WithHedge turns on hedging for GET and HEAD requests without a body: when
// an attempt has not answered after delay, [Transport] sends the same
// request again, up to maxHedges extra copies, each delay after the
// previous one. The first response that is not a transport error, a 5xx or
// a retryable status wins; every other copy's context is cancelled and its
// response body, if any, is drained and closed. The winner's context lives
// until its body is closed.
func WithHedge(delay time.Duration, maxHedges int) Option {
	return func(o *options) {
		if delay <= 0 || maxHedges < 1 {
			o.fail("bulwarkhttp: hedge needs a positive delay and at least one hedge, got %v and %d", delay, maxHedges)
			return
		}
		o.hedgeDelay, o.maxHedges = delay, maxHedges
	}
}

// WithPacer makes [Transport] pace itself by what servers say of their
// quotas: before each attempt it waits for p (see [Pacer]), keyed by
// destination host, and it reports each response's RateLimit fields and
// Retry-After to p. A request p refuses (its quota is spent for longer
// than the pacer's MaxWait, or its queue is full) fails without being
// sent, with an error matching bulwark.ErrRateLimited. Share one Pacer
// between the transports (and gRPC clients) that talk to the same
// servers.
func WithPacer(p *Pacer) Option {
	return func(o *options) {
		if p == nil {
			o.fail("bulwarkhttp: pacer must not be nil")
			return
		}
		o.pacer = p
	}
}

// withRandom replaces the jitter's random source (tests).
func withRandom(f func() float64) Option { return func(o *options) { o.random = f } }
