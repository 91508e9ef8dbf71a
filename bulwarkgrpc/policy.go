package bulwarkgrpc

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/bulwark-go/bulwark/policy"
	"google.golang.org/grpc/metadata"
)

// routes maps methods to policy stacks: exact full method names, then
// whole services ("/pkg.Service/*").
type routes struct {
	exact    map[string]*policy.Stack
	services map[string]*policy.Stack
}

func newRoutes(stacks map[string]*policy.Stack) (*routes, error) {
	r := &routes{exact: map[string]*policy.Stack{}, services: map[string]*policy.Stack{}}
	for k, st := range stacks {
		if err := checkMethodPattern(k); err != nil {
			return nil, err
		}
		if isNil(st) {
			continue
		}
		if svc, ok := strings.CutSuffix(k, "/*"); ok {
			r.services[svc] = st
		} else {
			r.exact[k] = st
		}
	}
	return r, nil
}

func (r *routes) lookup(method string) *policy.Stack {
	if st, ok := r.exact[method]; ok {
		return st
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if st, ok := r.services[method[:i]]; ok {
			return st
		}
	}
	return nil
}

// ServerPolicies returns an interceptor guarding each method with the
// policy stack its key names (keys as in [PerMethod]: "/pkg.Service/Method"
// or "/pkg.Service/*"); other methods pass unguarded. Each call reads the
// stack's current Parts, so a Stack.Update applies from the next call on.
//
// From a Parts, in this order: the shedder ([Shed], priority from the
// Spec's "priority" key read in the incoming metadata), the rate limit
// ([Limit], keyed as the Spec says: "ip" by peer, "header:NAME" by the
// metadata key name in lower case, "route" by method, "global" one budget;
// "query:NAME" has no gRPC meaning and keys by peer), the breaker
// ([Breaker]), the bulkhead ([Bulkhead]) and the timeout ([Timeout]).
// Retry and hedge blocks are for clients ([WithMethodPolicies]) and are
// not applied here. A disabled stack passes calls untouched; in shadow
// mode (the Spec's or the rate limit's) the limiter is asked, its metadata
// set and denials reported to the observer with Shadow set, but nothing is
// rejected, and the other patterns are not applied.
//
// opts apply to every pattern built (for instance [WithDegradedTrailer],
// [WithObserver], [WithFailure]); with [WithRateLimitMetadata] the policy
// name and window advertised are the stack's name and the limit's period.
func ServerPolicies(stacks map[string]*policy.Stack, opts ...ServerOption) (*Interceptor, error) {
	r, err := newRoutes(stacks)
	if err != nil {
		return nil, err
	}
	o, err := buildServerOptions(opts)
	if err != nil {
		return nil, err
	}
	panics := new(atomic.Uint64)
	opts = append(opts[:len(opts):len(opts)], withPanics(panics))
	cache := map[*policy.Stack]*atomic.Pointer[builtParts]{}
	for _, st := range r.exact {
		cache[st] = new(atomic.Pointer[builtParts])
	}
	for _, st := range r.services {
		cache[st] = new(atomic.Pointer[builtParts])
	}
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		st := r.lookup(c.method)
		if st == nil {
			return next(ctx, c)
		}
		p := st.Load()
		slot := cache[st]
		b := slot.Load()
		if b == nil || b.parts != p {
			b = &builtParts{parts: p, guard: serverGuard(p, o, opts)}
			slot.Store(b)
		}
		return b.guard(ctx, c, next)
	}, panics: []*atomic.Uint64{panics}}, nil
}

// builtParts caches the guard built for one Parts.
type builtParts struct {
	parts *policy.Parts
	guard guardFunc
}

// serverGuard builds the guard of one Parts. The parts were validated by
// their Build or Update, so the constructors cannot fail on them; a
// pattern that does fail is left out rather than failing every call.
func serverGuard(p *policy.Parts, o *serverOptions, opts []ServerOption) guardFunc {
	if p == nil || !p.Enabled {
		return passThrough
	}
	var ics []*Interceptor
	add := func(ic *Interceptor, err error) {
		if err == nil {
			ics = append(ics, ic)
		}
	}
	enforce := !p.Shadow
	if p.Shedder != nil && enforce {
		add(Shed(ShedderFunc(p.Shedder.AcquirePriority), append(opts[:len(opts):len(opts)], WithPriority(priorityFrom(p.Priority)))...))
	}
	if p.Limiter != nil {
		lo := append(opts[:len(opts):len(opts)], WithKey(keyFrom(p.Key)), WithName(p.Name))
		if o.headers {
			lo = append(lo, WithRateLimitMetadata(p.Name, p.Limit.Period))
		}
		if p.Shadow || p.LimitShadow {
			lo = append(lo, withShadow())
		}
		add(Limit(p.Limiter, lo...))
	}
	if p.Breaker != nil && enforce {
		add(Breaker(p.Breaker, opts...))
	}
	if p.Bulkhead != nil && enforce {
		add(Bulkhead(p.Bulkhead, opts...))
	}
	if p.Timeout > 0 && enforce {
		add(Timeout(p.Timeout, opts...))
	}
	return Chain(ics...).guard
}

func keyFrom(k policy.Key) KeyFunc {
	switch k.Kind {
	case policy.KeyHeader:
		return KeyByMetadata(strings.ToLower(k.Name), nil)
	case policy.KeyRoute:
		return KeyByMethod()
	case policy.KeyGlobal:
		return func(context.Context, string) string { return "" }
	}
	return peerKey
}

// priorityFrom reads a priority (0 to 3, or low, normal, high, critical)
// from the metadata key k names; 1 (normal) when absent or unreadable.
func priorityFrom(k policy.Key) func(ctx context.Context, method string) int {
	name := strings.ToLower(k.Name)
	return func(ctx context.Context, _ string) int {
		if k.Kind != policy.KeyHeader {
			return 1
		}
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(name); len(v) > 0 {
			w := strings.ToLower(strings.TrimSpace(v[0]))
			if n, err := strconv.Atoi(w); err == nil {
				return n
			}
			for i, name := range [...]string{"low", "normal", "high", "critical"} {
				if w == name {
					return i
				}
			}
		}
		return 1
	}
}

// WithMethodPolicies makes a [Client] take each method's settings from
// the policy stack its key names (keys as in [PerMethod]), read on every
// call so that a Stack.Update applies from the next call: the stack's
// breaker replaces [WithMethodBreaker]'s, its retry's attempts set the
// method's retries (attempts − 1; the waits still follow the server's
// advice or [WithBackoff], and only what gRPC deems safe is retried), its
// hedge turns hedging on for the method (a Spec declaring a hedge
// declares the method idempotent), and its timeout bounds each attempt.
// A disabled stack leaves the method to the client's own options.
func WithMethodPolicies(stacks map[string]*policy.Stack) ClientOption {
	return func(o *clientOptions) {
		r, err := newRoutes(stacks)
		if err != nil {
			if o.err == nil {
				o.err = err
			}
			return
		}
		o.policies = r
	}
}

func applyParts(pl *plan, p *policy.Parts) {
	if p == nil || !p.Enabled {
		return
	}
	if p.Breaker != nil {
		pl.br = p.Breaker
	}
	if p.Retry != nil {
		pl.maxRetries = max(p.Retry.Attempts-1, 0)
	}
	if p.Hedge != nil {
		pl.hedgeDelay, pl.maxHedges = p.Hedge.Delay, p.Hedge.MaxHedges
	}
	if p.Timeout > 0 {
		pl.attemptTimeout = p.Timeout
	}
}
