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
// holds Redis-backed ones, whose state is shared by every replica of a
// service. Both take the same configuration values ([Limit],
// [BreakerConfig], [BulkheadConfig]) and, for the same sequence of calls on
// the same clock, make the same decisions, so a service starts local and
// goes fleet-wide by changing one constructor.
//
// Errors are sentinel values matched with errors.Is: [ErrRateLimited],
// [ErrOpen], [ErrBulkheadFull], [ErrTimeout], and configuration or argument
// errors wrapping [ErrInvalidConfig] or [ErrInvalidArgument]. An error from
// Limiter.Allow means the call itself was wrong (a bad n, a cancelled
// context); an unreachable Redis is never an error but a decision flagged
// [Decision].Degraded.
//
// Every pattern reports what it does to an [Observer] as small [Event]
// values; package telemetry turns them into OpenTelemetry or Prometheus
// metrics.
//
// Time is injected through [Clock], so tests drive patterns with a fake clock
// and never sleep.
package bulwark
