package bulwark

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Breaker is a circuit breaker: it stops calls to a dependency that keeps
// failing, lets a few trial calls through after a while, and closes again
// when they succeed.
//
// Use it in two steps, so that the outcome is reported whatever the call
// does:
//
//	done, err := br.Allow(ctx)
//	if err != nil {
//		return err // errors.Is(err, bulwark.ErrOpen)
//	}
//	resp, err := call(ctx)
//	done(err == nil)
type Breaker interface {
	// Allow asks to make one call: ErrOpen when it may not; otherwise the
	// caller reports the call's outcome exactly once through done.
	Allow(ctx context.Context) (done func(success bool), err error)
	State(ctx context.Context) State // Closed, Open, HalfOpen
}

// State is a circuit breaker's state.
type State int8

// The breaker states. The zero value is Closed.
const (
	Closed   State = iota // calls flow; outcomes are counted
	Open                  // calls are rejected with ErrOpen until OpenFor has passed
	HalfOpen              // a limited number of trial calls decide between Closed and Open
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// ParseState is the inverse of [State.String].
func ParseState(s string) (State, error) {
	switch s {
	case "closed":
		return Closed, nil
	case "open":
		return Open, nil
	case "half-open":
		return HalfOpen, nil
	}
	return Closed, argumentError("unknown breaker state %q", s)
}

// BreakerConfig is the shape of a circuit breaker.
//
// In the closed state outcomes are counted over a sliding time Window. The
// breaker trips (goes open) when, with at least MinimumCalls in the window,
// failures/calls >= FailureRate or slow/calls >= SlowCallRate; or, whatever
// the window holds, after ConsecutiveFailures failures in a row. It stays
// open for OpenFor, then goes half-open and lets HalfOpenCalls trial calls
// through: if all succeed it closes (with an empty window), a failure
// re-opens it.
//
// The zero value is invalid; [DefaultBreakerConfig] is a sensible start.
type BreakerConfig struct {
	Window              time.Duration // outcomes are counted over this sliding time window
	MinimumCalls        int           // no trip before this many calls in the window
	FailureRate         float64       // trip when failures/calls >= this (0,1]
	ConsecutiveFailures int           // also trip after this many failures in a row (0: off)
	SlowCall            time.Duration // a call slower than this counts as slow (0: off)
	SlowCallRate        float64       // trip when slow/calls >= this
	OpenFor             time.Duration // open this long, then half-open
	HalfOpenCalls       int           // trial calls in half-open (fleet-wide when distributed)
}

// DefaultBreakerConfig trips at 50% failures over 10s once 20 calls were
// seen, or after 5 consecutive failures; stays open 30s; tries 3 calls.
func DefaultBreakerConfig() BreakerConfig {
	return BreakerConfig{
		Window:              10 * time.Second,
		MinimumCalls:        20,
		FailureRate:         0.5,
		ConsecutiveFailures: 5,
		OpenFor:             30 * time.Second,
		HalfOpenCalls:       3,
	}
}

// Validate returns an error wrapping [ErrInvalidConfig] when a field is out
// of range: Window and OpenFor must be at least 1ms, MinimumCalls and
// HalfOpenCalls at least 1, FailureRate in (0,1], ConsecutiveFailures and
// SlowCall not negative, and SlowCallRate in (0,1] when SlowCall is set.
func (c BreakerConfig) Validate() error {
	switch {
	case c.Window < time.Millisecond:
		return configError("breaker window must be at least 1ms, got %v", c.Window)
	case c.MinimumCalls < 1:
		return configError("breaker minimum calls must be at least 1, got %d", c.MinimumCalls)
	case math.IsNaN(c.FailureRate) || c.FailureRate <= 0 || c.FailureRate > 1:
		return configError("breaker failure rate must be in (0,1], got %v", c.FailureRate)
	case c.ConsecutiveFailures < 0:
		return configError("breaker consecutive failures must not be negative, got %d", c.ConsecutiveFailures)
	case c.SlowCall < 0:
		return configError("breaker slow call threshold must not be negative, got %v", c.SlowCall)
	case c.SlowCall > 0 && (math.IsNaN(c.SlowCallRate) || c.SlowCallRate <= 0 || c.SlowCallRate > 1):
		return configError("breaker slow call rate must be in (0,1] when SlowCall is set, got %v", c.SlowCallRate)
	case c.OpenFor < time.Millisecond:
		return configError("breaker open duration must be at least 1ms, got %v", c.OpenFor)
	case c.HalfOpenCalls < 1:
		return configError("breaker half-open calls must be at least 1, got %d", c.HalfOpenCalls)
	}
	return nil
}

// String summarises the configuration.
func (c BreakerConfig) String() string {
	return fmt.Sprintf("breaker{window %v, min %d, failure rate %g, consecutive %d, slow %v@%g, open %v, half-open %d}",
		c.Window, c.MinimumCalls, c.FailureRate, c.ConsecutiveFailures, c.SlowCall, c.SlowCallRate, c.OpenFor, c.HalfOpenCalls)
}
