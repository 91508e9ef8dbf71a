package distributed

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

// Health defaults of a [Store]. See [WithFailureThreshold] and the options
// after it.
const (
	// DefaultFailureThreshold is how many Redis calls in a row must fail
	// before the store turns degraded.
	DefaultFailureThreshold = 3
	// DefaultRecoveryThreshold is how many probes in a row must succeed
	// before a degraded store goes back to Redis.
	DefaultRecoveryThreshold = 2
	// DefaultProbeInterval is the time between two probes of a degraded
	// store.
	DefaultProbeInterval = 250 * time.Millisecond
	// DefaultMinDegraded is the shortest time a store stays degraded.
	DefaultMinDegraded = time.Second
	// DefaultMaxDegraded caps the minimum degraded time, which doubles
	// each time a store degrades again soon after recovering.
	DefaultMaxDegraded = 8 * time.Second
	// DefaultMaxInFlight bounds the detached Redis calls of a store whose
	// client ignores context deadlines (see [Store]).
	DefaultMaxInFlight = 256
)

// ErrUnavailable matches, with errors.Is, every error of a store's Redis
// call that says Redis cannot serve the store right now: a timeout, a
// broken or refused connection, an exhausted pool, BUSY, OOM, LOADING,
// cluster failover states, or the store being degraded. Limiters never
// return it: they decide locally instead (Decision.Degraded). It appears in
// the Err of EventStoreCall and EventStoreHealth events and from
// [Store.HealthError], always as a [*CallError].
var ErrUnavailable = errors.New("bulwark: redis unavailable")

// Reason classifies why a Redis call of a store failed.
type Reason uint8

// The reasons. All but ReasonReply and ReasonDecode make a [*CallError]
// match [ErrUnavailable] and count towards turning the store degraded.
const (
	// ReasonTimeout: no reply within the store's budget (WithTimeout), the
	// client's read or write timeout, or the caller's own deadline after the
	// call had waited at least a quarter of the budget.
	ReasonTimeout Reason = iota + 1
	// ReasonConnection: the connection was refused, reset or closed, or the
	// client itself is closed.
	ReasonConnection
	// ReasonPool: no pooled connection became free in time (PoolTimeout).
	ReasonPool
	// ReasonBusy: Redis is running a script past its time limit (BUSY).
	ReasonBusy
	// ReasonOutOfMemory: Redis is at maxmemory and refuses writes (OOM).
	ReasonOutOfMemory
	// ReasonLoading: Redis is loading its dataset (LOADING).
	ReasonLoading
	// ReasonCluster: the cluster is failing over or resharding
	// (CLUSTERDOWN, TRYAGAIN, MASTERDOWN, or MOVED/ASK beyond the client's
	// redirect limit).
	ReasonCluster
	// ReasonReadOnly: the node refuses writes (READONLY replica, MISCONF,
	// NOREPLICAS).
	ReasonReadOnly
	// ReasonOverload: the store already had its maximum of detached calls
	// in flight (see WithMaxInFlight); the call was not sent.
	ReasonOverload
	// ReasonDegraded: the store is degraded, so the call was not sent.
	// The CallError wraps the failure that turned it degraded, or the
	// latest failed probe.
	ReasonDegraded
	// ReasonReply: Redis answered with an error that says nothing about its
	// availability (WRONGTYPE, NOPERM, a script error). The call is decided
	// locally but the store's health is unchanged.
	ReasonReply
	// ReasonDecode: Redis answered with a reply of an unexpected shape. As
	// with ReasonReply, health is unchanged.
	ReasonDecode
)

var reasonNames = [...]string{
	ReasonTimeout:     "timeout",
	ReasonConnection:  "connection",
	ReasonPool:        "pool",
	ReasonBusy:        "busy",
	ReasonOutOfMemory: "out_of_memory",
	ReasonLoading:     "loading",
	ReasonCluster:     "cluster",
	ReasonReadOnly:    "read_only",
	ReasonOverload:    "overload",
	ReasonDegraded:    "degraded",
	ReasonReply:       "reply",
	ReasonDecode:      "decode",
}

// String returns the reason's snake_case name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// unavailable reports whether the reason says Redis cannot serve calls.
func (r Reason) unavailable() bool { return r != ReasonReply && r != ReasonDecode && r != 0 }

// CallError is the typed failure of one Redis call of a store: why it
// failed (Reason) and the error go-redis returned (Err). It matches
// [ErrUnavailable] when Reason says Redis cannot serve calls.
type CallError struct {
	Reason Reason
	Err    error
}

func (e *CallError) Error() string {
	if e.Err == nil {
		return "bulwark: redis call failed: " + e.Reason.String()
	}
	return "bulwark: redis call failed: " + e.Reason.String() + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *CallError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrUnavailable] and the reason says Redis
// cannot serve calls.
func (e *CallError) Is(target error) bool { return target == ErrUnavailable && e.Reason.unavailable() }

// classify turns an error of a Redis call into a *CallError.
func classify(err error) *CallError {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce
	}
	return &CallError{Reason: reasonOf(err), Err: err}
}

func reasonOf(err error) Reason {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return ReasonPool
	case errors.Is(err, redis.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonConnection
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return ReasonConnection // dial and socket errors, a client in a bad state
	}
	msg := re.Error()
	word := msg
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		word = msg[:i]
	}
	switch word {
	case "BUSY":
		return ReasonBusy
	case "OOM":
		return ReasonOutOfMemory
	case "LOADING":
		return ReasonLoading
	case "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "MOVED", "ASK":
		return ReasonCluster
	case "READONLY", "MISCONF", "NOREPLICAS":
		return ReasonReadOnly
	}
	// A script error wraps the error of the command that failed inside it:
	// "ERR Error running script ... OOM command not allowed ...".
	switch {
	case strings.Contains(msg, "OOM command not allowed"):
		return ReasonOutOfMemory
	case strings.Contains(msg, "READONLY You can't write"):
		return ReasonReadOnly
	}
	return ReasonReply
}

// health is the state machine that decides whether a store sends its calls
// to Redis. States: healthy (calls go to Redis) and degraded (calls are not
// sent; a prober runs).
//
//   - healthy → degraded after failureThreshold failed calls in a row
//     (failures that say Redis is unavailable; any success resets the run).
//   - degraded → healthy after recoveryThreshold successful probes in a
//     row, once the store has been degraded for at least its dwell time.
//   - The dwell time is minDwell, doubled (up to maxDwell) each time the
//     store degrades again less than two dwell times after recovering.
//
// So a store switches at most twice per dwell time, however its link
// flaps, and under steady flapping the switches slow down exponentially.
//
// The hot path (a healthy store answering) touches two atomics and no
// lock; switches take mu. Methods that switch report it, so the caller
// emits events after every lock is released.
type health struct {
	failureThreshold  int32
	recoveryThreshold int
	interval          time.Duration
	minDwell          time.Duration
	maxDwell          time.Duration

	down     atomic.Bool
	failures atomic.Int32              // consecutive failed calls while healthy
	degraded atomic.Pointer[CallError] // returned by run while down
	epoch    atomic.Uint64             // recoveries so far: twins start anew after each
	switches atomic.Uint64

	mu          sync.Mutex
	since       time.Time     // when the current state began
	dwell       time.Duration // minimum time of the current (or last) outage
	recoveredAt time.Time     // end of the last outage
	probeOK     int           // consecutive successful probes
	probing     bool          // a prober goroutine runs
	closed      bool
	stop        chan struct{} // closed by Close
	wg          sync.WaitGroup
}

func (h *health) init(c *config) {
	h.failureThreshold = int32(c.failureThreshold)
	h.recoveryThreshold = c.recoveryThreshold
	h.interval = c.probeInterval
	h.minDwell = c.minDegraded
	h.maxDwell = c.maxDegraded
	h.dwell = c.minDegraded
	h.stop = make(chan struct{})
}

// success records a call Redis answered.
func (h *health) success() {
	if h.failures.Load() != 0 {
		h.failures.Store(0)
	}
}

// failure records a failed call at now and reports whether the store just
// turned degraded; then startProber reports whether the caller must start
// the prober goroutine.
func (h *health) failure(now time.Time, ce *CallError) (switched, startProber bool) {
	if !ce.Reason.unavailable() {
		return false, false
	}
	if h.failures.Add(1) < h.failureThreshold || h.down.Load() {
		return false, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down.Load() {
		return false, false
	}
	if !h.recoveredAt.IsZero() && now.Sub(h.recoveredAt) < 2*h.dwell {
		h.dwell = min(2*h.dwell, h.maxDwell)
	} else {
		h.dwell = h.minDwell
	}
	h.since = now
	h.probeOK = 0
	h.degraded.Store(&CallError{Reason: ReasonDegraded, Err: ce})
	h.switches.Add(1)
	h.down.Store(true)
	if !h.probing && !h.closed {
		h.probing = true
		h.wg.Add(1)
		startProber = true
	}
	return true, startProber
}

// probed records the outcome of a probe at now (err nil: Redis answered)
// and reports whether the store just went back to healthy; then the prober
// must end.
func (h *health) probed(now time.Time, err error) (recovered, stop bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.probing = false
		return false, true
	}
	if err != nil {
		h.probeOK = 0
		h.degraded.Store(&CallError{Reason: ReasonDegraded, Err: classify(err)})
		return false, false
	}
	h.probeOK++
	if h.probeOK < h.recoveryThreshold || now.Sub(h.since) < h.dwell {
		return false, false
	}
	h.since = now
	h.recoveredAt = now
	h.failures.Store(0)
	h.epoch.Add(1)
	h.switches.Add(1)
	h.down.Store(false)
	h.probing = false
	return true, true
}

// close stops the prober and waits for it.
func (h *health) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Healthy reports whether the store sends its calls to Redis: true until
// a run of failed calls turns it degraded (see [WithFailureThreshold]),
// and again once probes found Redis answering (see
// [WithRecoveryThreshold]). A degraded store's limiters decide by their
// [FailurePolicy] without any I/O.
func (s *Store) Healthy() bool { return !s.health.down.Load() }

// HealthError returns nil while the store is healthy; while it is degraded,
// a [*CallError] with ReasonDegraded wrapping the failure that turned it
// degraded or, once probes ran, the latest failed probe's (itself a
// *CallError with the reason, such as ReasonBusy or ReasonTimeout).
func (s *Store) HealthError() error {
	if !s.health.down.Load() {
		return nil
	}
	if e := s.health.degraded.Load(); e != nil {
		return e
	}
	return nil
}

// Switches returns how many times the store changed between healthy and
// degraded since New: odd while degraded.
func (s *Store) Switches() uint64 { return s.health.switches.Load() }

// record books the outcome of one Redis call that ran (err nil or not)
// and emits the health event when the store switched.
func (s *Store) record(err error) error {
	if err == nil {
		s.health.success()
		return nil
	}
	ce := classify(err)
	switched, start := s.health.failure(s.healthNow(), ce)
	if start {
		go s.probeLoop()
	}
	if switched {
		s.emitHealth(true, ce)
	}
	return ce
}

// healthNow is the time the health state machine runs on.
func (s *Store) healthNow() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}

func (s *Store) emitHealth(degraded bool, cause error) {
	if s.observer == nil {
		return
	}
	core.Emit(s.observer, bulwark.Event{
		Kind:     bulwark.EventStoreHealth,
		Pattern:  "store",
		Time:     s.eventTime(),
		Degraded: degraded,
		Err:      cause,
	})
}

// probeLoop runs while the store is degraded: every probe interval it sends
// one probe (the fixed-window script on the store's health key, so a probe
// exercises what the limiters need: scripting and a write with a TTL) and
// books its outcome, until the store is healthy again or closed. The timer
// comes from the store's clock when it is a bulwark.TimerClock.
func (s *Store) probeLoop() {
	h := &s.health
	defer h.wg.Done()
	for {
		t := core.NewTimer(s.clock, h.interval)
		select {
		case <-h.stop:
			t.Stop()
			h.probed(time.Time{}, nil) // closed: clears probing
			return
		case <-t.C():
		}
		err := s.probe()
		if err != nil {
			if cc, ok := s.client.(interface{ ReloadState(context.Context) }); ok {
				// A failed-over master is found only after the client
				// reloads the slot map; non-retryable script commands do not
				// trigger that reload themselves.
				cc.ReloadState(context.Background())
			}
		}
		recovered, stop := h.probed(s.healthNow(), err)
		if recovered {
			s.emitHealth(false, nil)
		}
		if stop {
			return
		}
	}
}

// probeLimitArgs are ARGV[3..5] of the probe: n=1 of a limit that is never
// reached (10⁹ per second), so the probe key lives at most a second.
var probeLimitArgs = []any{1, "1000000000", "1000000"}

// probe sends one probe call, bounded by the store's timeout (or the probe
// interval when the store has none), and returns its error.
func (s *Store) probe() error {
	budget := s.timeout
	if budget <= 0 {
		budget = s.health.interval
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var start time.Time
	if s.observer != nil {
		start = time.Now()
	}
	c := newCall(lua.FixedWindow)
	c.singleKey(s.probeKey)
	c.argv = append(c.argv, s.nowArg(), s.minTTLms)
	c.argv = append(c.argv, probeLimitArgs...)
	_, err := s.call(ctx, c)
	if err != nil {
		err = classify(err)
	}
	s.emitCall(start, err)
	return err
}
