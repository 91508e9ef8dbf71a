package bulwarkhttp

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Option configures a server middleware built by [Limit], [Breaker],
// [Bulkhead], [Timeout] or [Shed], or the client [Transport]. Options that do
// not apply to what is being built are ignored by it. A bad option value
// makes the constructor return an error wrapping [bulwark.ErrInvalidConfig].
type Option func(*options)

// RetryAfterSource tells how long clients should wait before they try again,
// from the service's point of view: typically a backpressure estimator that
// raises the advice as the service's latency or queue grows. RetryAfter is
// called on the request's goroutine for every rejection, so it must be safe
// for concurrent use and cheap. A result of 0 or less means "no advice".
type RetryAfterSource interface {
	RetryAfter() time.Duration
}

// RejectFunc writes the response for a request a middleware turned away.
//
// When it is called the middleware has already set the response headers
// that describe the rejection (Retry-After, the RateLimit fields, the
// degraded header), so a custom RejectFunc usually writes only a status and
// a body; rej.Status is the status the middleware recommends. It must not
// write rej.Err's text to the client: errors may carry internal detail.
type RejectFunc func(w http.ResponseWriter, r *http.Request, rej Rejection)

// Rejection describes why a middleware turned a request away.
type Rejection struct {
	// Status is the recommended status: 429 for a rate limit, 503 for an
	// open breaker, a full bulkhead or shed load, 504 for a timeout, 500 for
	// a limiter that failed on a bad argument (such as a cost above the
	// limiter's capacity).
	Status int
	// Err matches, with errors.Is, the cause: bulwark.ErrRateLimited,
	// bulwark.ErrOpen, bulwark.ErrBulkheadFull, bulwark.ErrTimeout, a
	// context error, or whatever error the limiter, breaker, bulkhead or
	// shedder returned.
	Err error
	// Decision is the limiter's decision for a rate-limit rejection; the
	// zero value otherwise.
	Decision bulwark.Decision
	// RetryAfter is the wait advertised in the Retry-After header (before
	// rounding up to whole seconds), or 0 when none was set.
	RetryAfter time.Duration
}

// KeyFunc derives the rate-limit key of a request: the identity whose
// requests share one budget (a client address, an API key, a route). It is
// called once per request, on the request's goroutine; it should not
// allocate. Keys are never used as metric labels.
type KeyFunc func(r *http.Request) string

// DefaultPolicyName is the policy name used in the RateLimit-Policy and
// RateLimit header fields unless [WithPolicy] says otherwise.
const DefaultPolicyName = "default"

type options struct {
	err error

	keyFunc        KeyFunc
	cost           func(*http.Request) int
	priority       func(*http.Request) int
	shadow         bool
	headers        bool
	legacy         bool
	degradedHeader string
	policyName     string
	policyWindow   time.Duration
	excludedExact  map[string]struct{}
	excludedPrefix []string
	reject         RejectFunc
	retryAfterFunc func(bulwark.Decision) time.Duration
	backpressure   RetryAfterSource
	observer       bulwark.Observer
	name           string
	clock          bulwark.Clock
	isFailure      func(status int) bool

	// Transport only.
	maxRetries    int
	maxRetryAfter time.Duration
	jitter        float64
	backoffBase   time.Duration
	backoffMax    time.Duration
	retryMethods  map[string]bool
	retryStatuses map[int]bool
	breakerFor    func(host string) bulwark.Breaker
	hostLimiter   bulwark.Limiter
	hedgeDelay    time.Duration
	maxHedges     int
	random        func() float64
	pacer         *Pacer
	pacerStore    PacerStore
}

func (o *options) fail(format string, args ...any) {
	if o.err == nil {
		o.err = core.ConfigError(format, args...)
	}
}

func buildOptions(opts []Option) (*options, error) {
	o := &options{
		keyFunc:    remoteAddrKey,
		headers:    true,
		policyName: DefaultPolicyName,
		reject:     DefaultReject,
		clock:      bulwark.SystemClock,
		isFailure:  serverError,

		maxRetries:    DefaultMaxRetries,
		maxRetryAfter: DefaultMaxRetryAfter,
		jitter:        DefaultJitter,
		backoffBase:   DefaultBackoff,
		backoffMax:    DefaultMaxBackoff,
		retryMethods:  defaultRetryMethods(),
		retryStatuses: defaultRetryStatuses(),
		random:        rand.Float64,
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

func serverError(status int) bool { return status >= 500 }

// WithKeyFunc sets how [Limit] derives a request's key. The default is the
// TCP peer's address ([KeyByIP] with no trusted proxy).
func WithKeyFunc(f KeyFunc) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: key func must not be nil")
			return
		}
		o.keyFunc = f
	}
}

// WithCost sets how many tokens a request takes from the limiter (default
// 1), so expensive endpoints can weigh more. A cost below 1 or above the
// limiter's capacity makes the limiter fail with bulwark.ErrInvalidArgument,
// which the middleware answers with 500.
func WithCost(f func(*http.Request) int) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: cost func must not be nil")
			return
		}
		o.cost = f
	}
}

// WithShadow turns shadow mode on or off (default off). In shadow mode
// [Limit] still asks the limiter, sets the RateLimit header fields and
// reports the decision to the observer (as a bulwark.EventDecision with
// Shadow set), but lets every request through: a new limit can be tried on
// live traffic before it is enforced. Retry-After is not set on responses
// that were let through.
func WithShadow(on bool) Option { return func(o *options) { o.shadow = on } }

// WithHeaders turns the RateLimit-Policy and RateLimit header fields on or
// off (default on). Retry-After is always set on a 429.
func WithHeaders(on bool) Option { return func(o *options) { o.headers = on } }

// WithLegacyHeaders also sets the older RateLimit-Limit, RateLimit-Remaining
// and RateLimit-Reset fields (integers; Reset in seconds), which many
// existing clients read (default off). They carry the same numbers as the
// RateLimit field.
func WithLegacyHeaders(on bool) Option { return func(o *options) { o.legacy = on } }

// WithPolicy names the quota policy in the RateLimit-Policy and RateLimit
// header fields (default [DefaultPolicyName]) and sets the policy window
// advertised as the "w" parameter, rounded up to whole seconds; a window of
// 0 leaves "w" out. Give the window a limiter would take to refill from
// empty (for bulwark.PerMinute(100), one minute). The name must be 1 to 64
// printable ASCII characters.
func WithPolicy(name string, window time.Duration) Option {
	return func(o *options) {
		if name == "" || len(name) > 64 {
			o.fail("bulwarkhttp: policy name must be 1 to 64 characters, got %d", len(name))
			return
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < 0x20 || c > 0x7e {
				o.fail("bulwarkhttp: policy name must be printable ASCII, got %q", name)
				return
			}
		}
		if window < 0 {
			o.fail("bulwarkhttp: policy window must not be negative, got %v", window)
			return
		}
		o.policyName, o.policyWindow = name, window
	}
}

// WithDegradedHeader makes [Limit] set the header name to "1" on responses
// whose decision was degraded (made locally because the shared store was
// unreachable), so operators can see it from outside. Off by default: it
// tells clients something about the service's health.
func WithDegradedHeader(name string) Option {
	return func(o *options) {
		if name == "" || !validHeaderName(name) {
			o.fail("bulwarkhttp: invalid degraded header name %q", name)
			return
		}
		o.degradedHeader = http.CanonicalHeaderKey(name)
	}
}

// WithExcludedPaths lets requests for these URL paths bypass the middleware
// entirely (health checks, metrics). A path ending in "/" excludes the whole
// subtree below it, like a net/http.ServeMux pattern; any other path must
// match exactly. Paths must start with "/".
func WithExcludedPaths(paths ...string) Option {
	return func(o *options) {
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") {
				o.fail("bulwarkhttp: excluded path must start with \"/\", got %q", p)
				return
			}
			if strings.HasSuffix(p, "/") {
				o.excludedPrefix = append(o.excludedPrefix, p)
				continue
			}
			if o.excludedExact == nil {
				o.excludedExact = make(map[string]struct{})
			}
			o.excludedExact[p] = struct{}{}
		}
	}
}

func (o *options) excluded(path string) bool {
	if o.excludedExact != nil {
		if _, ok := o.excludedExact[path]; ok {
			return true
		}
	}
	for _, p := range o.excludedPrefix {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// WithRejectHandler replaces the function that writes rejections (default
// [DefaultReject]).
func WithRejectHandler(f RejectFunc) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: reject handler must not be nil")
			return
		}
		o.reject = f
	}
}

// WithRetryAfterFunc sets how long a rejected client is told to wait. For
// [Limit] it receives the denied decision (default: its RetryAfter); for the
// other middleware it receives the zero Decision, and a result above 0 sets
// Retry-After on their 503s (by default they set none). The result is
// rounded up to whole seconds, never down.
func WithRetryAfterFunc(f func(bulwark.Decision) time.Duration) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: retry-after func must not be nil")
			return
		}
		o.retryAfterFunc = f
	}
}

// WithBackpressure plugs a backpressure estimator into the Retry-After
// advice: the advertised wait is the larger of src.RetryAfter() and what
// the limiter (or [WithRetryAfterFunc]) says, so a client is never told to
// come back before the limiter would admit it, and is told to stay away
// longer while the service is struggling. It applies to every middleware's
// rejections.
func WithBackpressure(src RetryAfterSource) Option {
	return func(o *options) {
		if core.IsNil(src) {
			o.fail("bulwarkhttp: backpressure source must not be nil")
			return
		}
		o.backpressure = src
	}
}

// WithObserver sets the observer that hears the package's own events:
// shadow decisions of [Limit] (bulwark.EventDecision with Shadow set),
// timeouts of [Timeout] (bulwark.EventTimeout), rejections of [Shed]
// (bulwark.EventRejected), and the retries and hedges of [Transport]
// (bulwark.EventRetry, bulwark.EventHedge). Limiters, breakers and
// bulkheads report their own decisions through their own observers, so
// enforced decisions are not reported twice.
func WithObserver(obs bulwark.Observer) Option {
	return func(o *options) {
		if obs != nil && core.IsNil(obs) {
			o.fail("bulwarkhttp: observer is a nil %T", obs)
			return
		}
		o.observer = obs
	}
}

// WithName names the middleware instance in its events, and so in metrics.
// Keep names few and fixed: they become metric labels.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithClock sets the clock that stamps events (default bulwark.SystemClock).
func WithClock(c bulwark.Clock) Option {
	return func(o *options) {
		if c != nil && core.IsNil(c) {
			o.fail("bulwarkhttp: clock is a nil %T", c)
			return
		}
		if c != nil {
			o.clock = c
		}
	}
}

// WithPriority sets how [Shed] ranks a request (default: every request has
// priority 0). The scale is the shedder's; conventionally a larger number
// is more important and is shed last.
func WithPriority(f func(*http.Request) int) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: priority func must not be nil")
			return
		}
		o.priority = f
	}
}

// WithFailureStatus sets which response statuses [Breaker] reports as
// failed calls (default: 500 and above). A handler that panics is always
// a failure.
func WithFailureStatus(f func(status int) bool) Option {
	return func(o *options) {
		if f == nil {
			o.fail("bulwarkhttp: failure status func must not be nil")
			return
		}
		o.isFailure = f
	}
}

// retryAfter is the advice for a rejection with decision d.
func (o *options) retryAfter(d bulwark.Decision) time.Duration {
	ra := d.RetryAfter
	if o.retryAfterFunc != nil {
		ra = o.retryAfterFunc(d)
	}
	if o.backpressure != nil {
		ra = max(ra, o.backpressure.RetryAfter())
	}
	return max(ra, 0)
}

func (o *options) emit(e bulwark.Event) {
	if o.observer == nil {
		return
	}
	e.Name = o.name
	e.Time = o.clock.Now()
	o.observer.Observe(e)
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
