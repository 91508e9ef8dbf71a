package local

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/eventq"
)

var _ bulwark.Breaker = (*Breaker)(nil)

// BreakerBuckets is how many time buckets a [Breaker]'s sliding window is
// made of.
const BreakerBuckets = 10

// Errors returned by [Breaker.Allow]; both match bulwark.ErrOpen.
var (
	errBreakerOpen     = fmt.Errorf("%w: calls are rejected", bulwark.ErrOpen)
	errBreakerHalfOpen = fmt.Errorf("%w: half-open and every trial call is taken", bulwark.ErrOpen)
)

// Breaker is an in-memory circuit breaker, the in-process twin of the
// Redis-backed breaker of package distributed. It implements
// [bulwark.Breaker] with the semantics of [bulwark.BreakerConfig]:
//
// Closed. Calls flow. Each reported outcome is counted in a sliding time
// window of BreakerBuckets buckets, each Window/BreakerBuckets wide (whole
// microseconds, rounded down) and aligned to multiples of that width since
// the Unix epoch; the window is the bucket holding now and the ones before
// it, and a bucket's counts drop out as a whole when it leaves the window.
// A call counts as slow when SlowCall > 0 and it took longer than SlowCall,
// from Allow to done on the breaker's clock. The breaker opens when the
// window holds at least MinimumCalls calls and failures/calls >=
// FailureRate or slow/calls >= SlowCallRate, or, whatever the window holds,
// after ConsecutiveFailures failures in a row (a success resets the run).
//
// Open. Allow returns an error matching bulwark.ErrOpen. Once OpenFor has
// passed, the next Allow, State or Metrics moves the breaker to half-open;
// no goroutine or timer is involved.
//
// Half-open. The first HalfOpenCalls calls are let through as trials; others
// get ErrOpen. When every trial has succeeded the breaker closes with an
// empty window. A failed trial re-opens it for OpenFor, and so does a slow
// trial when SlowCall is set. A trial that has not reported within OpenFor
// of being let through counts as failed: a lost done cannot hold the
// breaker half-open for ever.
//
// Every transition starts a new generation and clears the counts. A done
// from an earlier generation is ignored, so calls admitted before a
// transition (or a [Breaker.Reset]) cannot sway the new state.
//
// done reports once. A second call to the same done is ignored and never
// counts an outcome twice. To keep Allow allocation-free, done functions are
// shared or recycled, and the guarantee is counted rather than per
// function: a generation never counts more outcomes than it admitted calls.
// When no observer listens and SlowCall is 0 (an untimed breaker), every
// call of one closed generation receives the same done, and a report beyond
// the calls still unreported is ignored; otherwise done functions are
// recycled once they have reported, and a done called again after a later
// Allow received the same function counts as that later call's outcome. In
// both cases a repeated report can stand in for the outcome of another
// call of the generation still in flight, whose own report is then ignored.
//
// Events (Pattern "breaker"): EventBreakerTransition (From, To),
// EventBreakerRejected (To is the state that rejected) and
// EventBreakerOutcome (Allowed is success, Duration the call's duration when
// the call was timed, To the state once the outcome was counted) for each
// outcome counted; ignored reports emit nothing. Rejections and outcomes thus
// carry the current state too, so an observer knows it before the first
// transition.
//
// Concurrency: a Breaker is safe for concurrent use. In the closed state
// Allow takes no lock (one atomic load); done takes a mutex. Observers run on
// the caller's goroutine with no lock held; transitions reach them in the
// order they happened, even when several goroutines cause them.
//
// Cost: Allow followed by done allocates nothing. An untimed breaker on
// the system clock reads no clock for a closed-state outcome while the
// window's newest bucket is current: a timer set to that bucket's end marks
// it ended, and the first outcome after that reads the clock, slides the
// window and sets the timer again (at most one timer per breaker, and none
// left running when outcomes stop). An outcome reported between a bucket's
// end and the moment its timer runs, normally microseconds later, counts in
// the bucket that ended; every 256th outcome in a row reads the clock all
// the same, which bounds that on a starved scheduler. With an injected
// clock the clock is read once per outcome. A timed breaker (SlowCall set,
// or an observer listening) reads it in Allow and in done to time the call,
// and any breaker reads it when not closed.
//
// Create one with [NewBreaker]; the zero value is not usable.
type Breaker struct {
	cfg        bulwark.BreakerConfig
	clock      fastClock
	obs        bulwark.Observer
	name       string
	timeCalls  bool  // read the clock in Allow: SlowCall set or observer present
	bucketSize int64 // width of a bucket, in microseconds

	// packed is gen<<2 | state, written under mu, read without it by the
	// closed-state fast path of Allow and State.
	packed atomic.Uint64
	// closed is the current generation's untimed calls while the breaker
	// is closed, nil otherwise; written under mu, read by Allow.
	closed atomic.Pointer[closedGen]
	// stale is false while the newest bucket is known to hold now (system
	// clock only): tick, set under mu, makes it true at that bucket's end.
	stale  atomic.Bool
	tick   *time.Timer
	unread int // outcomes counted in a row without reading the clock

	calls sync.Pool // of *breakerCall

	mu        sync.Mutex
	state     bulwark.State
	gen       uint64
	openUntil time.Time
	isolated  bool // open until Reset

	// Closed state: the sliding window and its running totals.
	buckets             [BreakerBuckets]breakerBucket
	head                int64 // absolute index of the newest bucket
	headStart           int64 // its first µs: head × bucketSize
	total               breakerBucket
	consecutiveFailures int

	// Half-open state.
	trials          []breakerTrial // len HalfOpenCalls
	trialsStarted   int
	trialsSucceeded int

	// events delivers to obs: transitions queued under mu and emitted in
	// order after it is released; an observer's panic is recovered and
	// counted there, and later events still arrive.
	events eventq.Queue
}

type breakerBucket struct {
	calls, failures, slow int
}

type breakerTrial struct {
	start    time.Time
	reported bool
}

// breakerCall is one admitted call. It is pooled; done is its report method
// bound once, so handing it out allocates nothing.
type breakerCall struct {
	b     *Breaker
	gen   uint64
	start time.Time // zero unless the call is timed (and trial is not callTimedClosed)
	// startNs is the clock's nanosecond reading at Allow when trial is
	// callTimedClosed.
	startNs int64
	trial   int // index in Breaker.trials, callClosed or callTimedClosed
	live    atomic.Bool
	done    func(success bool)
}

// closedGen is what every untimed call of one closed generation shares
// (no SlowCall, no observer: a call carries nothing but its generation):
// one done function, bound once per generation, so Allow takes no object
// from a pool and done puts none back. pending counts the calls admitted
// and not yet reported; a report is counted only while it is above zero,
// so a generation never counts more outcomes than it admitted calls.
type closedGen struct {
	b       *Breaker
	gen     uint64
	pending atomic.Int64
	done    func(success bool)
}

func (b *Breaker) newClosedGen(gen uint64) *closedGen {
	g := &closedGen{b: b, gen: gen}
	g.done = g.report
	return g
}

// report is closedGen.done.
func (g *closedGen) report(success bool) {
	for {
		n := g.pending.Load()
		if n <= 0 {
			return // more reports than calls: ignored
		}
		if g.pending.CompareAndSwap(n, n-1) {
			break
		}
	}
	g.b.recordClosed(g.gen, success)
}

// Kinds of closed-state calls in breakerCall.trial.
const (
	callClosed      = -1 // timed by start when it is not zero
	callTimedClosed = -2 // timed by startNs, from the fast path of Allow
)

// NewBreaker returns a closed breaker shaped by c. It returns an error
// wrapping bulwark.ErrInvalidConfig when c is invalid (see
// bulwark.BreakerConfig.Validate).
//
// Options: WithClock (all timing: the window, OpenFor, slow calls),
// WithObserver, WithName.
func NewBreaker(c bulwark.BreakerConfig, opts ...Option) (*Breaker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Breaker{
		cfg:        c,
		clock:      newFastClock(o.clock),
		obs:        o.observer,
		name:       o.name,
		timeCalls:  c.SlowCall > 0 || o.observer != nil,
		bucketSize: c.Window.Microseconds() / BreakerBuckets,
		trials:     make([]breakerTrial, c.HalfOpenCalls),
	}
	if !b.timeCalls {
		b.closed.Store(b.newClosedGen(0))
	}
	b.stale.Store(true)
	b.events.Init(o.observer, nil)
	b.calls.New = func() any {
		call := &breakerCall{b: b}
		call.done = call.report
		return call
	}
	return b, nil
}

// Config returns the breaker's configuration.
func (b *Breaker) Config() bulwark.BreakerConfig {
	b.mu.Lock() // Reconfigure changes the thresholds
	defer b.mu.Unlock()
	return b.cfg
}

// Allow asks to make one call. It returns an error matching bulwark.ErrOpen
// when the breaker is open, or half-open with every trial call taken, and
// ctx's error when ctx is already done. Otherwise the caller makes the call
// and reports its outcome once through done (true for success).
func (b *Breaker) Allow(ctx context.Context) (done func(success bool), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !b.timeCalls {
		if g := b.closed.Load(); g != nil {
			g.pending.Add(1)
			return g.done, nil
		}
		return b.allowSlow()
	}
	if p := b.packed.Load(); bulwark.State(p&3) == bulwark.Closed {
		c := b.calls.Get().(*breakerCall)
		c.gen, c.startNs, c.trial = p>>2, b.clock.Nanos(), callTimedClosed
		c.live.Store(true)
		return c.done, nil
	}
	return b.allowSlow()
}

// allowSlow is Allow when the breaker was not closed at the last look.
func (b *Breaker) allowSlow() (func(bool), error) {
	now := b.clock.Now()
	b.mu.Lock()
	b.refreshLocked(now)
	var err error
	switch b.state {
	case bulwark.Closed:
		if g := b.closed.Load(); g != nil { // untimed
			g.pending.Add(1)
			b.unlockAndFlush()
			return g.done, nil
		}
		gen := b.gen
		b.unlockAndFlush()
		return b.admit(gen, now, callClosed), nil
	case bulwark.HalfOpen:
		if b.trialsStarted < len(b.trials) {
			i := b.trialsStarted
			b.trials[i] = breakerTrial{start: now}
			b.trialsStarted++
			gen := b.gen
			b.unlockAndFlush()
			return b.admit(gen, now, i), nil
		}
		err = errBreakerHalfOpen
	default:
		err = errBreakerOpen
	}
	state := b.state
	b.unlockAndFlush()
	if b.obs != nil {
		b.events.Emit(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: "breaker", Name: b.name, Time: now, To: state})
	}
	return nil, err
}

// admit hands out a pooled call of generation gen.
func (b *Breaker) admit(gen uint64, start time.Time, trial int) func(bool) {
	c := b.calls.Get().(*breakerCall)
	c.gen, c.start, c.trial = gen, start, trial
	c.live.Store(true)
	return c.done
}

// report is breakerCall.done: it records the outcome once.
func (c *breakerCall) report(success bool) {
	if !c.live.CompareAndSwap(true, false) {
		return
	}
	b, gen, start, startNs, trial := c.b, c.gen, c.start, c.startNs, c.trial
	b.calls.Put(c)
	switch {
	case trial == callTimedClosed:
		b.recordTimedClosed(gen, startNs, success)
	default:
		b.record(gen, start, trial, success)
	}
}

// recordTimedClosed is record for a call timed by the fast path of Allow
// (SlowCall set or an observer listening), admitted while closed. On the
// system clock it reads the monotonic nanoseconds once and builds a
// time.Time only for an event, a trip or a refresh.
func (b *Breaker) recordTimedClosed(gen uint64, startNs int64, success bool) {
	var (
		now time.Time
		m   int64
		d   time.Duration
	)
	if b.clock.sys {
		ns := b.clock.Nanos()
		m, d = b.clock.microAt(ns), time.Duration(ns-startNs)
		if b.obs != nil {
			now = b.clock.timeAt(ns)
		}
	} else {
		now = b.clock.Now()
		m, d = now.UnixMicro(), time.Duration(now.UnixNano()-startNs)
	}
	slow := b.cfg.SlowCall > 0 && d > b.cfg.SlowCall

	b.mu.Lock()
	if b.state != bulwark.Closed {
		if now.IsZero() {
			now = b.clock.Now()
		}
		b.refreshLocked(now)
	}
	if gen != b.gen {
		b.unlockAndFlush() // a call from before a transition
		return
	}
	// gen is current and was a closed generation: the breaker is closed.
	b.countLocked(m, success, slow)
	if b.shouldTripLocked() {
		if now.IsZero() {
			now = b.clock.Now()
		}
		b.openLocked(now, false)
	}
	state := b.state
	b.unlockAndFlush()
	if b.obs != nil {
		b.events.Emit(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: "breaker", Name: b.name, Time: now, Allowed: success, Duration: d, To: state})
	}
}

// recordClosed is record for an untimed call admitted while closed (no
// slow-call limit, no observer): the window needs the time in whole
// microseconds only, and no event is emitted. A call of generation gen was
// admitted closed, and every transition starts a new generation, so the
// breaker is still closed when gen is current.
//
// On the system clock it reads no clock while the newest bucket is
// current: a timer set to that bucket's end marks it stale, and the first
// outcome after that reads the clock once, slides the window and sets the
// timer again (see [Breaker], "Cost").
func (b *Breaker) recordClosed(gen uint64, success bool) {
	fresh := b.clock.sys && !b.stale.Load()
	var m int64
	if !fresh {
		m = b.clock.UnixMicro()
	}
	b.mu.Lock()
	if gen != b.gen {
		b.mu.Unlock() // a call from before a transition; nothing queued
		return
	}
	if fresh {
		// Every breakerClockEvery outcomes the clock is read all the
		// same, so that a timer delayed on a starved scheduler leaves
		// few outcomes in a bucket that has ended.
		if b.unread++; b.unread >= breakerClockEvery {
			fresh, m = false, b.clock.UnixMicro()
		}
	}
	if fresh {
		b.countHeadLocked(success)
	} else {
		b.unread = 0
		b.countLocked(m, success, false)
		if b.clock.sys && m >= b.headStart {
			b.armLocked(m)
		}
	}
	if b.shouldTripLocked() {
		b.openLocked(b.clock.Now(), false)
	}
	b.mu.Unlock() // no observer: no event was queued
}

// breakerClockEvery bounds the untimed outcomes counted without reading
// the clock in a row (see recordClosed).
const breakerClockEvery = 256

// armLocked clears the stale mark and sets the timer that sets it again at
// the end of the newest bucket, which holds m (Unix microseconds, read from
// the system clock). Requires b.mu held.
func (b *Breaker) armLocked(m int64) {
	if !b.stale.Load() && b.tick != nil {
		return // set already, for this bucket's end
	}
	d := time.Duration(b.headStart+b.bucketSize-m) * time.Microsecond
	b.stale.Store(false)
	if b.tick == nil {
		b.tick = time.AfterFunc(d, func() { b.stale.Store(true) })
		return
	}
	b.tick.Reset(d)
}

// countLocked counts one closed-state outcome at m (Unix microseconds).
// Requires b.mu held.
func (b *Breaker) countLocked(m int64, success, slow bool) {
	b.advanceLocked(m)
	b.countHeadLocked(success)
	if slow {
		b.buckets[b.slot(b.head)].slow++
		b.total.slow++
	}
}

// countHeadLocked counts one outcome, not slow, in the newest bucket.
// Requires b.mu held.
func (b *Breaker) countHeadLocked(success bool) {
	bk := &b.buckets[b.slot(b.head)]
	bk.calls++
	b.total.calls++
	if !success {
		bk.failures++
		b.total.failures++
		b.consecutiveFailures++
	} else {
		b.consecutiveFailures = 0
	}
}

// record counts one outcome of generation gen.
func (b *Breaker) record(gen uint64, start time.Time, trial int, success bool) {
	now := b.clock.Now()
	var d time.Duration
	if !start.IsZero() {
		d = now.Sub(start)
	}
	slow := b.cfg.SlowCall > 0 && d > b.cfg.SlowCall

	b.mu.Lock()
	b.refreshLocked(now)
	if gen != b.gen {
		b.unlockAndFlush() // a call from before a transition
		return
	}
	switch b.state {
	case bulwark.Closed:
		b.countLocked(core.Micros(now), success, slow)
		if b.shouldTripLocked() {
			b.openLocked(now, false)
		}
	case bulwark.HalfOpen:
		b.trials[trial].reported = true
		if !success || slow {
			b.openLocked(now, false)
		} else {
			b.trialsSucceeded++
			if b.trialsSucceeded >= len(b.trials) {
				b.transitionLocked(now, bulwark.Closed)
			}
		}
	}
	state := b.state
	b.unlockAndFlush()
	if b.obs != nil {
		b.events.Emit(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: "breaker", Name: b.name, Time: now, Allowed: success, Duration: d, To: state})
	}
}

// shouldTripLocked applies the closed-state trip rules. Requires b.mu held.
func (b *Breaker) shouldTripLocked() bool {
	c := &b.cfg
	if c.ConsecutiveFailures > 0 && b.consecutiveFailures >= c.ConsecutiveFailures {
		return true
	}
	t := &b.total
	if t.calls < c.MinimumCalls {
		return false
	}
	// Divide rather than multiply: failures/calls is the correctly rounded
	// ratio, so 3/30 >= 0.1 holds as it should.
	// FailureRate and SlowCallRate are above 0 (Validate): a count of 0
	// never reaches them, and most outcomes skip the division.
	if t.failures > 0 && float64(t.failures)/float64(t.calls) >= c.FailureRate {
		return true
	}
	return c.SlowCall > 0 && t.slow > 0 && float64(t.slow)/float64(t.calls) >= c.SlowCallRate
}

// refreshLocked applies the transitions that time alone causes: open to
// half-open once OpenFor has passed, and half-open back to open when a
// trial has not reported within OpenFor. Requires b.mu held.
func (b *Breaker) refreshLocked(now time.Time) {
	switch b.state {
	case bulwark.Open:
		if !b.isolated && !now.Before(b.openUntil) {
			b.transitionLocked(now, bulwark.HalfOpen)
		}
	case bulwark.HalfOpen:
		for i := range b.trials[:b.trialsStarted] {
			if t := &b.trials[i]; !t.reported && now.Sub(t.start) >= b.cfg.OpenFor {
				b.openLocked(now, false)
				return
			}
		}
	}
}

// openLocked opens the breaker for OpenFor from now, or until Reset when
// isolated. Requires b.mu held.
func (b *Breaker) openLocked(now time.Time, isolated bool) {
	b.isolated = isolated
	b.openUntil = now.Add(b.cfg.OpenFor)
	if b.state != bulwark.Open {
		b.transitionLocked(now, bulwark.Open)
	}
}

// transitionLocked moves to state to in a new generation with cleared
// counts, and queues the transition event. Requires b.mu held.
func (b *Breaker) transitionLocked(now time.Time, to bulwark.State) {
	from := b.state
	b.state = to
	b.gen++
	b.packed.Store(b.gen<<2 | uint64(to))
	if to == bulwark.Closed && !b.timeCalls {
		b.closed.Store(b.newClosedGen(b.gen))
	} else {
		b.closed.Store(nil)
	}
	b.buckets = [BreakerBuckets]breakerBucket{}
	b.total = breakerBucket{}
	b.consecutiveFailures = 0
	clear(b.trials)
	b.trialsStarted, b.trialsSucceeded = 0, 0
	if to != bulwark.Open {
		b.isolated = false
		b.openUntil = time.Time{}
	}
	if b.obs != nil && from != to {
		b.events.PushLocked(bulwark.Event{
			Kind: bulwark.EventBreakerTransition, Pattern: "breaker", Name: b.name, Time: now, From: from, To: to,
		})
	}
}

// unlockAndFlush releases b.mu and emits the queued transition events. One
// goroutine at a time drains the queue, so observers see transitions in the
// order they happened; an observer that calls back into the breaker only
// adds to the queue the outer drain is emptying.
func (b *Breaker) unlockAndFlush() { b.events.UnlockAndEmit(&b.mu) }

// ObserverPanics returns how many times the breaker's observer panicked.
// Each panic is recovered: the breaker goes on and later events are still
// delivered.
func (b *Breaker) ObserverPanics() uint64 { return b.events.Guard().Panics() }

// advanceLocked slides the window so that its newest bucket holds m (Unix
// microseconds), dropping the buckets that left it. A clock that went
// backwards keeps counting in the newest bucket. Requires b.mu held.
func (b *Breaker) advanceLocked(m int64) {
	if m >= b.headStart && m-b.headStart < b.bucketSize {
		return // still in the newest bucket: no division
	}
	idx := breakerFloorDiv(m, b.bucketSize)
	if idx <= b.head {
		return
	}
	if idx-b.head >= BreakerBuckets {
		b.buckets = [BreakerBuckets]breakerBucket{}
		b.total = breakerBucket{}
	} else {
		for i := b.head + 1; i <= idx; i++ {
			bk := &b.buckets[b.slot(i)]
			b.total.calls -= bk.calls
			b.total.failures -= bk.failures
			b.total.slow -= bk.slow
			*bk = breakerBucket{}
		}
	}
	b.head = idx
	b.headStart = idx * b.bucketSize
}

func (b *Breaker) slot(i int64) int {
	s := i % BreakerBuckets
	if s < 0 {
		s += BreakerBuckets
	}
	return int(s)
}

func breakerFloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// State returns the breaker's state now, after applying the transitions
// that time alone causes (see [Breaker]). ctx is not used: the state is in
// memory.
func (b *Breaker) State(ctx context.Context) bulwark.State {
	if bulwark.State(b.packed.Load()&3) == bulwark.Closed {
		return bulwark.Closed
	}
	now := b.clock.Now()
	b.mu.Lock()
	b.refreshLocked(now)
	s := b.state
	b.unlockAndFlush()
	return s
}

// Reset closes the breaker with an empty window, whatever its state, and
// starts a new generation: outcomes of calls admitted before Reset are
// ignored. It also ends an isolation (see [Breaker.Isolate]).
func (b *Breaker) Reset() {
	now := b.clock.Now()
	b.mu.Lock()
	b.transitionLocked(now, bulwark.Closed)
	b.unlockAndFlush()
}

// ForceOpen opens the breaker now for OpenFor, as if it had tripped; then it
// goes half-open as usual. On an open breaker it restarts the OpenFor
// period (and ends an isolation).
func (b *Breaker) ForceOpen() {
	now := b.clock.Now()
	b.mu.Lock()
	b.openLocked(now, false)
	b.unlockAndFlush()
}

// Isolate opens the breaker until [Breaker.Reset]: it does not go half-open
// by itself. Use it to take a dependency out of service by hand.
func (b *Breaker) Isolate() {
	now := b.clock.Now()
	b.mu.Lock()
	b.openLocked(now, true)
	b.unlockAndFlush()
}

// BreakerMetrics is a snapshot of a [Breaker], from [Breaker.Metrics].
type BreakerMetrics struct {
	State bulwark.State
	// Generation counts transitions (and resets) since creation.
	Generation uint64
	// Calls, Failures and SlowCalls are the outcomes in the sliding window
	// (closed state only; counts restart at every transition).
	Calls, Failures, SlowCalls int
	// ConsecutiveFailures is the current run of failures (closed state).
	ConsecutiveFailures int
	// OpenUntil is when an open breaker goes half-open; zero unless open,
	// and zero while isolated.
	OpenUntil time.Time
	// Isolated is true while the breaker is held open by Isolate.
	Isolated bool
	// TrialsStarted and TrialsSucceeded count trial calls (half-open only).
	TrialsStarted, TrialsSucceeded int
}

// Metrics returns a snapshot of the breaker now, after sliding the window
// and applying the transitions that time alone causes.
func (b *Breaker) Metrics() BreakerMetrics {
	now := b.clock.Now()
	b.mu.Lock()
	b.refreshLocked(now)
	if b.state == bulwark.Closed {
		b.advanceLocked(core.Micros(now))
	}
	m := BreakerMetrics{
		State:               b.state,
		Generation:          b.gen,
		Calls:               b.total.calls,
		Failures:            b.total.failures,
		SlowCalls:           b.total.slow,
		ConsecutiveFailures: b.consecutiveFailures,
		Isolated:            b.isolated,
		TrialsStarted:       b.trialsStarted,
		TrialsSucceeded:     b.trialsSucceeded,
	}
	if b.state == bulwark.Open && !b.isolated {
		m.OpenUntil = b.openUntil
	}
	b.unlockAndFlush()
	return m
}
