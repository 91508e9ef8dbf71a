package distributed

import (
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// FailurePolicy says how a Redis-backed limiter decides when it cannot ask
// Redis: while its store is degraded, or when one call failed. Every such
// decision has Decision.Degraded set. The zero value is [FailLocal].
//
// Which to choose is a security decision as much as an availability one:
// FailLocal keeps limits roughly in force, FailOpen keeps a service up at
// the price of no limit at all while Redis is away, and FailClosed protects
// what the limit guards (login attempts, one-time codes, abuse limits) at
// the price of refusing everyone.
type FailurePolicy uint8

// The failure policies.
const (
	// FailLocal (the default) decides with a local twin: an in-memory
	// limiter of the same algorithm enforcing this replica's fair share of
	// the limit: Events and Burst each divided by the live replica count,
	// rounded up and at least 1 (see [WithReplicas] and
	// [WithReplicaCounter]). Decision.Limit is then the share's capacity,
	// and an n above it is denied with RetryAfter the probe interval.
	// Twins start empty at each outage.
	FailLocal FailurePolicy = iota
	// FailOpen admits every request: Allowed, Limit the limit's capacity,
	// Remaining capacity − n (nothing is counted).
	FailOpen
	// FailClosed denies every request: Remaining 0, and RetryAfter and
	// ResetAfter equal to the store's probe interval, the soonest Redis can
	// be back.
	FailClosed
)

func (p FailurePolicy) valid() bool { return p <= FailClosed }

// String returns "fail_local", "fail_open" or "fail_closed".
func (p FailurePolicy) String() string {
	switch p {
	case FailLocal:
		return "fail_local"
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	}
	return "unknown"
}

// WithFailurePolicy sets the failure policy of the store's limiters
// (default [FailLocal]); [WithLimiterFailurePolicy] overrides it for one
// limiter.
func WithFailurePolicy(p FailurePolicy) Option { return func(c *config) { c.policy = p } }

// ReplicaCounter tells how many replicas share a store's limits, for the
// fair share of a degraded limiter. cluster.Membership implements it from
// heartbeats in Redis. Replicas returns the last known count without I/O,
// or 0 when it knows none (the store then uses [WithReplicas]). It must be
// safe for concurrent use and fast: it runs on degraded decisions.
type ReplicaCounter interface {
	Replicas() int
}

// WithReplicas sets how many replicas share the store's limits (default 1)
// when no [ReplicaCounter] knows better: a degraded limiter with the
// [FailLocal] policy enforces 1/n of its limit. It is the expected fleet
// size, used also by a counter that knows no count yet (a replica that
// started while Redis was away); [WithMinReplicas] is a floor under any
// count.
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithMinReplicas sets a floor on the replica count of fair shares
// (default 1: no floor): a degraded limiter with the [FailLocal] policy
// never enforces more than 1/n of its limit, whatever the count. Set it to
// the smallest size the fleet runs at (an autoscaler's minimum). It is what
// keeps a replica that starts while Redis is away to its share: its
// [ReplicaCounter] (a cluster.Membership) has heard no heartbeat yet and
// knows no count, and without a floor (or [WithReplicas]) the replica
// would enforce the whole limit on its own. A floor above the live count
// makes each replica stricter, never looser.
func WithMinReplicas(n int) Option { return func(c *config) { c.minReplicas = n } }

// WithReplicaCounter sets where the store learns the live replica count for
// fair shares, typically a cluster.Membership. While it reports 0 the
// count of [WithReplicas] applies.
func WithReplicaCounter(rc ReplicaCounter) Option { return func(c *config) { c.counter = rc } }

// WithFailureThreshold sets how many Redis calls in a row must fail (time
// out, find no connection, get BUSY, OOM, ...) before the store turns
// degraded (default [DefaultFailureThreshold], 1 to 2^20). Calls fail in a
// row when no call succeeds in between, whichever goroutines made them.
func WithFailureThreshold(n int) Option { return func(c *config) { c.failureThreshold = n } }

// WithRecoveryThreshold sets how many probes in a row must succeed before a
// degraded store goes back to Redis (default [DefaultRecoveryThreshold]).
func WithRecoveryThreshold(n int) Option { return func(c *config) { c.recoveryThreshold = n } }

// WithProbeInterval sets the time between two probes of a degraded store
// (default [DefaultProbeInterval], at least 1ms). Each probe is one script
// call bounded by the store's timeout.
func WithProbeInterval(d time.Duration) Option { return func(c *config) { c.probeInterval = d } }

// WithMinDegraded sets the shortest time a store stays degraded (default
// [DefaultMinDegraded]; 0 allows recovery as soon as the probes succeed).
// It is the store's hysteresis: a degraded period lasts at least this
// long, so the store switches at most twice per this time.
func WithMinDegraded(d time.Duration) Option { return func(c *config) { c.minDegraded = d } }

// WithMaxDegraded caps the minimum degraded time (default
// [DefaultMaxDegraded]), which doubles each time the store degrades again
// within two minimum degraded times of recovering, and returns to
// [WithMinDegraded] after a stable period.
func WithMaxDegraded(d time.Duration) Option { return func(c *config) { c.maxDegraded = d } }

// WithMaxInFlight bounds the Redis calls a store runs on goroutines of its
// own when its client ignores context deadlines (default
// [DefaultMaxInFlight]); a call beyond it is decided locally at once. It
// has no effect with a client built with ContextTimeoutEnabled.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// LimiterOption configures one limiter of a store.
type LimiterOption func(*limiterConfig)

type limiterConfig struct {
	policy    FailurePolicy
	hasPolicy bool
}

// WithLimiterFailurePolicy sets the failure policy of one limiter,
// overriding the store's ([WithFailurePolicy]).
func WithLimiterFailurePolicy(p FailurePolicy) LimiterOption {
	return func(c *limiterConfig) { c.policy, c.hasPolicy = p, true }
}

// limiterPolicy applies opts and returns the limiter's failure policy.
func (s *Store) limiterPolicy(opts []LimiterOption) (FailurePolicy, error) {
	var c limiterConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if !c.hasPolicy {
		return s.policy, nil
	}
	if !c.policy.valid() {
		return 0, core.ConfigError("unknown failure policy %d", c.policy)
	}
	return c.policy, nil
}

// replicaCount is the number of replicas a degraded limiter shares its
// limit with: the counter's last known count, else the configured one, and
// at least the floor.
func (s *Store) replicaCount() int {
	n := s.replicas
	if s.counter != nil {
		if c := s.counter.Replicas(); c > 0 {
			n = c
		}
	}
	return max(n, s.minReplicas)
}

// shareLimit returns one of n replicas' fair share of l: Events and Burst
// divided by n, rounded up, and at least 1 (a Burst of 0 stays 0: the
// capacity is then the Events share). The period is unchanged, so the n
// shares together admit at most n−1 more than l per period (from the
// rounding).
func shareLimit(l bulwark.Limit, n int) bulwark.Limit {
	if n <= 1 {
		return l
	}
	l.Events = max(1, (l.Events+n-1)/n)
	if l.Burst > 0 {
		l.Burst = max(1, (l.Burst+n-1)/n)
	}
	return l
}

// degradedDecision is a decision by the FailOpen or FailClosed policy.
func (s *Store) degradedDecision(p FailurePolicy, capacity, n int) bulwark.Decision {
	if p == FailOpen {
		return bulwark.Decision{Allowed: true, Limit: capacity, Remaining: capacity - n, Degraded: true}
	}
	return bulwark.Decision{
		Limit:      capacity,
		RetryAfter: s.health.interval,
		ResetAfter: s.health.interval,
		Degraded:   true,
	}
}
