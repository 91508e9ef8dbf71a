package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/local"
)

// Option configures Build.
type Option func(*buildOptions)

type buildOptions struct {
	store    *distributed.Store
	clock    bulwark.Clock
	observer bulwark.Observer
	maxKeys  int
	base     *Spec // WithShapeBase
}

// WithStore makes the patterns whose scope is "fleet" (the default) or
// "tiered" Redis-backed through s; without it every pattern is local.
// A nil s is the same as leaving the option out.
func WithStore(s *distributed.Store) Option { return func(o *buildOptions) { o.store = s } }

// WithClock sets the clock of the local patterns (default the system clock).
func WithClock(c bulwark.Clock) Option { return func(o *buildOptions) { o.clock = c } }

// WithObserver sets the observer of the local patterns and of shadow
// decisions (a fleet-wide pattern reports through its store's observer).
func WithObserver(obs bulwark.Observer) Option { return func(o *buildOptions) { o.observer = obs } }

// WithMaxKeys bounds the keys each local limiter keeps (local.WithMaxKeys).
func WithMaxKeys(n int) Option { return func(o *buildOptions) { o.maxKeys = n } }

// Parts is one built configuration of a Stack: the patterns and the
// settings they were built from. A Parts never changes once built; a Stack
// swaps whole Parts. A nil pattern field means the pattern is not declared
// (or is disabled). Read its fields; do not modify them.
type Parts struct {
	Name    string // the stack's name: every pattern's name
	Spec    Spec   // the Spec this was built from
	Version uint64 // 1 for the first build, one more for each successful update
	Enabled bool   // false: the stack does nothing
	Shadow  bool   // the whole stack reports rejections without enforcing them

	Limiter     bulwark.Limiter // nil without a rate limit
	Limit       bulwark.Limit
	Algorithm   string // TokenBucket, SlidingWindow, SlidingLog or FixedWindow
	Key         Key
	LimitScope  string // ScopeFleet, ScopeLocal or ScopeTiered, as built (fleet without a store is local)
	LimitShadow bool   // the rate limit is asked but not enforced
	// Backpressure is the estimator raising Retry-After when the rate
	// limit's retry_after is "backpressure" (Limiter then already applies
	// it to denials); the server feeds it each request's latency with
	// Record. Nil otherwise.
	Backpressure *local.Backpressure

	Breaker       bulwark.Breaker // nil without a circuit breaker; honours circuitbreaker.force
	BreakerConfig bulwark.BreakerConfig
	BreakerForce  string // ForceOpen, ForceClosed or "" (the breaker decides)

	Bulkhead       bulwark.Bulkhead // nil without a bulkhead
	BulkheadConfig bulwark.BulkheadConfig

	Shedder  *local.Shedder // nil without load shedding
	Priority Key            // where a request's priority comes from (Kind 0: none)

	Timeout time.Duration      // per attempt; 0: none
	Retry   *RetryPlan         // nil without a retry
	Hedge   *local.HedgeConfig // nil without a hedge

	res     resolved
	breaker bulwark.Breaker // Breaker without the force override
	owned   []io.Closer     // the fleet patterns built for this Parts

	rateState, breakerState string   // StateNames
	relimited               bool     // Limiter shares the old Parts' local state (relimit)
	commits                 []func() // in-place changes to old patterns, run once the build succeeded
	exec                    *bulwark.Executor[struct{}]
	execErr                 error
}

// Stack is the built form of a Spec for one named operation: its current
// Parts, replaced whole by Update. Safe for concurrent use: Load is one
// atomic read.
type Stack struct {
	name string
	opts buildOptions
	mu   sync.Mutex // serialises Update and Close
	cur  atomic.Pointer[Parts]
	done bool
	// retired holds the fleet patterns the last Update replaced, closed at
	// the next one.
	retired []io.Closer
}

// Build validates spec and builds its patterns for the operation called name
// (spec.Name, when set, names them instead). It returns an error wrapping
// bulwark.ErrInvalidConfig, listing every problem, when spec is invalid or
// name is empty.
func Build(name string, spec Spec, opts ...Option) (*Stack, error) {
	s := &Stack{name: name}
	for _, o := range opts {
		if o != nil {
			o(&s.opts)
		}
	}
	if s.opts.maxKeys < 0 {
		return nil, core.ConfigError("policy: max keys must not be negative, got %d", s.opts.maxKeys)
	}
	p, err := s.build(spec, nil, 1)
	if err != nil {
		return nil, err
	}
	s.cur.Store(p)
	return s, nil
}

// Name returns the name the stack was built with ("" for a nil Stack).
func (s *Stack) Name() string {
	if s == nil {
		return ""
	}
	return s.name
}

// Load returns the current Parts (an empty, disabled Parts for a nil Stack).
func (s *Stack) Load() *Parts {
	if s == nil {
		return &Parts{}
	}
	return s.cur.Load()
}

// Update validates spec, builds it and swaps it in whole: calls starting
// after Update returns use the new Parts, calls in flight finish on the
// old. A pattern whose settings did not change is carried over as it is,
// state included; a changed fleet-wide pattern keeps its shared state in
// Redis when its shape (algorithm, period) is the same. When spec is
// invalid, or a pattern cannot be built, Update returns the error and the
// current Parts stays: nothing half-applies. To leave calls in flight time to finish, a
// replaced fleet-wide breaker or bulkhead is closed at the next Update (or
// at Close), not at once.
func (s *Stack) Update(spec Spec) error {
	if s == nil {
		return core.ArgumentError("policy: update of a nil stack")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return core.ArgumentError("policy: stack %q is closed", s.name)
	}
	old := s.cur.Load()
	p, err := s.build(spec, old, old.Version+1)
	if err != nil {
		return err
	}
	s.cur.Store(p)
	for _, c := range s.retired {
		if r, ok := c.(interface{ Retire() }); ok {
			r.Retire() // a fleet bulkhead: closed once its held slots are released
			continue
		}
		_ = c.Close()
	}
	s.retired = unused(old, p)
	return nil
}

// Close closes the fleet-wide patterns the stack built (their goroutines
// stop; the store stays the caller's). Idempotent.
func (s *Stack) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	var errs []error
	for _, c := range append(s.retired, s.cur.Load().owned...) {
		errs = append(errs, c.Close())
	}
	s.retired = nil
	return errors.Join(errs...)
}

// unused returns what old owned and next does not.
func unused(old, next *Parts) []io.Closer {
	var out []io.Closer
	for _, c := range old.owned {
		kept := false
		for _, k := range next.owned {
			if k == c {
				kept = true
				break
			}
		}
		if !kept {
			out = append(out, c)
		}
	}
	return out
}

// closeUnused closes what old owned and next does not.
func closeUnused(old, next *Parts) {
	for _, c := range unused(old, next) {
		_ = c.Close()
	}
}

func (s *Stack) localOpts(name string) []local.Option {
	o := []local.Option{local.WithName(name)}
	if s.opts.clock != nil {
		o = append(o, local.WithClock(s.opts.clock))
	}
	if s.opts.observer != nil {
		o = append(o, local.WithObserver(s.opts.observer))
	}
	if s.opts.maxKeys > 0 {
		o = append(o, local.WithMaxKeys(s.opts.maxKeys))
	}
	return o
}

func (s *Stack) build(spec Spec, old *Parts, version uint64) (*Parts, error) {
	name := pickStr(s.name, spec.Name)
	var c checker
	if name == "" {
		c.add("name", "a stack needs a name (the operation's)")
	} else {
		checkName(&c, "name", name)
	}
	res, ps := resolve(spec)
	if err := asError(append(c.ps, ps...)); err != nil {
		return nil, err
	}
	p := &Parts{Name: name, Spec: spec.Clone(), Version: version, Enabled: res.enabled, Shadow: res.shadow,
		Timeout: res.timeout, Retry: res.retry, Hedge: res.hedge, res: res}
	var oldRes resolved
	if old != nil && old.Name == name {
		oldRes = old.res
	} else {
		old = nil
	}
	fail := func(err error) (*Parts, error) {
		if p.relimited {
			unrelimit(old.Limiter)
		}
		if old != nil {
			closeUnused(p, old)
		} else {
			closeUnused(p, &Parts{})
		}
		return nil, err
	}
	if err := s.buildRate(p, old, oldRes.rl); err != nil {
		return fail(err)
	}
	if err := s.buildBreaker(p, old, oldRes.cb); err != nil {
		return fail(err)
	}
	if err := s.buildBulkhead(p, old, oldRes.bh); err != nil {
		return fail(err)
	}
	if sh := res.shed; sh != nil {
		if old != nil && old.Shedder != nil && reflect.DeepEqual(oldRes.shed, sh) {
			p.Shedder = old.Shedder
		} else {
			shed, err := local.NewShedder(sh.cfg, s.localOpts(name)...)
			if err != nil {
				return fail(fmt.Errorf("policy: %s: shed: %w", name, err))
			}
			p.Shedder = shed
		}
		p.Priority = sh.priority
	}
	if err := s.buildExecutor(p); err != nil {
		return fail(err)
	}
	for _, c := range p.commits {
		c()
	}
	p.commits = nil
	return p, nil
}

func (s *Stack) buildRate(p *Parts, old *Parts, oldConf *rateConf) error {
	rc := p.res.rl
	if rc == nil {
		return nil
	}
	p.Limit, p.Algorithm, p.Key, p.LimitShadow = rc.limit, rc.algorithm, rc.key, rc.shadow
	p.LimitScope = rc.scope
	if s.opts.store == nil {
		p.LimitScope = ScopeLocal
	}
	if old != nil && old.Limiter != nil && reflect.DeepEqual(oldConf, rc) && old.LimitScope == p.LimitScope {
		p.Limiter, p.Backpressure, p.rateState = old.Limiter, old.Backpressure, old.rateState
		return nil
	}
	if old != nil && old.Limiter != nil && old.LimitScope == ScopeLocal && p.LimitScope == ScopeLocal &&
		inPlaceRate(oldConf, rc) {
		if l, ok := relimit(old.Limiter, rc.limit); ok {
			p.Limiter, p.relimited = l, true
			return nil
		}
	}
	var l bulwark.Limiter
	var err error
	switch p.LimitScope {
	case ScopeLocal:
		l, err = s.newLocalLimiter(p.Name, rc)
	case ScopeFleet:
		p.rateState = s.rateStateName(p.Name, rc)
		l, err = newFleetLimiter(s.opts.store, p.rateState, rc)
	case ScopeTiered:
		var lo, gl bulwark.Limiter
		if lo, err = s.newLocalLimiter(p.Name, rc); err == nil {
			p.rateState = s.rateStateName(p.Name, rc)
			if gl, err = newFleetLimiter(s.opts.store, p.rateState, rc); err == nil {
				l, err = distributed.NewTiered(lo, gl)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("policy: %s: ratelimit: %w", p.Name, err)
	}
	if rc.retryAfter == RetryAfterBackpressure {
		bp, err := local.NewBackpressure(rc.bp, s.localOpts(p.Name)...)
		if err != nil {
			return fmt.Errorf("policy: %s: ratelimit.backpressure: %w", p.Name, err)
		}
		if l, err = local.NewBackpressureLimiter(l, bp); err != nil {
			return fmt.Errorf("policy: %s: ratelimit: %w", p.Name, err)
		}
		p.Backpressure = bp
	}
	p.Limiter = l
	return nil
}

func (s *Stack) newLocalLimiter(name string, rc *rateConf) (bulwark.Limiter, error) {
	o := s.localOpts(name)
	switch rc.algorithm {
	case SlidingWindow:
		return local.NewSlidingWindow(rc.limit, o...)
	case SlidingLog:
		return local.NewSlidingLog(rc.limit, o...)
	case FixedWindow:
		return local.NewFixedWindow(rc.limit, o...)
	}
	return local.NewTokenBucket(rc.limit, o...)
}

func newFleetLimiter(st *distributed.Store, name string, rc *rateConf) (bulwark.Limiter, error) {
	switch rc.algorithm {
	case SlidingWindow:
		return st.SlidingWindow(name, rc.limit)
	case SlidingLog:
		return st.SlidingLog(name, rc.limit)
	case FixedWindow:
		return st.FixedWindow(name, rc.limit)
	}
	return st.TokenBucket(name, rc.limit)
}

func (s *Stack) buildBreaker(p *Parts, old *Parts, oldConf *breakerConf) error {
	bc := p.res.cb
	if bc == nil {
		return nil
	}
	p.BreakerConfig, p.BreakerForce = bc.cfg, bc.force
	defer func() { p.Breaker = forced(p.breaker, bc.force, s.opts.observer, p.clock(s), p.Name) }()
	if old != nil && old.breaker != nil && oldConf != nil && oldConf.cfg == bc.cfg && oldConf.scope == bc.scope {
		p.breaker, p.breakerState = old.breaker, old.breakerState
		p.owned = appendOwned(p.owned, old, old.breaker)
		return nil
	}
	if lb, ok := old.localBreaker(); ok && oldConf.scope == bc.scope && inPlaceBreaker(oldConf.cfg, bc.cfg) {
		cfg := bc.cfg
		p.breaker = lb
		p.commits = append(p.commits, func() { _ = lb.Reconfigure(cfg) })
		return nil
	}
	if bc.scope == ScopeFleet && s.opts.store != nil {
		p.breakerState = s.breakerStateName(p.Name, bc)
		b, err := s.opts.store.Breaker(p.breakerState, bc.cfg)
		if err != nil {
			return fmt.Errorf("policy: %s: circuitbreaker: %w", p.Name, err)
		}
		p.breaker = b
		p.owned = append(p.owned, b)
		return nil
	}
	b, err := local.NewBreaker(bc.cfg, s.localOpts(p.Name)...)
	if err != nil {
		return fmt.Errorf("policy: %s: circuitbreaker: %w", p.Name, err)
	}
	p.breaker = b
	return nil
}

func (s *Stack) buildBulkhead(p *Parts, old *Parts, oldConf *bulkheadConf) error {
	bc := p.res.bh
	if bc == nil {
		return nil
	}
	p.BulkheadConfig = bc.cfg
	if old != nil && old.Bulkhead != nil && reflect.DeepEqual(oldConf, bc) {
		p.Bulkhead = old.Bulkhead
		p.owned = appendOwned(p.owned, old, old.Bulkhead)
		return nil
	}
	if lb, ok := old.localBulkhead(); ok && oldConf.scope == bc.scope && bc.cfg.Validate() == nil {
		cfg := bc.cfg
		p.Bulkhead = lb
		p.commits = append(p.commits, func() { _ = lb.Reconfigure(cfg) })
		return nil
	}
	if bc.scope == ScopeFleet && s.opts.store != nil {
		b, err := s.opts.store.Bulkhead(p.Name, bc.cfg)
		if err != nil {
			return fmt.Errorf("policy: %s: bulkhead: %w", p.Name, err)
		}
		rb := &retiringBulkhead{b: b}
		p.Bulkhead = rb
		p.owned = append(p.owned, rb)
		return nil
	}
	b, err := local.NewBulkhead(bc.cfg, s.localOpts(p.Name)...)
	if err != nil {
		return fmt.Errorf("policy: %s: bulkhead: %w", p.Name, err)
	}
	p.Bulkhead = b
	return nil
}

// appendOwned adds x to owned when old owned it (a carried-over fleet pattern).
func appendOwned(owned []io.Closer, old *Parts, x any) []io.Closer {
	for _, c := range old.owned {
		if any(c) == x {
			return append(owned, c)
		}
	}
	return owned
}

type keyCtx struct{}

// WithKey returns a context carrying the rate-limit key for [Stack.Do].
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

func keyFrom(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}
