// Package bulwark is the vocabulary of resilience patterns for Go services
// that run as many replicas.
//
// Every stateful pattern has two implementations behind one small interface:
//
//   - [Limiter]: rate limiters (token bucket, sliding windows, fixed window),
//   - [Breaker]: circuit breakers,
//   - [Bulkhead]: caps on concurrent calls.
//
// Package local holds the in-process implementations; package distributed
// holds Redis-backed ones (limiters, a fleet-wide circuit breaker and a
// fleet-wide bulkhead), whose state is shared by every replica of a service
// and which keep answering locally while Redis is away. Both take the same
// configuration values ([Limit], [BreakerConfig], [BulkheadConfig]) and,
// for the same sequence of calls on the same clock, make the same
// decisions, so a service starts local and goes fleet-wide by changing one
// constructor. Package sync/semaphore is the cluster-wide weighted
// semaphore under the distributed bulkhead; package cluster counts the
// replicas and broadcasts state changes.
//
// [Compose] (or [Do] for a single call) runs a call under a stack of
// [Policy] values, outermost first: the local policies of package local
// (retry, timeout, fallback, hedge, cache, ...) and, through
// [LimiterPolicy], [BreakerPolicy] and [BulkheadPolicy], any limiter,
// breaker or bulkhead, local or Redis-backed.
//
// Errors are sentinel values matched with errors.Is: [ErrRateLimited],
// [ErrOpen], [ErrBulkheadFull], [ErrTimeout], and configuration or argument
// errors wrapping [ErrInvalidConfig] or [ErrInvalidArgument]. An error from
// Limiter.Allow means the call itself was wrong (a bad n, a cancelled
// context); an unreachable Redis is never an error but a decision flagged
// [Decision].Degraded.
//
// Every pattern reports what it does to an [Observer] as small [Event]
// values; package telemetry turns them into metrics, exported to Prometheus
// by telemetry/bulwarkprom and to OpenTelemetry by telemetry/bulwarkotel
// (modules of their own).
//
// Time is injected through [Clock], so tests drive patterns with a fake clock
// and never sleep.
package bulwark
