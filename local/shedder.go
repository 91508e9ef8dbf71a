package local

import (
	"context"
	"fmt"
	"sync"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// ErrShed is returned by a [Shedder] that turned work away to keep room for
// more important work. It also matches bulwark.ErrBulkheadFull, so callers
// that map bulkhead rejections (to HTTP 503, say) need nothing new.
var ErrShed error = &rejection{msg: "bulwark: load shed", also: bulwark.ErrBulkheadFull}

// Priority ranks work for a [Shedder]: the higher, the later it is shed.
type Priority uint8

// The priorities, lowest first. Work with no priority in its ctx is
// PriorityNormal; values above PriorityCritical count as critical.
const (
	PriorityLow Priority = iota
	PriorityNormal
	PriorityHigh
	PriorityCritical
)

// NumPriorities is the number of priority levels.
const NumPriorities = 4

// String returns "low", "normal", "high" or "critical".
func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityCritical:
		return "critical"
	}
	return fmt.Sprintf("Priority(%d)", uint8(p))
}

type priorityKey struct{}

// WithPriority returns a ctx that carries p for a [Shedder].
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority carried by ctx, PriorityNormal when
// there is none.
func PriorityFrom(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return PriorityNormal
}

// DefaultShares lets low-priority work fill half the in-flight capacity,
// normal 70%, high 90% and critical all of it.
var DefaultShares = [NumPriorities]float64{0.5, 0.7, 0.9, 1}

// ShedderConfig is the shape of a [Shedder].
//
// Worked example: {MaxInFlight: 100} with the default shares admits low
// work while fewer than 50 calls are in flight, normal below 70, high below
// 90 and critical below 100: under rising load low work is shed first and
// the last 10 slots are kept for critical work.
type ShedderConfig struct {
	// MaxInFlight is the capacity, at least 1.
	MaxInFlight int
	// Shares is the fraction of MaxInFlight each priority may fill, indexed
	// by Priority; each in (0,1], not decreasing with priority, and 1 for
	// PriorityCritical. All zero means DefaultShares.
	Shares [NumPriorities]float64
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c ShedderConfig) Validate() error {
	if c.MaxInFlight < 1 {
		return core.ConfigError("shedder max in flight must be at least 1, got %d", c.MaxInFlight)
	}
	if c.Shares == ([NumPriorities]float64{}) {
		return nil
	}
	for i, s := range c.Shares {
		if !(s > 0 && s <= 1) {
			return core.ConfigError("shedder share of %v must be in (0,1], got %v", Priority(i), s)
		}
		if i > 0 && s < c.Shares[i-1] {
			return core.ConfigError("shedder shares must not decrease with priority: %v has %v, below %v",
				Priority(i), s, c.Shares[i-1])
		}
	}
	if c.Shares[PriorityCritical] != 1 {
		return core.ConfigError("shedder share of critical work must be 1, got %v", c.Shares[PriorityCritical])
	}
	return nil
}

// Shedder caps the calls in flight and, as it fills, turns away work by
// priority: lowest first, critical last (see [ShedderConfig]). It never
// queues: a call is admitted or shed at once, with [ErrShed] and an
// EventRejected whose Limit is the threshold that refused it.
//
// The priority of a call comes from its ctx ([WithPriority]). Shedder is a
// bulwark.Policy and a bulwark.Bulkhead, so it can also guard code by hand.
// Safe for concurrent use; Run and Acquire allocate nothing.
type Shedder struct {
	mu        sync.Mutex
	inflight  int
	threshold [NumPriorities]int
	release   func()
	clock     bulwark.Clock
	obs       bulwark.Observer
	name      string
}

var (
	_ bulwark.Policy   = (*Shedder)(nil)
	_ bulwark.Bulkhead = (*Shedder)(nil)
)

// NewShedder returns a load shedder; options WithObserver, WithName and
// WithClock (for event times) apply.
func NewShedder(cfg ShedderConfig, opts ...Option) (*Shedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	shares := cfg.Shares
	if shares == ([NumPriorities]float64{}) {
		shares = DefaultShares
	}
	s := &Shedder{clock: o.clock, obs: o.observer, name: o.name}
	for i, f := range shares {
		s.threshold[i] = max(1, int(f*float64(cfg.MaxInFlight)))
	}
	s.threshold[PriorityCritical] = cfg.MaxInFlight
	s.release = s.done
	return s, nil
}

// InFlight returns how many calls are admitted and not yet released.
func (s *Shedder) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// Threshold returns how many calls may be in flight for work of priority
// p to be admitted.
func (s *Shedder) Threshold(p Priority) int { return s.threshold[min(p, PriorityCritical)] }

// Admit admits one call of priority p or reports ErrShed; an admitted call
// must be ended with exactly one call of the returned release.
func (s *Shedder) Admit(p Priority) (release func(), err error) {
	limit := s.threshold[min(p, PriorityCritical)]
	s.mu.Lock()
	if s.inflight >= limit {
		s.mu.Unlock()
		core.Emit(s.obs, bulwark.Event{Kind: bulwark.EventRejected, Pattern: "shedder", Name: s.name,
			Time: s.clock.Now(), Limit: limit, Err: ErrShed})
		return nil, ErrShed
	}
	s.inflight++
	s.mu.Unlock()
	return s.release, nil
}

func (s *Shedder) done() {
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
}

// Acquire admits one call with the priority carried by ctx, at once or not
// at all (it never waits); it implements bulwark.Bulkhead. A done ctx is
// refused with its error.
func (s *Shedder) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Admit(PriorityFrom(ctx))
}

// Run admits next with the priority carried by ctx, or sheds it.
func (s *Shedder) Run(ctx context.Context, next bulwark.Next) error {
	release, err := s.Admit(PriorityFrom(ctx))
	if err != nil {
		return err
	}
	defer release()
	return next.Run(ctx)
}
