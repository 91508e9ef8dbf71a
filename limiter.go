package bulwark

import (
	"context"
	"fmt"
	"time"
)

// Limiter decides whether a request may proceed now.
//
// One Limiter serves many keys: each key (a tenant, a user, a route) has its
// own independent state. Implementations are safe for concurrent use.
type Limiter interface {
	// Allow takes n tokens for key if they are all available now, else takes
	// none. A denied request takes nothing, so a client that keeps retrying
	// does not keep itself locked out.
	//
	// The error is non-nil only when the call itself is wrong: n < 1, n
	// above the limiter's capacity (both wrap [ErrInvalidArgument]), or a
	// done ctx. An unreachable shared store is not an error: the decision is
	// then made locally and flagged Degraded.
	Allow(ctx context.Context, key string, n int) (Decision, error)
}

// Decision is the outcome of one [Limiter.Allow] call.
//
// All durations are exact to the microsecond and never rounded down: a
// client that waits RetryAfter and asks again for the same n, with no other
// traffic on the key, is admitted.
type Decision struct {
	Allowed    bool
	Limit      int           // capacity: burst, or requests per window
	Remaining  int           // tokens left after this decision
	RetryAfter time.Duration // when !Allowed: wait before n tokens can be available; 0 when allowed
	ResetAfter time.Duration // until the key is back at full capacity
	Degraded   bool          // decided locally because the shared store was unreachable
}

// Err returns nil for an allowed decision and a [*RateLimitedError] (which
// matches [ErrRateLimited]) for a denied one.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &RateLimitedError{RetryAfter: d.RetryAfter, Decision: d}
}

// maxLimitProduct bounds capacity × period (µs): intermediate sums reach
// twice this value and must stay exact in a double.
const maxLimitProduct = 1 << 52

// Limit is the shape of a rate limit: Events per Period, with bursts up to
// Burst for the token bucket.
//
// Worked example: Limit{Events: 10, Period: time.Second, Burst: 20} refills
// one token every 100ms and lets a key that was idle for two seconds send 20
// requests at once. The sliding and fixed windows ignore Burst: they admit at
// most Events per Period.
//
// The zero value is invalid; build limits with [PerSecond], [PerMinute],
// [PerHour] or a literal, and check literals with [Limit.Validate].
type Limit struct {
	Events int           // events allowed per Period
	Period time.Duration // a whole number of microseconds, at least 1µs
	Burst  int           // token-bucket capacity; 0 means Events (windows ignore it)
}

// PerSecond is n events per second, with a burst of n.
func PerSecond(n int) Limit { return Limit{Events: n, Period: time.Second} }

// PerMinute is n events per minute, with a burst of n.
func PerMinute(n int) Limit { return Limit{Events: n, Period: time.Minute} }

// PerHour is n events per hour, with a burst of n.
func PerHour(n int) Limit { return Limit{Events: n, Period: time.Hour} }

// WithBurst returns a copy of l with Burst set to b.
func (l Limit) WithBurst(b int) Limit { l.Burst = b; return l }

// Capacity is the token-bucket capacity: Burst, or Events when Burst is 0.
func (l Limit) Capacity() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Events
}

// PeriodMicros is the period in whole microseconds.
func (l Limit) PeriodMicros() int64 { return int64(l.Period / time.Microsecond) }

// Validate reports whether l can be enforced exactly. It returns an error
// wrapping [ErrInvalidConfig] when Events < 1, Burst < 0, Period is not a
// whole positive number of microseconds, or when Capacity (or Events) times
// the period in microseconds exceeds 2^52 (about 4.5·10¹⁵: for instance a
// burst of 50,000 over one day), beyond which Lua's doubles lose exactness.
func (l Limit) Validate() error {
	switch {
	case l.Events < 1:
		return configError("limit events must be at least 1, got %d", l.Events)
	case l.Burst < 0:
		return configError("limit burst must not be negative, got %d", l.Burst)
	case l.Period < time.Microsecond:
		return configError("limit period must be at least 1µs, got %v", l.Period)
	case l.Period%time.Microsecond != 0:
		return configError("limit period must be a whole number of microseconds, got %v", l.Period)
	}
	p := l.PeriodMicros()
	m := int64(max(l.Capacity(), l.Events))
	if m > maxLimitProduct/p {
		return configError("limit %v is too large to enforce exactly: capacity × period in µs must stay below 2^52", l)
	}
	return nil
}

// String formats l as "10/1s" or "10/1s burst 20".
func (l Limit) String() string {
	if l.Burst > 0 && l.Burst != l.Events {
		return fmt.Sprintf("%d/%v burst %d", l.Events, l.Period, l.Burst)
	}
	return fmt.Sprintf("%d/%v", l.Events, l.Period)
}
