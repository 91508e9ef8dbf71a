package openapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/policy"
)

// Middleware returns net/http middleware that routes each request to its
// operation with the routing table compiled at load and runs the
// operation's stack around the next handler, with the responses of package
// bulwarkhttp:
//
//   - shed: 503 when the load shedder refuses the request's priority;
//   - ratelimit: 429 with Retry-After and the RateLimit-Policy / RateLimit
//     header fields (also on admitted responses), the policy named after
//     the operation;
//   - circuitbreaker: 503 while open, a 5xx response counting as a failure;
//   - bulkhead: 503 when no slot comes within max_wait;
//   - retry: the handler is run again after a response with a retried
//     status, from a buffered response with a replayed body (see below);
//   - timeout: 504 when the handler has not answered in time (per attempt).
//
// Requests that match no operation (an unknown path, or a method the path
// does not declare) pass to the next handler untouched, unless
// WithUnknownRoutes puts them under the document's defaults; operations
// without any declaration, and those whose stack is disabled, pass
// untouched too. A stack in
// shadow mode reports its rejections (events with Shadow set) and lets every
// request through.
//
// A retry block on a server operation re-runs the handler: each attempt's
// response is buffered (up to WithRetryBuffer bytes), and when its status is
// one of the block's statuses (default 502, 503, 504) and attempts remain,
// it is discarded and the handler runs again after the back-off, with the
// request body replayed from a buffer. Once a response outgrows the buffer,
// or the handler flushes it, it streams to the client and is never retried;
// a request body larger than the buffer is not replayed, so that request
// runs once. The handler must be safe to run more than once for the
// operation: declare retry only where it is.
//
// Stacks are built once, here, for every operation (fleet-wide ones through
// WithStore's store, closed with the store); a stack updated with
// policy.Stack.Update (see WithStackHook) applies from the next request.
// Middleware returns an error wrapping bulwark.ErrInvalidConfig when an
// option is invalid or a stack cannot be built.
func (a *API) Middleware(opts ...Option) (func(http.Handler) http.Handler, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: openapi: nil API", bulwark.ErrInvalidConfig)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	stacks, err := a.buildStacks(o)
	if err != nil {
		return nil, err
	}
	var unknownOp *Operation
	var unknownStack *policy.Stack
	if o.unknown != "" && a.hasDefaults {
		unknownOp = &Operation{Name: o.unknown, Path: "*", Spec: a.defaults.Clone(), Declared: true}
		// A hedge of the defaults is a client-side pattern; a server's unknown
		// routes take every method, so it does not apply there.
		unknownOp.Spec.Hedge = nil
		if unknownStack, err = o.buildStack(o.unknown, unknownOp.Spec); err != nil {
			return nil, fmt.Errorf("openapi: unknown routes: %w", err)
		}
		if o.hook != nil {
			o.hook(*unknownOp, unknownStack)
		}
		stacks = append(stacks, unknownStack)
	}
	// Build every chain once now, so that a problem is an error here rather
	// than at the first request.
	ops := a.ops
	if unknownOp != nil {
		ops = append(append([]*Operation(nil), a.ops...), unknownOp)
	}
	for i, st := range stacks {
		if st != nil {
			if _, err := buildChain(ops[i], st.Load(), http.NotFoundHandler(), o); err != nil {
				return nil, err
			}
		}
	}
	base := o.base(a)
	return func(next http.Handler) http.Handler {
		if next == nil {
			next = http.NotFoundHandler()
		}
		hs := make([]*opHandler, len(ops))
		for i, st := range stacks {
			if st != nil {
				h := &opHandler{op: ops[i], stack: st, next: next, o: o}
				h.refresh(st.Load())
				hs[i] = h
			}
		}
		s := &server{router: a.router, base: base, ops: hs[:len(a.ops)], next: next}
		if unknownOp != nil {
			s.unknown = hs[len(a.ops)]
		}
		return s
	}, nil
}

func (a *API) buildStacks(o *options) ([]*policy.Stack, error) {
	stacks := make([]*policy.Stack, len(a.ops))
	for i, op := range a.ops {
		if !op.Declared {
			continue
		}
		st, err := o.buildStack(op.Name, op.Spec)
		if err != nil {
			for _, s := range stacks {
				if s != nil {
					_ = s.Close()
				}
			}
			return nil, fmt.Errorf("openapi: %s %s: %w", op.Method, op.Path, err)
		}
		stacks[i] = st
		if o.hook != nil {
			o.hook(*op, st)
		}
	}
	return stacks, nil
}

type server struct {
	router  *router
	base    string
	ops     []*opHandler
	unknown *opHandler // WithUnknownRoutes; nil: unknown routes pass untouched
	next    http.Handler
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := s.router.match(r.Method, r.URL.Path, s.base)
	switch {
	case i >= 0 && s.ops[i] != nil:
		s.ops[i].ServeHTTP(w, r)
	case i < 0 && s.unknown != nil:
		s.unknown.ServeHTTP(w, r)
	default:
		s.next.ServeHTTP(w, r)
	}
}

// opHandler serves one operation with the chain built from its stack's
// current Parts, rebuilt when the stack is updated.
type opHandler struct {
	op    *Operation
	stack *policy.Stack
	next  http.Handler
	o     *options
	mu    sync.Mutex
	cur   atomic.Pointer[chain]
}

type chain struct {
	parts *policy.Parts
	h     http.Handler
}

func (h *opHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.stack.Load()
	c := h.cur.Load()
	if c.parts != p {
		c = h.refresh(p)
	}
	c.h.ServeHTTP(w, r)
}

func (h *opHandler) refresh(p *policy.Parts) *chain {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.cur.Load(); c != nil && c.parts == p {
		return c
	}
	hh, err := buildChain(h.op, p, h.next, h.o)
	if err != nil {
		if c := h.cur.Load(); c != nil {
			return c // keep the last good chain
		}
		hh = h.next
	}
	c := &chain{parts: p, h: hh}
	h.cur.Store(c)
	return c
}

// buildChain wraps next in the patterns of p, innermost first.
func buildChain(op *Operation, p *policy.Parts, next http.Handler, o *options) (http.Handler, error) {
	if !p.Enabled {
		return next, nil
	}
	common := []bulwarkhttp.Option{bulwarkhttp.WithName(p.Name), bulwarkhttp.WithObserver(o.observer),
		bulwarkhttp.WithLegacyHeaders(o.legacy)}
	if o.clock != nil {
		common = append(common, bulwarkhttp.WithClock(o.clock))
	}
	withReject := func(inner http.Handler, pattern string) []bulwarkhttp.Option {
		if p.Shadow {
			return append(common, bulwarkhttp.WithRejectHandler(shadowReject(inner, o, p.Name, pattern)))
		}
		if o.reject != nil {
			return append(common, bulwarkhttp.WithRejectHandler(o.reject))
		}
		return common
	}
	h := next
	var err error
	if p.Timeout > 0 && !p.Shadow {
		if h, err = wrap(h, func(in http.Handler) (func(http.Handler) http.Handler, error) {
			return bulwarkhttp.Timeout(p.Timeout, withReject(in, "http_timeout")...)
		}); err != nil {
			return nil, err
		}
	}
	if p.Retry != nil {
		h = &serverRetry{next: h, plan: *p.Retry, max: o.maxBuffer, clock: o.clk(), obs: o.observer, name: p.Name}
	}
	if p.Bulkhead != nil {
		if h, err = wrap(h, func(in http.Handler) (func(http.Handler) http.Handler, error) {
			return bulwarkhttp.Bulkhead(p.Bulkhead, withReject(in, "http_bulkhead")...)
		}); err != nil {
			return nil, err
		}
	}
	if p.Breaker != nil {
		if h, err = wrap(h, func(in http.Handler) (func(http.Handler) http.Handler, error) {
			return bulwarkhttp.Breaker(p.Breaker, withReject(in, "http_breaker")...)
		}); err != nil {
			return nil, err
		}
	}
	if p.Limiter != nil {
		if p.Backpressure != nil {
			h = recordLatency(h, p.Backpressure, o.clk())
		}
		lo := append(withReject(h, bulwarkhttp.PatternLimit), bulwarkhttp.WithPolicy(p.Name, p.Limit.Period),
			bulwarkhttp.WithShadow(p.LimitShadow || p.Shadow), keyOption(p.Key, op, o))
		mw, err := bulwarkhttp.Limit(p.Limiter, lo...)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", p.Name, err)
		}
		h = mw(h)
	}
	if p.Shedder != nil {
		shed := p.Shedder
		so := append(withReject(h, bulwarkhttp.PatternShed), bulwarkhttp.WithPriority(priorityFunc(p.Priority)))
		mw, err := bulwarkhttp.Shed(bulwarkhttp.ShedderFunc(func(ctx context.Context, prio int) (func(), error) {
			return shed.Acquire(local.WithPriority(ctx, local.Priority(prio)))
		}), so...)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", p.Name, err)
		}
		h = mw(h)
	}
	return h, nil
}

func wrap(h http.Handler, mk func(inner http.Handler) (func(http.Handler) http.Handler, error)) (http.Handler, error) {
	mw, err := mk(h)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return mw(h), nil
}

// shadowReject reports a rejection and serves the request anyway.
func shadowReject(inner http.Handler, o *options, name, pattern string) bulwarkhttp.RejectFunc {
	return func(w http.ResponseWriter, r *http.Request, rej bulwarkhttp.Rejection) {
		emit(o.observer, bulwark.Event{Kind: bulwark.EventRejected, Pattern: pattern, Name: name,
			Time: o.clk().Now(), Shadow: true, Err: rej.Err})
		w.Header().Del("Retry-After")
		inner.ServeHTTP(w, r)
	}
}

func keyOption(k policy.Key, op *Operation, o *options) bulwarkhttp.Option {
	switch k.Kind {
	case policy.KeyHeader:
		return bulwarkhttp.KeyByHeader(k.Name)
	case policy.KeyQuery:
		name := k.Name
		return bulwarkhttp.WithKeyFunc(func(r *http.Request) string { return queryValue(r.URL.RawQuery, name) })
	case policy.KeyRoute:
		route := op.Method + " " + op.Path
		return bulwarkhttp.WithKeyFunc(func(*http.Request) string { return route })
	case policy.KeyGlobal:
		return bulwarkhttp.WithKeyFunc(func(*http.Request) string { return "" })
	}
	return bulwarkhttp.KeyByIP(o.trusted...)
}

// queryValue returns the raw (still percent-encoded) first value of the
// query parameter name, without allocating.
func queryValue(raw, name string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v
		}
	}
	return ""
}

// priorityFunc reads a request's priority for the shedder: 0 (low) to 3
// (critical) or low, normal, high, critical; normal otherwise.
func priorityFunc(k policy.Key) func(*http.Request) int {
	parse := func(s string) int {
		switch strings.ToLower(s) {
		case "low", "0":
			return int(local.PriorityLow)
		case "high", "2":
			return int(local.PriorityHigh)
		case "critical", "3":
			return int(local.PriorityCritical)
		}
		if n, err := strconv.Atoi(s); err == nil && n > 3 {
			return int(local.PriorityCritical)
		}
		return int(local.PriorityNormal)
	}
	switch k.Kind {
	case policy.KeyHeader:
		return func(r *http.Request) int { return parse(r.Header.Get(k.Name)) }
	case policy.KeyQuery:
		return func(r *http.Request) int { return parse(queryValue(r.URL.RawQuery, k.Name)) }
	}
	return func(*http.Request) int { return int(local.PriorityNormal) }
}

// recordLatency feeds the backpressure estimator the latency of each
// admitted request.
func recordLatency(next http.Handler, bp *local.Backpressure, clk bulwark.Clock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := clk.Now()
		defer func() { bp.Record(clk.Now().Sub(start)) }()
		next.ServeHTTP(w, r)
	})
}
