// Package local holds the in-process implementations of bulwark's patterns:
// keyed rate limiters (token bucket, sliding-window counter, sliding-window
// log, fixed window), a circuit breaker, a bulkhead, and the purely local
// policies (retry, timeout, fallback, hedge, adaptive concurrency, load
// shedding by priority and by the process's health, cache, feature toggle,
// backpressure estimation, water-mark backpressure).
//
// Load shedding by health: a [SystemShedder] watches [Signal] values with
// a threshold and hysteresis each — the container's CPU use
// ([NewCPUSignal]: cgroup v1 or v2, else the host's /proc/stat), memory
// against GOMEMLIMIT or the cgroup limit ([NewMemorySignal]), the Go
// scheduler's latency ([NewSchedLatencySignal]) — and sheds low priorities
// first; it composes the in-flight [Shedder]. A [WaterMark] holds a
// pipeline's producers back between a high and a low mark of pending work.
//
// The limiters follow the arithmetic in docs/algorithms.md exactly, so that
// their decisions equal those of package distributed's Redis-backed twins
// field for field.
package local
