package bulwarkgrpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// PatternServer is the Event.Pattern of the events server interceptors
// emit.
const PatternServer = "grpc_server"

// call is what a server guard knows of the call it guards, and how to
// run the handler. Calls are pooled: the interceptor's allowed path
// allocates nothing of its own.
type call struct {
	method string
	stream bool
	ctx    context.Context // the unary call's context, for its metadata
	ss     grpc.ServerStream
	req    any
	uh     grpc.UnaryHandler
	srv    any
	sh     grpc.StreamHandler
	// finals is the stack of the continuations of the chains being run
	// (see Chain); nf is its height.
	finals [8]nextFunc
	nf     int
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func (c *call) setHeader(md metadata.MD) {
	if c.ss != nil {
		_ = c.ss.SetHeader(md)
		return
	}
	_ = grpc.SetHeader(c.ctx, md)
}

func (c *call) setTrailer(md metadata.MD) {
	if c.ss != nil {
		c.ss.SetTrailer(md)
		return
	}
	_ = grpc.SetTrailer(c.ctx, md)
}

// nextFunc runs the rest of the chain and the handler.
type nextFunc func(ctx context.Context, c *call) (any, error)

// handle runs the handler itself: the last step of every chain.
func handle(ctx context.Context, c *call) (any, error) {
	if !c.stream {
		return c.uh(ctx, c.req)
	}
	if ctx == c.ss.Context() {
		return nil, c.sh(c.srv, c.ss)
	}
	return nil, c.sh(c.srv, &contextStream{ServerStream: c.ss, ctx: ctx})
}

// guardFunc runs next, the rest of the chain and the handler, under a
// pattern. next returns the handler's response (nil for streams).
type guardFunc func(ctx context.Context, c *call, next nextFunc) (any, error)

// Interceptor is a server-side guard: a rate limiter, a breaker, a
// bulkhead, a shedder, a timeout, or several of them chained, per method
// or for all. Unary and Stream return it as the interceptors grpc-go
// takes:
//
//	lim, err := bulwarkgrpc.Limit(limiter, bulwarkgrpc.WithKey(bulwarkgrpc.KeyByMetadata("x-api-key", nil)))
//	if err != nil { ... }
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(lim.Unary()),
//		grpc.ChainStreamInterceptor(lim.Stream()))
//
// A stream is guarded as one call: a limiter token when it opens, a
// bulkhead slot or shedder admission for its whole life, one breaker
// outcome when it ends. Rejections are status errors (see [Error]) and the
// handler is not called. An Interceptor is safe for concurrent use.
type Interceptor struct {
	guard  guardFunc
	panics []*atomic.Uint64 // the counters of the timeouts inside
}

// Panics returns how many handler panics were recovered on goroutines the
// interceptor started (a [Timeout]'s, or those of the interceptors chained
// or routed to inside it). Each such call failed with INTERNAL; the
// process was not brought down.
func (i *Interceptor) Panics() uint64 {
	var n uint64
	for _, c := range i.panics {
		n += c.Load()
	}
	return n
}

func panicsOf(ics ...*Interceptor) []*atomic.Uint64 {
	var out []*atomic.Uint64
	for _, ic := range ics {
		if ic != nil {
			out = append(out, ic.panics...)
		}
	}
	return out
}

// Unary returns the interceptor for unary calls.
func (i *Interceptor) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c := callPool.Get().(*call)
		*c = call{method: info.FullMethod, ctx: ctx, req: req, uh: handler}
		resp, err := i.guard(ctx, c, handle)
		*c = call{}
		callPool.Put(c)
		return resp, err
	}
}

// Stream returns the interceptor for streaming calls.
func (i *Interceptor) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c := callPool.Get().(*call)
		*c = call{method: info.FullMethod, stream: true, ss: ss, srv: srv, sh: handler}
		_, err := i.guard(ss.Context(), c, handle)
		*c = call{}
		callPool.Put(c)
		return err
	}
}

// contextStream is a server stream with a replaced context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// rejected reports a rejection to the observer: an EventRejected with
// Pattern PatternServer whose Err matches the bulwark sentinel behind it.
func (o *serverOptions) rejected(err error) {
	if o.observer != nil {
		core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventRejected, Pattern: PatternServer, Name: o.name, Time: time.Now(), Err: err})
	}
}

// Limit returns an interceptor that rate-limits calls with l, keyed by
// [WithKey] (default: the peer's IP address), one token per call unless
// [WithCost] says otherwise.
//
// A denied call fails with RESOURCE_EXHAUSTED carrying a google.rpc.RetryInfo
// detail with the exact wait (Decision.RetryAfter) and the trailer
// grpc-retry-pushback-ms with that wait in whole milliseconds rounded up,
// which gRPC's own retry and this package's [Client] obey. The error
// matches bulwark.ErrRateLimited. [WithRateLimitMetadata] adds the IETF
// RateLimit fields, [WithDegradedTrailer] flags degraded decisions. A
// limiter error (a cost above its capacity) fails the call with INTERNAL.
func Limit(l bulwark.Limiter, opts ...ServerOption) (*Interceptor, error) {
	if isNil(l) {
		return nil, core.ConfigError("bulwarkgrpc: limiter must not be nil")
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	policy := quote(o.policyName)
	window := int64(0)
	if o.window > 0 {
		window = int64((o.window + time.Second - 1) / time.Second)
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		n := 1
		if o.cost != nil {
			n = o.cost(ctx, c.method)
		}
		d, err := l.Allow(ctx, o.key(ctx, c.method), n)
		if err != nil {
			return nil, fromError(err, codes.Internal, "rate limiter failed")
		}
		var md metadata.MD
		if o.degradedKey != "" && d.Degraded {
			md = metadata.Pairs(o.degradedKey, "true")
		}
		if o.headers {
			fields := metadata.Pairs(RateLimitPolicyKey, policyField(policy, d.Limit, window),
				RateLimitKey, rateLimitField(policy, d))
			if d.Allowed {
				c.setHeader(fields)
			} else {
				md = metadata.Join(md, fields)
			}
		}
		if !d.Allowed && o.shadow {
			if o.observer != nil {
				core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventDecision, Pattern: PatternServer, Name: o.name,
					Time: time.Now(), Shadow: true, Limit: d.Limit, Remaining: d.Remaining, Degraded: d.Degraded})
			}
			d.Allowed = true // reported, not enforced
		}
		if !d.Allowed {
			md = metadata.Join(md, metadata.Pairs(PushbackKey, pushbackMillis(d.RetryAfter)))
			c.setTrailer(md)
			rej := rateLimited(d)
			o.rejected(rej)
			return nil, rej
		}
		if md != nil {
			c.setTrailer(md)
		}
		return next(ctx, c)
	}}, nil
}

// quote formats s as a structured-field sf-string, as the RateLimit
// fields want.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func policyField(policy string, limit int, window int64) string {
	s := policy + ";q=" + strconv.Itoa(max(limit, 0))
	if window > 0 {
		s += ";w=" + strconv.FormatInt(window, 10)
	}
	return s
}

func rateLimitField(policy string, d bulwark.Decision) string {
	reset := d.ResetAfter
	if !d.Allowed && d.RetryAfter > reset {
		reset = d.RetryAfter
	}
	t := int64((reset + time.Second - 1) / time.Second)
	return policy + ";r=" + strconv.Itoa(min(max(d.Remaining, 0), max(d.Limit, 0))) + ";t=" + strconv.FormatInt(t, 10)
}

// Breaker returns an interceptor that guards the handler with a circuit
// breaker. While b is open calls fail with UNAVAILABLE (matching
// bulwark.ErrOpen) without reaching the handler; otherwise the handler's
// status is reported as the outcome, counted by [WithFailure] (default
// [DefaultIsFailure]).
func Breaker(b bulwark.Breaker, opts ...ServerOption) (*Interceptor, error) {
	if isNil(b) {
		return nil, core.ConfigError("bulwarkgrpc: breaker must not be nil")
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		done, err := b.Allow(ctx)
		if err != nil {
			if errors.Is(err, bulwark.ErrOpen) {
				rej := rejection(codes.Unavailable, "circuit breaker open", err)
				o.rejected(rej)
				return nil, rej
			}
			return nil, fromError(err, codes.Unavailable, "circuit breaker unavailable")
		}
		resp, err := runReporting(ctx, c, next, done, o.isFailure)
		return resp, err
	}}, nil
}

// runReporting runs next and reports its outcome through done exactly
// once, even when next panics.
func runReporting(ctx context.Context, c *call, next nextFunc, done func(bool), isFailure func(codes.Code) bool) (resp any, err error) {
	reported := false
	defer func() {
		if !reported {
			done(false)
		}
	}()
	resp, err = next(ctx, c)
	reported = true
	done(!isFailure(status.Code(err)))
	return resp, err
}

// Bulkhead returns an interceptor that runs at most as many calls at once
// as b has slots; a call that gets no slot within b's max wait fails with
// UNAVAILABLE (matching bulwark.ErrBulkheadFull). A stream holds its slot
// until its handler returns.
func Bulkhead(b bulwark.Bulkhead, opts ...ServerOption) (*Interceptor, error) {
	if isNil(b) {
		return nil, core.ConfigError("bulwarkgrpc: bulkhead must not be nil")
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		release, err := b.Acquire(ctx)
		if err != nil {
			if errors.Is(err, bulwark.ErrBulkheadFull) {
				rej := rejection(codes.Unavailable, "bulkhead full", err)
				o.rejected(rej)
				return nil, rej
			}
			return nil, fromError(err, codes.Unavailable, "bulkhead unavailable")
		}
		defer release()
		return next(ctx, c)
	}}, nil
}

// Shedder admits or sheds work by priority: a load shedder.
// local.Shedder fits through [ShedderFunc] and its AcquirePriority method.
type Shedder interface {
	Acquire(ctx context.Context, priority int) (release func(), err error)
}

// ShedderFunc adapts a function to [Shedder].
type ShedderFunc func(ctx context.Context, priority int) (release func(), err error)

// Acquire calls f(ctx, priority).
func (f ShedderFunc) Acquire(ctx context.Context, priority int) (func(), error) {
	return f(ctx, priority)
}

// Shed returns an interceptor that asks s to admit each call with the
// priority [WithPriority] gives (default 1, normal); a shed call fails
// with UNAVAILABLE without reaching the handler. The error wraps the
// shedder's.
func Shed(s Shedder, opts ...ServerOption) (*Interceptor, error) {
	if isNil(s) {
		return nil, core.ConfigError("bulwarkgrpc: shedder must not be nil")
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		p := 1
		if o.priority != nil {
			p = o.priority(ctx, c.method)
		}
		release, err := s.Acquire(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			rej := rejection(codes.Unavailable, "load shed", err)
			o.rejected(rej)
			return nil, rej
		}
		if release != nil {
			defer release()
		}
		return next(ctx, c)
	}}, nil
}

// Timeout returns an interceptor that gives each call at most d: the
// handler's context gets a deadline d from now (or the caller's, when that
// is earlier) and a call that runs past d fails with DEADLINE_EXCEEDED
// (matching bulwark.ErrTimeout).
//
// A unary handler that ignores its context is abandoned when d passes:
// the caller gets DEADLINE_EXCEEDED at once and the handler's eventual
// response is discarded (a panic in it is recovered and dropped). A
// stream handler cannot be abandoned safely, so a stream's deadline is
// enforced through its context: the handler must watch ctx.Done, and an
// error it returns after d passed becomes DEADLINE_EXCEEDED.
func Timeout(d time.Duration, opts ...ServerOption) (*Interceptor, error) {
	if d <= 0 {
		return nil, core.ConfigError("bulwarkgrpc: timeout must be positive, got %v", d)
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	panics := o.panics
	if panics == nil {
		panics = new(atomic.Uint64)
	}
	timedOut := func(err error) *Error {
		rej := rejection(codes.DeadlineExceeded, "timeout", fmt.Errorf("%w after %v: %w", bulwark.ErrTimeout, d, err))
		o.rejected(rej)
		return rej
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		tctx, cancel := context.WithTimeoutCause(ctx, d, bulwark.ErrTimeout)
		defer cancel()
		if c.stream {
			resp, err := next(tctx, c)
			if err != nil && ctx.Err() == nil && errors.Is(context.Cause(tctx), bulwark.ErrTimeout) {
				return nil, timedOut(err)
			}
			return resp, err
		}
		type result struct {
			resp any
			err  error
		}
		ch := make(chan result, 1)
		cp := new(call) // the handler may outlive this call: it gets its own copy
		*cp = *c
		go func() {
			defer func() {
				if p := recover(); p != nil {
					panics.Add(1)
					ch <- result{err: status.Error(codes.Internal, "handler panicked")}
				}
			}()
			resp, err := next(tctx, cp)
			ch <- result{resp, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil && ctx.Err() == nil && errors.Is(context.Cause(tctx), bulwark.ErrTimeout) {
				return nil, timedOut(r.err)
			}
			return r.resp, r.err
		case <-tctx.Done():
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, timedOut(context.DeadlineExceeded)
		}
	}, panics: []*atomic.Uint64{panics}}, nil
}

// Chain returns one interceptor running ics in order, the first
// outermost: Chain(timeout, limit, breaker) times the whole call, then
// limits, then guards the handler with the breaker. Nil entries are
// skipped.
func Chain(ics ...*Interceptor) *Interceptor {
	var gs []guardFunc
	for _, ic := range ics {
		if ic != nil && ic.guard != nil {
			gs = append(gs, ic.guard)
		}
	}
	panics := panicsOf(ics...)
	switch len(gs) {
	case 0:
		return &Interceptor{guard: passThrough, panics: panics}
	case 1:
		return &Interceptor{guard: gs[0], panics: panics}
	}
	// Each step's continuation is built once: step k runs gs[k] with the
	// continuation of step k+1; the last continuation pops the chain's own
	// continuation from the call's stack (pushed when the chain starts), so
	// running a chain allocates nothing.
	steps := make([]nextFunc, len(gs)+1)
	steps[len(gs)] = popFinal
	for k := len(gs) - 1; k >= 0; k-- {
		g, rest := gs[k], steps[k+1]
		steps[k] = func(ctx context.Context, c *call) (any, error) { return g(ctx, c, rest) }
	}
	first := steps[0]
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		if c.nf == len(c.finals) { // nested deeper than the stack: allocate
			return runChain(ctx, c, gs, next)
		}
		c.finals[c.nf] = next
		c.nf++
		resp, err := first(ctx, c)
		c.nf--
		c.finals[c.nf] = nil
		return resp, err
	}, panics: panics}
}

// popFinal runs the continuation of the innermost running chain, with the
// stack lowered while it runs (it belongs to the enclosing chain).
func popFinal(ctx context.Context, c *call) (any, error) {
	c.nf--
	f := c.finals[c.nf]
	resp, err := f(ctx, c)
	c.finals[c.nf] = f
	c.nf++
	return resp, err
}

func runChain(ctx context.Context, c *call, gs []guardFunc, next nextFunc) (any, error) {
	if len(gs) == 0 {
		return next(ctx, c)
	}
	return gs[0](ctx, c, func(ctx context.Context, c *call) (any, error) { return runChain(ctx, c, gs[1:], next) })
}

func passThrough(ctx context.Context, c *call, next nextFunc) (any, error) {
	return next(ctx, c)
}

// PerMethod returns an interceptor that guards each call with the
// interceptor its method maps to. Keys are full method names
// ("/pkg.Service/Method") or a whole service ("/pkg.Service/*"); an exact
// name wins over its service. Calls to other methods go through fallback,
// or unguarded when it is nil. A malformed key is an error wrapping
// bulwark.ErrInvalidConfig.
func PerMethod(routes map[string]*Interceptor, fallback *Interceptor) (*Interceptor, error) {
	exact := make(map[string]guardFunc, len(routes))
	services := make(map[string]guardFunc)
	for k, ic := range routes {
		if err := checkMethodPattern(k); err != nil {
			return nil, err
		}
		g := guardFunc(passThrough)
		if ic != nil && ic.guard != nil {
			g = ic.guard
		}
		if svc, ok := strings.CutSuffix(k, "/*"); ok {
			services[svc] = g
		} else {
			exact[k] = g
		}
	}
	panics := panicsOf(fallback)
	for _, ic := range routes {
		panics = append(panics, panicsOf(ic)...)
	}
	def := guardFunc(passThrough)
	if fallback != nil && fallback.guard != nil {
		def = fallback.guard
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		if g, ok := exact[c.method]; ok {
			return g(ctx, c, next)
		}
		if i := strings.LastIndexByte(c.method, '/'); i > 0 {
			if g, ok := services[c.method[:i]]; ok {
				return g(ctx, c, next)
			}
		}
		return def(ctx, c, next)
	}, panics: panics}, nil
}

// checkMethodPattern accepts "/Service/Method" and "/Service/*".
func checkMethodPattern(k string) error {
	svc, m, ok := strings.Cut(strings.TrimPrefix(k, "/"), "/")
	if !strings.HasPrefix(k, "/") || !ok || svc == "" || m == "" || strings.Contains(m, "/") || (strings.Contains(m, "*") && m != "*") {
		return core.ConfigError("bulwarkgrpc: method %q is not \"/package.Service/Method\" or \"/package.Service/*\"", k)
	}
	return nil
}
