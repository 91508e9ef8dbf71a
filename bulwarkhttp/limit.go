package bulwarkhttp

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// PatternLimit is the Event.Pattern of the events [Limit] emits.
const PatternLimit = "http_limit"

// Limit returns middleware that rate-limits requests with l.
//
// For each request it derives a key (by default the TCP peer's address;
// see [KeyByIP], [KeyByHeader], [KeyByRoute], [WithKeyFunc]), takes one
// token (or [WithCost]'s count) from l, and:
//
//   - when allowed, sets the RateLimit-Policy and RateLimit header fields
//     and calls the next handler;
//   - when denied, sets the same fields plus Retry-After (whole seconds,
//     rounded up, at least 1) and answers 429 through the reject handler;
//   - in shadow mode ([WithShadow]) sets the fields, reports the decision
//     and always calls the next handler.
//
// The header fields follow the IETF httpapi RateLimit draft, as structured
// fields:
//
//	RateLimit-Policy: "default";q=100;w=60
//	RateLimit: "default";r=42;t=18
//
// q is the decision's Limit, w the window from [WithPolicy] (left out by
// default), r the remaining tokens and t the seconds until the key is back
// at full capacity (on a 429: the same wait as Retry-After), rounded up.
// [WithLegacyHeaders] adds RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset.
//
// An error from l (a cost above its capacity, or a cancelled request) is
// answered with 500 (bad argument) or 503 (context ended), never with the
// error's text; in shadow mode the request goes through. The returned middleware is safe for concurrent use; on the
// allowed path it allocates two values (the header strings) beyond what
// the limiter and the next handler do.
//
// Limit returns an error wrapping bulwark.ErrInvalidConfig when l is nil
// or an option is invalid.
func Limit(l bulwark.Limiter, opts ...Option) (func(http.Handler) http.Handler, error) {
	if core.IsNil(l) {
		return nil, core.ConfigError("bulwarkhttp: limiter must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	m := &limitMiddleware{l: l, o: o, fields: rateLimitFields{
		headers: o.headers,
		legacy:  o.legacy,
		policy:  quoteString(o.policyName),
		window:  RetryAfterSeconds(o.policyWindow),
	}}
	return func(next http.Handler) http.Handler {
		return &limitHandler{m: m, next: next}
	}, nil
}

type limitMiddleware struct {
	l      bulwark.Limiter
	o      *options
	fields rateLimitFields
}

type limitHandler struct {
	m    *limitMiddleware
	next http.Handler
}

func (h *limitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, o := h.m, h.m.o
	if o.excluded(r.URL.Path) {
		h.next.ServeHTTP(w, r)
		return
	}
	n := 1
	if o.cost != nil {
		n = o.cost(r)
	}
	d, err := m.l.Allow(r.Context(), o.keyFunc(r), n)
	if err != nil {
		if o.shadow {
			// Nothing is enforced in shadow mode, not even a failing limiter.
			h.next.ServeHTTP(w, r)
			return
		}
		o.reject(w, r, Rejection{Status: errorStatus(err, http.StatusInternalServerError), Err: err})
		return
	}
	hdr := w.Header()
	if d.Degraded && o.degradedHeader != "" {
		hdr[o.degradedHeader] = []string{"1"}
	}
	if d.Allowed || o.shadow {
		m.fields.write(hdr, d, RetryAfterSeconds(d.ResetAfter), -1)
		if o.shadow {
			o.emit(bulwark.Event{
				Kind:      bulwark.EventDecision,
				Pattern:   PatternLimit,
				Allowed:   d.Allowed,
				Degraded:  d.Degraded,
				Shadow:    true,
				Limit:     d.Limit,
				Remaining: d.Remaining,
			})
		}
		h.next.ServeHTTP(w, r)
		return
	}
	ra := o.retryAfter(d)
	secs := max(RetryAfterSeconds(ra), 1)
	m.fields.write(hdr, d, secs, secs)
	o.reject(w, r, Rejection{Status: http.StatusTooManyRequests, Err: d.Err(), Decision: d, RetryAfter: ra})
}

// errorStatus maps an error from a limiter, breaker, bulkhead or shedder to
// a response status; other is used for errors it does not know.
func errorStatus(err error, other int) int {
	switch {
	case errors.Is(err, bulwark.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, bulwark.ErrOpen), errors.Is(err, bulwark.ErrBulkheadFull):
		return http.StatusServiceUnavailable
	case errors.Is(err, bulwark.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	case errors.Is(err, bulwark.ErrInvalidArgument):
		return http.StatusInternalServerError
	}
	return other
}
