package distributed

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/lua"
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
// no reply for RefreshInterval reads the state again. With a client that
// cannot subscribe (one without a Subscribe method), replicas learn of
// transitions only from their own replies and refreshes.
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
	lastReply time.Time // real time of the last script reply
	fleet     fleetCounts
	batch     outcomeBatch
	trials    []trialOutcome
	pending   []bulwark.Event
	spare     []bulwark.Event
	draining  bool

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

// breakerReply is the decoded reply of lua.BreakerState.
type breakerReply struct {
	state                         bulwark.State
	gen                           uint64
	opened, until, now            int64
	calls, failures, slow, consec int64
	granted, ok, result           int64
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
		twinOpts = append(twinOpts, local.WithObserver(degradedObserver{s.observer}))
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

// breakerChannel is the pub/sub channel of a store's breakers.
func breakerChannel(prefix string) string { return prefix + ":" + algBreaker + ":events" }

func breakerConfigArgs(c bulwark.BreakerConfig) []any {
	slowRate := "0"
	if c.SlowCall > 0 {
		slowRate = strconv.FormatFloat(c.SlowCallRate, 'g', -1, 64)
	}
	return []any{
		strconv.FormatInt(c.Window.Microseconds(), 10),
		strconv.Itoa(c.MinimumCalls),
		strconv.FormatFloat(c.FailureRate, 'g', -1, 64),
		strconv.Itoa(c.ConsecutiveFailures),
		slowRate,
		strconv.FormatInt(c.OpenFor.Microseconds(), 10),
		strconv.Itoa(c.HalfOpenCalls),
	}
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
		b.obs.Observe(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: patternBreaker, Name: b.name, Time: now, To: s})
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
		b.obs.Observe(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: patternBreaker, Name: b.name, Time: now, Allowed: success, Duration: d, To: state})
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

func (b *Breaker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
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

// loop is the breaker's goroutine: it sends batches, trial outcomes and
// refreshes, and probes Redis while degraded.
func (b *Breaker) loop() {
	defer close(b.done)
	flushT := time.NewTicker(b.flushEvery)
	defer flushT.Stop()
	tickT := time.NewTicker(max(b.refreshEvery/4, time.Millisecond))
	defer tickT.Stop()
	ctx := context.Background()
	for {
		select {
		case <-b.stop:
			if !b.degraded.Load() {
				_ = b.flush(ctx)
			}
			return
		case <-flushT.C:
			_ = b.flush(ctx)
		case <-b.kick:
			if b.needSync.Swap(false) && !b.degraded.Load() {
				b.sync(ctx)
			}
			_ = b.flush(ctx)
		case <-tickT.C:
			b.tick(ctx)
		}
	}
}

// tick probes Redis while degraded, and reads the state again when no reply
// came for a refresh interval.
func (b *Breaker) tick(ctx context.Context) {
	b.mu.Lock()
	stale := time.Since(b.lastReply) >= b.refreshEvery
	b.mu.Unlock()
	if !stale && !b.degraded.Load() {
		return
	}
	// A successful read also marks the store healthy again.
	if b.sync(ctx) {
		b.degraded.Store(false)
	}
}

// sync reads the state (creating it closed if absent) into the cache. It
// reports whether Redis answered; a failure turns the breaker degraded.
func (b *Breaker) sync(ctx context.Context) bool {
	if _, err := b.exec(ctx, "get"); err != nil {
		b.enterDegraded()
		return false
	}
	return true
}

// flush sends the waiting trial outcomes, then the batch. One flush runs
// at a time, so a Flush returns only after what was recorded before it
// has been sent, by it or by the flush in progress.
func (b *Breaker) flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if b.degraded.Load() {
		b.trials = b.trials[:0]
		b.batch = outcomeBatch{}
		b.mu.Unlock()
		return nil
	}
	trials := b.trials
	b.trials = nil
	bt := b.batch
	b.batch = outcomeBatch{}
	b.mu.Unlock()
	for _, t := range trials {
		ok := "0"
		if t.ok {
			ok = "1"
		}
		if _, err := b.exec(ctx, "trial", strconv.FormatUint(t.gen, 10), strconv.FormatInt(t.index, 10), ok); err != nil {
			b.enterDegraded()
			return err
		}
	}
	if bt.calls == 0 {
		return nil
	}
	_, err := b.exec(ctx, "report",
		strconv.FormatUint(bt.gen, 10), strconv.FormatInt(bt.calls, 10), strconv.FormatInt(bt.failures, 10),
		strconv.FormatInt(bt.slow, 10), strconv.FormatInt(bt.lead, 10), strconv.FormatInt(bt.maxrun, 10),
		strconv.FormatInt(bt.run, 10))
	if err != nil {
		b.enterDegraded()
	}
	return err
}

// enterDegraded switches to the local twin, seeded with the last known
// state, unless already degraded.
func (b *Breaker) enterDegraded() {
	if b.degraded.Swap(true) {
		return
	}
	b.mu.Lock()
	open := b.known && b.state == bulwark.Open && b.now().Before(b.openUntil)
	b.batch = outcomeBatch{}
	b.trials = b.trials[:0]
	b.mu.Unlock()
	if open {
		b.twin.ForceOpen()
	} else {
		b.twin.Reset()
	}
}

// exec runs one operation of the script and applies its reply to the cache.
func (b *Breaker) exec(ctx context.Context, op string, opArgs ...any) (breakerReply, error) {
	// With an injected clock the script's now is this reading, so a
	// deadline in the reply is exact relative to it; with Redis TIME the
	// reply is read against the local clock when it arrived (see recv).
	var sent time.Time
	var nowArg any = ""
	if b.s.clock != nil {
		sent = b.s.clock.Now()
		nowArg = core.Micros(sent)
	}
	args := make([]any, 0, 12+len(opArgs))
	args = append(args, nowArg, b.s.minTTLms, op, b.channel, b.topic)
	args = append(args, b.cfgArgs...)
	args = append(args, opArgs...)
	b.mu.Lock()
	seq := b.seq
	b.mu.Unlock()
	raw, err := b.s.run(ctx, lua.BreakerState, b.keys, args...)
	if err != nil {
		return breakerReply{}, err
	}
	r, err := decodeBreaker(raw)
	if err != nil {
		return breakerReply{}, err
	}
	recv := sent
	if recv.IsZero() {
		recv = b.now()
	}
	b.mu.Lock()
	b.lastReply = time.Now()
	b.applyLocked(r, recv, seq, true)
	b.unlockAndEmit()
	return r, nil
}

// applyLocked updates the cache from a reply (counts set) or a message,
// recv being the local time that matches the reply's now. A lower
// generation than the cached one is applied only from a reply whose
// request left after the cache last changed (the state was lost and
// started again); so is, within one open generation, an earlier open time
// than the cached one: a message about the open period a later ForceOpen
// replaced, delivered late, must not bring its deadline back, read
// against a later recv. Requires b.mu held.
func (b *Breaker) applyLocked(r breakerReply, recv time.Time, seq uint64, counts bool) {
	fresh := counts && seq == b.seq
	if b.known && r.gen < b.gen && !fresh {
		return
	}
	if b.known && r.gen == b.gen && r.state == b.state {
		if r.state == bulwark.Open && r.opened != b.openedAt && (r.opened > b.openedAt || fresh) {
			// reopened within its generation (ForceOpen on an open breaker)
			b.openedAt = r.opened
			b.openUntil = recv.Add(micros(r.until - r.now))
			b.seq++
		} else if r.state == bulwark.Open && counts && r.now == r.opened && b.s.clock != nil {
			// The reply to the request that opened the breaker, its message
			// applied first: with an injected clock the reply's deadline is
			// exact to the nanosecond, the message's to the microsecond.
			b.openUntil = recv.Add(micros(r.until - r.now))
		}
		if counts {
			b.fleet = fleetCounts{r.calls, r.failures, r.slow, r.consec}
		}
		return
	}
	from, wasKnown := b.state, b.known
	b.known = true
	b.state, b.gen, b.openedAt = r.state, r.gen, r.opened
	b.openUntil, b.retryAt = time.Time{}, time.Time{}
	if r.state == bulwark.Open {
		b.openUntil = recv.Add(micros(r.until - r.now))
	}
	b.fleet = fleetCounts{}
	if counts {
		b.fleet = fleetCounts{r.calls, r.failures, r.slow, r.consec}
	}
	b.batch = outcomeBatch{gen: r.gen}
	b.trials = b.trials[:0]
	b.seq++
	b.packed.Store(r.gen<<3 | 4 | uint64(r.state))
	if wasKnown && from != r.state && b.obs != nil {
		b.pending = append(b.pending, bulwark.Event{
			Kind: bulwark.EventBreakerTransition, Pattern: patternBreaker, Name: b.name, Time: recv, From: from, To: r.state,
		})
	}
}

// unlockAndEmit releases b.mu and emits the queued transition events; one
// goroutine at a time drains the queue, so observers see them in order.
func (b *Breaker) unlockAndEmit() {
	if b.draining || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.draining = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending, b.spare = b.spare[:0], nil
		b.mu.Unlock()
		for _, e := range batch {
			b.obs.Observe(e)
		}
		b.mu.Lock()
		clear(batch)
		b.spare = batch[:0]
	}
	b.draining = false
	b.mu.Unlock()
}

// onMessage handles the store's broadcast for this breaker: a published
// transition, or a (re)established subscription.
func (b *Breaker) onMessage(m cluster.Message) {
	if m.Resync {
		b.needSync.Store(true)
		b.wake()
		return
	}
	r, ok := parseTransition(m.Payload)
	if !ok {
		return
	}
	// With an injected clock the script's time is the clock's, so the
	// message's now is a reading of this clock: reading the clock now,
	// after it may have moved since the message left, would push the
	// open deadline later than it is.
	var recv time.Time
	if b.s.clock != nil {
		recv = time.UnixMicro(r.now)
	} else {
		recv = b.now()
	}
	b.mu.Lock()
	b.applyLocked(r, recv, 0, false)
	b.unlockAndEmit()
}

// parseTransition decodes "state gen opened until now".
func parseTransition(p string) (breakerReply, bool) {
	var v [5]int64
	for i := range v {
		f, rest, _ := strings.Cut(p, " ")
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil || x < 0 {
			return breakerReply{}, false
		}
		v[i], p = x, rest
	}
	if p != "" || v[0] > 2 {
		return breakerReply{}, false
	}
	return breakerReply{state: bulwark.State(v[0]), gen: uint64(v[1]), opened: v[2], until: v[3], now: v[4]}, true
}

// decodeBreaker decodes the reply of lua.BreakerState: 12 non-negative
// integers, the state at most 2.
func decodeBreaker(reply any) (breakerReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 12 {
		return breakerReply{}, &errReply{"breaker", reply}
	}
	var v [12]int64
	for i, x := range arr {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return breakerReply{}, &errReply{"breaker", reply}
		}
		v[i] = n
	}
	if v[0] > 2 {
		return breakerReply{}, &errReply{"breaker", reply}
	}
	return breakerReply{
		state: bulwark.State(v[0]), gen: uint64(v[1]), opened: v[2], until: v[3], now: v[4],
		calls: v[5], failures: v[6], slow: v[7], consec: v[8], granted: v[9], ok: v[10], result: v[11],
	}, nil
}

// degradedObserver flags the local twin's events as degraded.
type degradedObserver struct{ o bulwark.Observer }

func (d degradedObserver) Observe(e bulwark.Event) {
	e.Degraded = true
	d.o.Observe(e)
}

// breakerSet is what a store keeps of its breakers: the broadcast they
// share, and the breakers themselves, so Store.Close can close them.
type breakerSet struct {
	mu     sync.Mutex
	closed bool
	bc     *cluster.Broadcast
	all    map[*Breaker]struct{}
}

// add registers b, starting the store's broadcast with the first breaker
// when the client can subscribe.
func (bs *breakerSet) add(s *Store, b *Breaker) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.closed || s.closed.Load() {
		return ErrClosed
	}
	if bs.bc == nil {
		if sub, ok := s.client.(cluster.Subscriber); ok {
			bc, err := cluster.NewBroadcast(sub, breakerChannel(s.prefix))
			if err != nil {
				return err
			}
			bs.bc = bc
		}
	}
	if bs.bc != nil {
		remove, err := bs.bc.Handle(b.topic, b.onMessage)
		if err != nil {
			return err
		}
		b.unhandle = remove
		b.channel = bs.bc.Channel()
	}
	if bs.all == nil {
		bs.all = make(map[*Breaker]struct{})
	}
	bs.all[b] = struct{}{}
	return nil
}

func (bs *breakerSet) remove(b *Breaker) {
	bs.mu.Lock()
	delete(bs.all, b)
	bs.mu.Unlock()
}

// close closes every breaker, then the broadcast.
func (bs *breakerSet) close() {
	bs.mu.Lock()
	bs.closed = true
	all := make([]*Breaker, 0, len(bs.all))
	for b := range bs.all {
		all = append(all, b)
	}
	bc := bs.bc
	bs.mu.Unlock()
	for _, b := range all {
		_ = b.Close()
	}
	if bc != nil {
		_ = bc.Close()
	}
}

// BreakerInfo is the fleet-wide state of one breaker, as
// [Store.BreakerState] reads it.
type BreakerInfo struct {
	// Name is the breaker's name.
	Name string
	// Exists is false when Redis holds no state for the breaker (never
	// used, expired, or lost): it then counts as closed.
	Exists bool
	// State is the state a call would find now: an open breaker whose
	// open period has passed shows HalfOpen, a half-open one whose trial
	// did not report in time shows Open.
	State bulwark.State
	// Generation counts transitions; see [Breaker].
	Generation uint64
	// OpenedAt is when the breaker last opened (zero when closed), and
	// OpenUntil when an open breaker goes half-open; both Redis time.
	OpenedAt, OpenUntil time.Time
	// Calls, Failures and SlowCalls are the fleet's outcomes in the window
	// (closed state).
	Calls, Failures, SlowCalls int64
	// ConsecutiveFailures is the fleet's current run of failures (closed).
	ConsecutiveFailures int64
	// TrialsGranted and TrialsSucceeded count the half-open trial calls.
	TrialsGranted, TrialsSucceeded int64
	// Now is Redis's time when the state was read.
	Now time.Time
}

// BreakerState reads the fleet-wide state of breaker name without changing
// anything (one round trip): what a `bulwark inspect` command shows. The
// window and open period are those the breaker's replicas last wrote. It
// returns Redis's error, if any, and ErrClosed after Close.
func (s *Store) BreakerState(ctx context.Context, name string) (BreakerInfo, error) {
	if s.closed.Load() {
		return BreakerInfo{}, ErrClosed
	}
	state, counts, topic := breakerKeys(s.prefix, name)
	args := []any{s.nowArg(), s.minTTLms, "peek", "", topic}
	args = append(args, breakerConfigArgs(bulwark.DefaultBreakerConfig())...)
	raw, err := s.run(ctx, lua.BreakerState, []string{state, counts}, args...)
	if err != nil {
		return BreakerInfo{}, err
	}
	r, err := decodeBreaker(raw)
	if err != nil {
		return BreakerInfo{}, err
	}
	info := BreakerInfo{
		Name: name, Exists: r.gen != 0, State: r.state, Generation: r.gen,
		Calls: r.calls, Failures: r.failures, SlowCalls: r.slow, ConsecutiveFailures: r.consec,
		TrialsGranted: r.granted, TrialsSucceeded: r.ok, Now: time.UnixMicro(r.now),
	}
	if r.opened != 0 {
		info.OpenedAt = time.UnixMicro(r.opened)
	}
	if r.state == bulwark.Open && r.until != 0 {
		info.OpenUntil = time.UnixMicro(r.until)
	}
	return info, nil
}

// Breakers lists the names of the breakers that have state in Redis under
// the store's prefix (on every master of a cluster), sorted by nothing in
// particular. A name longer than 64 bytes of plain text (48 otherwise) is
// stored hashed and listed as "!" followed by its hash, which
// [Store.BreakerState] does not accept; use short names for breakers.
func (s *Store) Breakers(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	head := s.prefix + ":" + algBreaker + ":{"
	pattern := head + "*}:s"
	var mu sync.Mutex
	var names []string
	scan := func(ctx context.Context, c Client) error {
		var cursor int64
		for {
			cmd := redis.NewCmd(ctx, "scan", cursor, "match", pattern, "count", 500)
			_ = c.Process(ctx, cmd)
			v, err := cmd.Result()
			if err != nil {
				return err
			}
			arr, ok := v.([]any)
			if !ok || len(arr) != 2 {
				return &errReply{"scan", v}
			}
			cs, _ := arr[0].(string)
			keys, _ := arr[1].([]any)
			for _, k := range keys {
				key, _ := k.(string)
				tag := strings.TrimSuffix(strings.TrimPrefix(key, head), "}:s")
				mu.Lock()
				names = append(names, decodePart(tag))
				mu.Unlock()
			}
			cursor, err = strconv.ParseInt(cs, 10, 64)
			if err != nil {
				return &errReply{"scan", v}
			}
			if cursor == 0 {
				return nil
			}
		}
	}
	type masters interface {
		ForEachMaster(ctx context.Context, fn func(ctx context.Context, client *redis.Client) error) error
	}
	var err error
	if m, ok := s.client.(masters); ok {
		err = m.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return nil, err
	}
	return names, nil
}

// decodePart inverts appendPart where it can: plain text as is, "~" and
// base64; a hashed part ("!…") is returned unchanged.
func decodePart(p string) string {
	if strings.HasPrefix(p, "~") {
		if raw, err := base64.RawURLEncoding.DecodeString(p[1:]); err == nil {
			return string(raw)
		}
	}
	return p
}
