// Package local holds the in-process implementations of bulwark's patterns:
// keyed rate limiters (token bucket, sliding-window counter, sliding-window
// log, fixed window), a circuit breaker, a bulkhead, and the purely local
// policies (retry, timeout, fallback, hedge, adaptive concurrency, load
// shedding, cache, feature toggle, backpressure estimation).
//
// The limiters follow the arithmetic in docs/algorithms.md exactly, so that
// their decisions equal those of package distributed's Redis-backed twins
// field for field.
package local
