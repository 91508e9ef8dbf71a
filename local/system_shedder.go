package local

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// SystemRule sheds work while one [Signal] is too high: shedding turns on
// when the signal reaches High and off only once it has fallen below Low
// (hysteresis, so a signal hovering at the threshold does not flap).
// Both are scaled by the shedder's headroom of each priority.
type SystemRule struct {
	Signal Signal
	High   float64 // on at or above this, positive
	Low    float64 // off below this; in [0, High)
}

// DefaultHeadroom scales a rule's thresholds by priority: low-priority work
// is shed at High, normal at 1.1×High, high at 1.25×High, and critical
// work is never shed by system signals.
var DefaultHeadroom = [NumPriorities]float64{1, 1.1, 1.25, math.Inf(1)}

// DefaultSystemInterval is how often a SystemShedder samples its signals
// unless its config says otherwise.
const DefaultSystemInterval = 250 * time.Millisecond

// SystemShedderConfig is the shape of a [SystemShedder].
//
// Worked example: {Rules: [{cpu, High: 0.8, Low: 0.6}]} with the default
// headroom sheds low-priority work once the container's CPU use reaches
// 80%, until it falls below 60%; normal work from 88% until below 66%;
// high work from 100% until below 75%; critical work never.
type SystemShedderConfig struct {
	// Rules are the signals watched, at least one.
	Rules []SystemRule
	// Interval is how often the signals are read (default
	// DefaultSystemInterval, at least 1ms). Reading happens on the
	// goroutine of the first call after the interval has passed, so no
	// goroutine runs in the background; that call pays for the read (a few
	// file reads for the CPU signal).
	Interval time.Duration
	// Headroom multiplies both thresholds of every rule for each priority:
	// each at least 1, not decreasing with priority; +Inf exempts a
	// priority. All zero means DefaultHeadroom.
	Headroom [NumPriorities]float64
	// InFlight, when set, also caps the calls in flight: a call admitted
	// by the system rules still passes through this shedder, by the same
	// priority.
	InFlight *Shedder
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c SystemShedderConfig) Validate() error {
	if len(c.Rules) == 0 {
		return core.ConfigError("system shedder needs at least one rule")
	}
	for i, r := range c.Rules {
		if core.IsNil(r.Signal) {
			return core.ConfigError("system shedder rule %d has no signal", i)
		}
		if !(r.High > 0) || math.IsInf(r.High, 0) {
			return core.ConfigError("system shedder rule %d (%s): high must be positive and finite, got %v", i, r.Signal.Name(), r.High)
		}
		if !(r.Low >= 0 && r.Low < r.High) {
			return core.ConfigError("system shedder rule %d (%s): low must be in [0, high %v), got %v", i, r.Signal.Name(), r.High, r.Low)
		}
	}
	if c.Interval != 0 && c.Interval < time.Millisecond {
		return core.ConfigError("system shedder interval must be at least 1ms, got %v", c.Interval)
	}
	if c.Headroom == ([NumPriorities]float64{}) {
		return nil
	}
	for i, h := range c.Headroom {
		if !(h >= 1) {
			return core.ConfigError("system shedder headroom of %v must be at least 1, got %v", Priority(i), h)
		}
		if i > 0 && h < c.Headroom[i-1] {
			return core.ConfigError("system shedder headroom must not decrease with priority: %v has %v, below %v",
				Priority(i), h, c.Headroom[i-1])
		}
	}
	return nil
}

// ErrSystemOverload is returned by a [SystemShedder] that shed work because
// a system signal is over its threshold. It matches ErrShed, and so also
// bulwark.ErrBulkheadFull.
var ErrSystemOverload error = overloadError{}

type overloadError struct{}

func (overloadError) Error() string { return "bulwark: load shed (system overloaded)" }
func (overloadError) Unwrap() error { return ErrShed }

// SystemShedder sheds work by the process's own health: each rule watches
// one [Signal] (CPU use of the container, memory against its limit, Go
// scheduler latency: [NewCPUSignal], [NewMemorySignal],
// [NewSchedLatencySignal], or any other) and, while the signal is over its
// threshold for a priority, calls of that priority are shed with
// [ErrSystemOverload]. Higher priorities have more headroom, so they pass
// longer; critical work is never shed by signals (by default). With
// InFlight set, admitted calls also go through that [Shedder].
//
// Signals are read at most once per interval, by the call that finds the
// last reading too old (others do not wait). A signal whose Read fails or
// panics keeps its last state; the failures are counted ([SystemShedder.SignalErrors]).
// Each change of a rule's state emits an EventLimitChanged whose Limit is
// how many priorities the shedder now admits (NumPriorities: all), and each
// shed call an EventRejected; a panicking observer is recovered and counted.
//
// Safe for concurrent use. Admit allocates nothing.
type SystemShedder struct {
	rules    []SystemRule
	interval time.Duration
	headroom [NumPriorities]float64
	inflight *Shedder
	clock    bulwark.Clock
	obs      bulwark.Observer
	name     string

	next    atomic.Int64  // unix nanos of the next reading
	shedMin atomic.Uint32 // priorities below this are shed (0: none)
	readMu  sync.Mutex    // one reader at a time
	on      [][NumPriorities]bool
	values  []float64

	signalErrors   atomic.Uint64
	observerPanics atomic.Uint64
}

var (
	_ bulwark.Policy   = (*SystemShedder)(nil)
	_ bulwark.Bulkhead = (*SystemShedder)(nil)
)

// NewSystemShedder returns a shedder watching cfg's rules; options
// WithClock, WithObserver and WithName apply. It reads no signal yet: the
// first call does.
func NewSystemShedder(cfg SystemShedderConfig, opts ...Option) (*SystemShedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	s := &SystemShedder{rules: append([]SystemRule(nil), cfg.Rules...), interval: cfg.Interval,
		headroom: cfg.Headroom, inflight: cfg.InFlight, clock: o.clock, obs: o.observer, name: o.name}
	if s.interval == 0 {
		s.interval = DefaultSystemInterval
	}
	if s.headroom == ([NumPriorities]float64{}) {
		s.headroom = DefaultHeadroom
	}
	s.on = make([][NumPriorities]bool, len(s.rules))
	s.values = make([]float64, len(s.rules))
	s.next.Store(math.MinInt64)
	return s, nil
}

// Admit admits one call of priority p, or sheds it with ErrSystemOverload
// (a signal is over its threshold for p) or, with InFlight set, whatever
// that shedder says. An admitted call must be ended with exactly one call
// of release.
func (s *SystemShedder) Admit(p Priority) (release func(), err error) {
	p = min(p, PriorityCritical)
	now := s.clock.Now()
	if now.UnixNano() >= s.next.Load() {
		s.sample(now)
	}
	if uint32(p) < s.shedMin.Load() {
		s.emit(bulwark.Event{Kind: bulwark.EventRejected, Time: now, Limit: int(s.shedMin.Load()), Err: ErrSystemOverload})
		return nil, ErrSystemOverload
	}
	if s.inflight != nil {
		return s.inflight.Admit(p)
	}
	return noRelease, nil
}

func noRelease() {}

// Shedding reports whether calls of priority p are shed now (by the last
// reading; it reads nothing).
func (s *SystemShedder) Shedding(p Priority) bool {
	return uint32(min(p, PriorityCritical)) < s.shedMin.Load()
}

// Refresh reads every signal now, whatever the interval.
func (s *SystemShedder) Refresh() {
	s.readMu.Lock()
	s.readLocked(s.clock.Now())
}

// Values returns the last reading of each rule's signal, in rule order.
func (s *SystemShedder) Values() []float64 {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	return append([]float64(nil), s.values...)
}

// SignalErrors returns how many signal reads failed or panicked.
func (s *SystemShedder) SignalErrors() uint64 { return s.signalErrors.Load() }

// ObserverPanics returns how many times the observer panicked (each was
// recovered).
func (s *SystemShedder) ObserverPanics() uint64 { return s.observerPanics.Load() }

// sample reads the signals unless another goroutine is at it.
func (s *SystemShedder) sample(now time.Time) {
	if !s.readMu.TryLock() {
		return
	}
	if now.UnixNano() < s.next.Load() {
		s.readMu.Unlock()
		return
	}
	s.readLocked(now)
}

// readLocked reads every signal, updates the states and unlocks readMu,
// then emits the changes. Requires s.readMu held.
func (s *SystemShedder) readLocked(now time.Time) {
	s.next.Store(now.Add(s.interval).UnixNano())
	changed := false
	for i, r := range s.rules {
		v, err := s.read(r.Signal)
		if err != nil {
			s.signalErrors.Add(1)
			continue
		}
		s.values[i] = v
		for p := range NumPriorities {
			h := s.headroom[p]
			if math.IsInf(h, 1) {
				continue
			}
			was := s.on[i][p]
			switch {
			case !was && v >= r.High*h:
				s.on[i][p] = true
			case was && v < r.Low*h:
				s.on[i][p] = false
			}
			changed = changed || s.on[i][p] != was
		}
	}
	// Priorities below the first one that no rule sheds are shed.
	var shedMin uint32
	for p := range NumPriorities {
		if !s.anyOn(p) {
			break
		}
		shedMin = uint32(p) + 1
	}
	old := s.shedMin.Swap(shedMin)
	s.readMu.Unlock()
	if changed || old != shedMin {
		s.emit(bulwark.Event{Kind: bulwark.EventLimitChanged, Time: now, Limit: NumPriorities - int(shedMin)})
	}
}

// anyOn reports whether a rule sheds priority p. Requires s.readMu held.
func (s *SystemShedder) anyOn(p int) bool {
	for i := range s.on {
		if s.on[i][p] {
			return true
		}
	}
	return false
}

// read calls sig.Read, turning a panic or a NaN into an error.
func (s *SystemShedder) read(sig Signal) (v float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bulwark: signal %s panicked: %v", sig.Name(), r)
		}
	}()
	v, err = sig.Read()
	if err == nil && math.IsNaN(v) {
		err = fmt.Errorf("bulwark: signal %s read NaN", sig.Name())
	}
	return v, err
}

func (s *SystemShedder) emit(e bulwark.Event) {
	if s.obs == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.observerPanics.Add(1)
		}
	}()
	e.Pattern, e.Name = "system_shedder", s.name
	s.obs.Observe(e)
}

// Acquire admits one call with the priority carried by ctx, at once or not
// at all; it implements bulwark.Bulkhead. A done ctx is refused with its
// error.
func (s *SystemShedder) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Admit(PriorityFrom(ctx))
}

// AcquirePriority is Acquire with an explicit priority on the scale of
// [Priority] (clamped), the signature HTTP middleware takes for a shedder
// (see [Shedder.AcquirePriority]).
func (s *SystemShedder) AcquirePriority(ctx context.Context, priority int) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Admit(Priority(min(max(priority, int(PriorityLow)), int(PriorityCritical))))
}

// Run admits next with the priority carried by ctx, or sheds it.
func (s *SystemShedder) Run(ctx context.Context, next bulwark.Next) error {
	release, err := s.Admit(PriorityFrom(ctx))
	if err != nil {
		return err
	}
	defer release()
	return next.Run(ctx)
}
