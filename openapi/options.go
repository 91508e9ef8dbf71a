package openapi

import (
	"fmt"
	"net/netip"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/policy"
)

// Option configures Middleware and Transport. Options that mean nothing to
// one of them are ignored by it.
type Option func(*options)

type options struct {
	store     *distributed.Store
	observer  bulwark.Observer
	clock     bulwark.Clock
	trusted   []netip.Prefix
	basePath  *string
	reject    bulwarkhttp.RejectFunc
	legacy    bool
	hook      func(Operation, *policy.Stack)
	live      *control.Replica // WithLiveConfig
	maxBuffer int64
	unknown   string // stack name for requests matching no operation; "" leaves them untouched
}

// DefaultRetryBuffer is how many bytes of a request body, and of a
// response, the server-side retry buffers (WithRetryBuffer).
const DefaultRetryBuffer = 1 << 20

// WithStore makes the patterns whose scope is fleet (the default) or tiered
// Redis-backed through s, shared by every replica using the same store
// prefix. Without it every pattern is local to the process.
func WithStore(s *distributed.Store) Option { return func(o *options) { o.store = s } }

// WithObserver sets the observer of the local patterns, of the HTTP
// middleware and of shadow decisions (fleet-wide patterns report through
// the store's observer: give both the same one).
func WithObserver(obs bulwark.Observer) Option { return func(o *options) { o.observer = obs } }

// WithClock sets the clock of the local patterns and of the middleware's
// events (default the system clock).
func WithClock(c bulwark.Clock) Option { return func(o *options) { o.clock = c } }

// WithTrustedProxies names the proxies whose X-Forwarded-For entries are
// believed when a rate limit's key is "ip" (see bulwarkhttp.KeyByIP).
func WithTrustedProxies(p ...netip.Prefix) Option {
	return func(o *options) { o.trusted = append(o.trusted, p...) }
}

// WithBasePath sets the prefix that request paths carry before the
// document's paths, instead of the path of the first server URL
// (API.BasePath). "" means none.
func WithBasePath(p string) Option { return func(o *options) { o.basePath = &p } }

// WithRejectHandler replaces the function writing rejections (429, 503, 504);
// the header fields (Retry-After, RateLimit) are set before it is called.
func WithRejectHandler(f bulwarkhttp.RejectFunc) Option { return func(o *options) { o.reject = f } }

// WithLegacyHeaders also sets RateLimit-Limit, -Remaining and -Reset.
func WithLegacyHeaders(on bool) Option { return func(o *options) { o.legacy = on } }

// WithStackHook calls f with each operation's built stack, for instance
// to register it with a control plane that updates it live
// (policy.Stack.Update); the middleware picks an update up on the next
// request.
func WithStackHook(f func(op Operation, s *policy.Stack)) Option {
	return func(o *options) { o.hook = f }
}

// WithUnknownRoutes makes the middleware run requests that match no
// operation under the document's x-bulwark defaults, as one stack called
// name (its metrics and RateLimit-Policy name), instead of passing them
// through untouched: endpoints the document does not list are protected
// too. Without defaults in the document it changes nothing.
func WithUnknownRoutes(name string) Option { return func(o *options) { o.unknown = name } }

// WithRetryBuffer sets how many bytes of a request body and of a response
// the server-side retry keeps (default DefaultRetryBuffer): a larger body
// is not replayed, and a larger response streams to the client and ends
// retrying.
func WithRetryBuffer(n int64) Option { return func(o *options) { o.maxBuffer = n } }

func newOptions(opts []Option) (*options, error) {
	o := &options{maxBuffer: DefaultRetryBuffer}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if o.maxBuffer < 0 {
		return nil, fmt.Errorf("%w: openapi: retry buffer must not be negative, got %d", bulwark.ErrInvalidConfig, o.maxBuffer)
	}
	for _, p := range o.trusted {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: openapi: invalid trusted proxy prefix %v", bulwark.ErrInvalidConfig, p)
		}
	}
	return o, nil
}

func (o *options) base(a *API) string {
	if o.basePath != nil {
		return *o.basePath
	}
	return a.basePath
}

func (o *options) policyOptions() []policy.Option {
	out := []policy.Option{policy.WithStore(o.store), policy.WithObserver(o.observer)}
	if o.clock != nil {
		out = append(out, policy.WithClock(o.clock))
	}
	return out
}

func (o *options) clk() bulwark.Clock {
	if o.clock != nil {
		return o.clock
	}
	return bulwark.SystemClock
}

// emit sends e to obs when there is one.
func emit(obs bulwark.Observer, e bulwark.Event) {
	if obs != nil {
		obs.Observe(e)
	}
}
