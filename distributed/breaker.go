package distributed

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/eventq"
	"github.com/bulwark-go/bulwark/local"
)

var _ bulwark.Breaker = (*Breaker)(nil)

// Defaults of a [Breaker].
const (
	// DefaultFlushInterval is how often a breaker sends the outcomes it has
	// batched, unless WithFlushInterval says otherwise.
	DefaultFlushInterval = 50 * time.Millisecond
	// DefaultRefreshInterval is how long a breaker trusts its cached state
	// without hearing from Redis, unless WithRefreshInterval says
	// otherwise.
	DefaultRefreshInterval = time.Second
)

// Key layout segment and pattern name of the breaker.
const (
	algBreaker     = "br"
	patternBreaker = "breaker"
)

// Errors of [Breaker.Allow]; both match bulwark.ErrOpen.
var (
	errFleetOpen     = fmt.Errorf("%w: open fleet-wide", bulwark.ErrOpen)
	errFleetHalfOpen = fmt.Errorf("%w: half-open and every fleet-wide trial call is taken", bulwark.ErrOpen)
)

// BreakerOption configures a [Breaker].
type BreakerOption func(*breakerOptions)

type breakerOptions struct {
	flush, refresh time.Duration
}

// WithFlushInterval sets how often a breaker sends its batch of outcomes to
// Redis (default [DefaultFlushInterval]). Outcomes that may trip the
// breaker are sent at once, whatever the interval. It must be positive.
func WithFlushInterval(d time.Duration) BreakerOption {
	return func(o *breakerOptions) { o.flush = d }
}

// WithRefreshInterval sets how long a breaker trusts its cached state
// without a reply from Redis before it reads the state again (default
// [DefaultRefreshInterval]); it is the safety net for transitions missed
// by pub/sub, and also how often a degraded breaker probes Redis. It must
// be positive.
func WithRefreshInterval(d time.Duration) BreakerOption {
	return func(o *breakerOptions) { o.refresh = d }
}

// Breaker is a circuit breaker shared by every replica that uses the same
// store prefix and name, with the semantics of bulwark.BreakerConfig and of
// its in-process twin, local.Breaker: outcomes are counted in a sliding
// window of local.BreakerBuckets time buckets, Window/10 wide and aligned
// to the Unix epoch; the breaker opens on the failure rate, the slow-call
// rate or a run of ConsecutiveFailures; after OpenFor it goes half-open
// and lets HalfOpenCalls trial calls through, in total across the fleet;
// when they all succeed it closes, a failed or slow trial re-opens it, and
// a trial that has not reported within OpenFor counts as failed.
//
// Where the state lives. The state (closed, open, half-open), its
// generation, the time it opened, the trials handed out and the bucketed
// counts live in two Redis keys and change only inside one Lua script
// (lua.BreakerState), on Redis TIME, so replicas with skewed clocks agree
// and no read-modify-write ever happens from Go. No lock is held while the
// caller's call runs.
//
// What a call costs. Each replica caches the state. Closed: Allow answers
// from the cache (no round trip, no allocation) and done adds the outcome to
// a local batch, sent every FlushInterval, or at once when it may trip the
// breaker (judged from the fleet's counts in the last reply plus the batch).
// Open: Allow returns ErrOpen from the cache until the open period ends.
// Half-open: Allow asks Redis for one of the fleet's trial calls (one round
// trip) and done reports the trial's outcome in the background. A replica
// whose trial request was refused does not ask again before
// min(OpenFor/4, RefreshInterval) has passed.
//
// How replicas learn. Every change of state is published on the store's
// channel "<prefix>:br:events" (cluster.Broadcast; one subscription per
// store) and every script reply also updates the cache. A subscription
// that was re-established triggers a fresh read, and a breaker that heard
// no reply for RefreshInterval reads the state again (the safety net for
// messages pub/sub lost: it delivers at most once).
//
// Clocks. Deadlines in Redis are Redis TIME (or the store's injected
// clock). A reply carries the server's now and the open deadline; the
// replica turns the remaining time into a deadline on its own clock, read
// when the reply arrived, so its clock's offset does not matter (with an
// injected clock, the reading sent as the script's now is the server's
// now, and the deadline is exact). A published transition is read against
// the clock when it is handled (with an injected clock: against the
// message's own now, a reading of the same clock).
//
// Generations. Every transition, Reset and ForceOpen starts a new
// generation: max(previous + 1, now in µs), so generations also grow
// across an expiry or a Redis restart. A done carries the generation of its
// Allow; an outcome from another generation is ignored, locally and in the
// script. A replica ignores a reply or message older than what it caches.
//
// Keys and expiry. "<prefix>:br:{<name>}:s" (state hash) and
// "<prefix>:br:{<name>}:c" (counts), one hash tag per breaker. The state
// lives 3 × max(Window, OpenFor) after its last write, the counts Window +
// one bucket. A breaker nobody reports to expires and comes back closed,
// as it does after a Redis restart that lost its keys. Building a Breaker
// writes nothing: a replica that starts while the fleet's breaker is open
// sees it open.
//
// Degraded store. When a round trip fails, or the store reports itself
// unhealthy, the breaker decides with its local twin (a local.Breaker with
// the same config, per replica), seeded with the last known state: open
// stays open, anything else starts closed. The twin's events reach the
// store's observer with Degraded set. Outcomes batched then are dropped,
// never merged later. The breaker probes Redis every RefreshInterval and
// returns to the shared state when a probe succeeds.
//
// Events (to the store's observer): EventBreakerTransition when this
// replica learns of a transition (on the goroutine that learned it, which
// may be the store's subscription), EventBreakerRejected (To: the state that
// rejected), and EventBreakerOutcome for each done (To: the fleet's state as
// this replica knew it when the outcome was recorded). The state this
// replica first learns from Redis is not a transition: an observer knows it
// from the rejections and outcomes, which always carry it. While degraded
// the twin's events, with its own state, come with Degraded set.
//
// Concurrency: safe for concurrent use. Close stops its goroutine; so does
// the store's Close. Build one with [Store.Breaker].
type Breaker struct {
	s       *Store
	name    string
	cfg     bulwark.BreakerConfig
	keys    []string
	topic   string // encoded name: the hash tag and the pub/sub topic
	channel string // "" without a subscription
	cfgArgs []any  // ARGV[6..12], boxed once

	flushEvery   time.Duration
	refreshEvery time.Duration
	retryDelay   time.Duration // after a refused trial request
	timeCalls    bool

	twin *local.Breaker
	obs  bulwark.Observer

	packed   atomic.Uint64 // gen<<3 | known<<2 | state, written under mu
	degraded atomic.Bool
	needSync atomic.Bool

	calls sync.Pool // of *fleetCall

	flushMu sync.Mutex // serialises flushes

	mu        sync.Mutex
	known     bool
	state     bulwark.State
	gen       uint64
	openedAt  int64     // µs, server time
	openUntil time.Time // local clock: when an open breaker may go half-open
	retryAt   time.Time // local clock: half-open, trials refused until then
	seq       uint64    // cache changes; a reply is fresh when none happened since its request
	lastReply time.Time // breaker clock: when the last script reply came
	fleet     fleetCounts
	batch     outcomeBatch
	trials    []trialOutcome
	events    eventq.Queue // transitions in order; other events at once

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	unhandle  func()
}

// fleetCounts are the fleet's counts in the last reply (closed state).
type fleetCounts struct{ calls, failures, slow, consec int64 }

// outcomeBatch is the outcomes of one generation not yet sent.
type outcomeBatch struct {
	gen                   uint64
	calls, failures, slow int64
	lead, maxrun, run     int64 // failure runs: before the first success, longest, current
	anySuccess            bool
}

// trialOutcome is a half-open trial's outcome waiting to be sent.
type trialOutcome struct {
	gen   uint64
	index int64
	ok    bool
}

// fleetCall is one admitted call; pooled, with done bound once.
type fleetCall struct {
	b     *Breaker
	gen   uint64
	trial int64 // trial index, 0 for a closed-state call
	start time.Time
	live  atomic.Bool
	done  func(success bool)
}

// Breaker returns the fleet-wide circuit breaker called name, shaped by c.
// Breakers of stores with one prefix and one name share their state across
// processes; replicas should use the same c (each sends its own with every
// call). It returns an error wrapping bulwark.ErrInvalidConfig when c or an
// option is invalid, and ErrClosed after Close. It does no I/O on the
// caller's goroutine: it starts the breaker's background goroutine, which
// reads the state at once.
func (s *Store) Breaker(name string, c bulwark.BreakerConfig, opts ...BreakerOption) (*Breaker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := breakerOptions{flush: DefaultFlushInterval, refresh: DefaultRefreshInterval}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.flush <= 0 {
		return nil, core.ConfigError("breaker flush interval must be positive, got %v", o.flush)
	}
	if o.refresh <= 0 {
		return nil, core.ConfigError("breaker refresh interval must be positive, got %v", o.refresh)
	}
	state, counts, topic := breakerKeys(s.prefix, name)
	b := &Breaker{
		s:            s,
		name:         name,
		cfg:          c,
		keys:         []string{state, counts},
		topic:        topic,
		cfgArgs:      breakerConfigArgs(c),
		flushEvery:   o.flush,
		refreshEvery: o.refresh,
		retryDelay:   max(min(c.OpenFor/4, o.refresh), time.Millisecond),
		timeCalls:    c.SlowCall > 0 || s.observer != nil,
		obs:          s.observer,
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	b.events.Init(s.observer, &s.guard)
	b.calls.New = func() any {
		call := &fleetCall{b: b}
		call.done = call.report
		return call
	}
	twinOpts := []local.Option{local.WithName(name)}
	if s.clock != nil {
		twinOpts = append(twinOpts, local.WithClock(s.clock))
	}
	if s.observer != nil {
		twinOpts = append(twinOpts, local.WithObserver(degradedObserver{s.observer, &b.degraded}))
	}
	twin, err := local.NewBreaker(c, twinOpts...)
	if err != nil {
		return nil, err
	}
	b.twin = twin
	// Registering with the store's broadcast may deliver a Resync at once,
	// which wakes b through the one-slot kick channel: a blocking send
	// here would then wait forever for the loop not yet started.
	b.needSync.Store(true)
	if err := s.breakers.add(s, b); err != nil {
		return nil, err
	}
	b.wake()
	go b.loop()
	return b, nil
}

// breakerKeys returns the keys and the pub/sub topic of breaker name.
func breakerKeys(prefix, name string) (state, counts, topic string) {
	tag := appendPart(nil, name, false)
	base := prefix + ":" + algBreaker + ":{" + string(tag) + "}"
	return base + ":s", base + ":c", string(tag)
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// Store returns the store the breaker was built from.
func (b *Breaker) Store() *Store { return b.s }

// Config returns the breaker's configuration.
func (b *Breaker) Config() bulwark.BreakerConfig { return b.cfg }

// Degraded reports whether the breaker currently decides with its local
// twin because Redis failed.
func (b *Breaker) Degraded() bool { return b.degraded.Load() }

// Generation returns the generation of the state this replica knows (0
// before it has heard from Redis); see [Breaker].
func (b *Breaker) Generation() uint64 { return b.packed.Load() >> 3 }

// now is the breaker's clock: the store's injected clock, or the wall clock
// (with its monotonic reading).
func (b *Breaker) now() time.Time {
	if b.s.clock != nil {
		return b.s.clock.Now()
	}
	return time.Now()
}

func (b *Breaker) isClosed() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// Allow asks to make one call. It returns an error matching bulwark.ErrOpen
// when the fleet's breaker is open, or half-open with every fleet-wide trial
// taken; ctx's error when ctx is already done; ErrClosed after Close.
// Otherwise the caller makes the call and reports its outcome once through
// done (true for success). Redis failing is never an error: the local twin
// decides (see [Breaker]).
//
// Closed, Allow does no I/O and allocates nothing. Open, it does no I/O
// until the open period has passed. Half-open, it makes one round trip,
// bounded by the store's timeout and not cut short by ctx (a cancelled
// request must not leave a trial granted and unused).
func (b *Breaker) Allow(ctx context.Context) (done func(success bool), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.s.closed.Load() || b.isClosed() {
		return nil, ErrClosed
	}
	if b.degraded.Load() || !b.s.Healthy() {
		return b.allowDegraded(ctx)
	}
	if p := b.packed.Load(); p&7 == 4|uint64(bulwark.Closed) {
		var start time.Time
		if b.timeCalls {
			start = b.now()
		}
		return b.admit(p>>3, 0, start), nil
	}
	return b.allowSlow(ctx)
}

func (b *Breaker) allowDegraded(ctx context.Context) (func(bool), error) {
	b.enterDegraded()
	return b.twin.Allow(ctx)
}

// allowSlow is Allow when the cache does not say closed.
func (b *Breaker) allowSlow(ctx context.Context) (func(bool), error) {
	ctx = context.WithoutCancel(ctx)
	now := b.now()
	b.mu.Lock()
	if !b.known {
		b.mu.Unlock()
		if !b.sync(ctx) {
			return b.allowDegraded(ctx)
		}
		now = b.now()
		b.mu.Lock()
	}
	switch b.state {
	case bulwark.Closed:
		gen := b.gen
		b.mu.Unlock()
		return b.admit(gen, 0, now), nil
	case bulwark.Open:
		if now.Before(b.openUntil) {
			b.mu.Unlock()
			return nil, b.reject(now, bulwark.Open, errFleetOpen)
		}
	case bulwark.HalfOpen:
		if now.Before(b.retryAt) {
			b.mu.Unlock()
			return nil, b.reject(now, bulwark.HalfOpen, errFleetHalfOpen)
		}
	}
	b.mu.Unlock()

	r, err := b.exec(ctx, "acquire")
	if err != nil {
		return b.allowDegraded(ctx)
	}
	now = b.now()
	switch {
	case r.result > 0:
		return b.admit(r.gen, r.result, now), nil
	case r.state == bulwark.Closed:
		return b.admit(r.gen, 0, now), nil
	case r.state == bulwark.HalfOpen:
		b.mu.Lock()
		if b.gen == r.gen && b.state == bulwark.HalfOpen {
			b.retryAt = now.Add(b.retryDelay)
		}
		b.mu.Unlock()
		return nil, b.reject(now, bulwark.HalfOpen, errFleetHalfOpen)
	}
	return nil, b.reject(now, bulwark.Open, errFleetOpen)
}

func (b *Breaker) reject(now time.Time, s bulwark.State, err error) error {
	if b.obs != nil {
		b.events.Emit(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: patternBreaker, Name: b.name, Time: now, To: s})
	}
	return err
}

// admit hands out a pooled call of generation gen (trial > 0: that trial).
func (b *Breaker) admit(gen uint64, trial int64, start time.Time) func(bool) {
	c := b.calls.Get().(*fleetCall)
	c.gen, c.trial, c.start = gen, trial, start
	c.live.Store(true)
	return c.done
}

// report is fleetCall.done: it records the outcome once.
func (c *fleetCall) report(success bool) {
	if !c.live.CompareAndSwap(true, false) {
		return
	}
	b, gen, trial, start := c.b, c.gen, c.trial, c.start
	b.calls.Put(c)
	b.record(gen, trial, start, success)
}

// record adds one outcome to the batch, or queues a trial's outcome.
func (b *Breaker) record(gen uint64, trial int64, start time.Time, success bool) {
	var now time.Time
	var d time.Duration
	if !start.IsZero() {
		now = b.now()
		d = now.Sub(start)
	}
	slow := b.cfg.SlowCall > 0 && d > b.cfg.SlowCall
	urgent := false
	b.mu.Lock()
	state := b.state
	if gen == b.gen {
		switch {
		case trial > 0:
			b.trials = append(b.trials, trialOutcome{gen: gen, index: trial, ok: success && !slow})
			urgent = true
		case b.state == bulwark.Closed:
			bt := &b.batch
			if bt.gen != gen {
				*bt = outcomeBatch{gen: gen}
			}
			bt.calls++
			if success {
				bt.anySuccess = true
				bt.run = 0
			} else {
				bt.failures++
				bt.run++
				if !bt.anySuccess {
					bt.lead++
				}
				bt.maxrun = max(bt.maxrun, bt.run)
			}
			if slow {
				bt.slow++
			}
			urgent = (!success || slow) && b.tripPlausibleLocked()
		}
	}
	b.mu.Unlock()
	if urgent {
		b.wake()
	}
	if b.obs != nil {
		b.events.Emit(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: patternBreaker, Name: b.name, Time: now, Allowed: success, Duration: d, To: state})
	}
}

// tripPlausibleLocked reports whether the fleet's counts in the last reply
// plus the batch meet a trip rule, so the batch should go now. Requires
// b.mu held.
func (b *Breaker) tripPlausibleLocked() bool {
	c, f, bt := &b.cfg, &b.fleet, &b.batch
	if c.ConsecutiveFailures > 0 {
		cf := int64(c.ConsecutiveFailures)
		if f.consec+bt.lead >= cf || bt.maxrun >= cf {
			return true
		}
	}
	calls := f.calls + bt.calls
	if calls < int64(c.MinimumCalls) {
		return false
	}
	if float64(f.failures+bt.failures)/float64(calls) >= c.FailureRate {
		return true
	}
	return c.SlowCall > 0 && float64(f.slow+bt.slow)/float64(calls) >= c.SlowCallRate
}

// State returns the fleet's state as this replica knows it: from the cache
// (an open breaker whose open period has passed reports HalfOpen, as the
// next call would find it), or from the local twin while degraded. Before
// the breaker has heard from Redis at all, it reads the state (one round
// trip, bounded by the store's timeout).
func (b *Breaker) State(ctx context.Context) bulwark.State {
	if b.degraded.Load() {
		return b.twin.State(ctx)
	}
	b.mu.Lock()
	known := b.known
	b.mu.Unlock()
	if !known && !b.sync(context.WithoutCancel(ctx)) {
		b.enterDegraded()
		return b.twin.State(ctx)
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == bulwark.Open && !now.Before(b.openUntil) {
		return bulwark.HalfOpen
	}
	return b.state
}

// Reset closes the breaker fleet-wide with an empty window and starts a new
// generation: outcomes of calls admitted before are ignored. The local twin
// is reset too. It returns Redis's error, if any, wrapped; the twin is
// reset even then.
func (b *Breaker) Reset(ctx context.Context) error { return b.force(ctx, "0") }

// ForceOpen opens the breaker fleet-wide for OpenFor, as if it had
// tripped; then it goes half-open as usual. On an open breaker it restarts
// the open period. The local twin is opened too. It returns Redis's error,
// if any, wrapped; the twin is opened even then.
func (b *Breaker) ForceOpen(ctx context.Context) error { return b.force(ctx, "1") }

func (b *Breaker) force(ctx context.Context, target string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.s.closed.Load() || b.isClosed() {
		return ErrClosed
	}
	if target == "1" {
		b.twin.ForceOpen()
	} else {
		b.twin.Reset()
	}
	if _, err := b.exec(ctx, "force", target); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		b.enterDegraded()
		what := "reset"
		if target == "1" {
			what = "force open"
		}
		return fmt.Errorf("bulwark: breaker %q %s: %w", b.name, what, err)
	}
	return nil
}

// Flush sends the outcomes batched so far, and the trial outcomes waiting,
// now rather than at the next flush interval. Nothing is sent while the
// breaker is degraded. It returns Redis's error, if any.
func (b *Breaker) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.flush(ctx)
}

// Close stops the breaker's goroutine after sending what is batched (within
// the store's timeout). Allow then returns ErrClosed. Idempotent; always
// returns nil. The store's Close closes its breakers too.
func (b *Breaker) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.done
		if b.unhandle != nil {
			b.unhandle()
		}
		b.s.breakers.remove(b)
	})
	return nil
}

// degradedObserver flags the local twin's events as degraded, and drops
// those of a twin that is not deciding: Reset and ForceOpen mirror the
// fleet's transitions onto the twin while the breaker is healthy, which
// are not decisions of this replica (the fleet's own transition is
// reported).
type degradedObserver struct {
	o        bulwark.Observer
	degraded *atomic.Bool
}

func (d degradedObserver) Observe(e bulwark.Event) {
	if !d.degraded.Load() {
		return
	}
	e.Degraded = true
	d.o.Observe(e)
}
