// Package openapi reads resilience policies declared in an OpenAPI 3
// document and applies them on the server side (Middleware) and on the
// client side (Transport), one declaration for both.
//
// # Declaring
//
// An x-bulwark block holds a policy.Spec (see package policy for every key):
//
//	x-bulwark:
//	  defaults:                       # every operation
//	    ratelimit: {limit: 100, per: 1m, key: "header:X-Tenant", scope: fleet}
//	    timeout: 2s
//	paths:
//	  /pets/{petId}:
//	    x-bulwark:                    # the path item's operations
//	      circuitbreaker: {failure_rate: 0.5, open_for: 30s}
//	    get:
//	      operationId: getPet
//	      x-bulwark:                  # this operation
//	        ratelimit: {limit: 10}
//	        hedge: {delay: 50ms}
//
// The layers merge field by field, the most specific winning, so getPet
// gets 10 per minute by tenant, fleet-wide, with the path item's breaker and
// a 2s timeout. "enabled: false" in a block switches an inherited pattern off;
// at the top of a layer it switches the whole stack off. Each operation's
// stack is named after its operationId (or "METHOD:path" without one, or the
// block's name key): that name labels its metrics, is the RateLimit-Policy
// name and keys its fleet-wide state, so it stays the same across restarts
// and replicas.
//
// # Checking
//
// Load and Parse reject a document whole, listing every problem with its
// file position: an unknown key (with the nearest valid one), a bad
// duration, a negative or zero limit, an unknown algorithm, scope or key
// source, a hedge on a method that is not idempotent (a hedge inherited from
// the defaults is simply not applied to those), a bulkhead that may wait
// longer than the timeout. kin-openapi keeps no positions, so the document's
// YAML (or JSON) is also read as gopkg.in/yaml.v3 nodes to find the line and
// column of each key. Lint returns the same problems for a linter
// ("bulwark openapi lint").
//
// # Routing
//
// Paths are compiled at load into a tree of segments: literal segments win
// over parameters, a parameter matches one non-empty segment and may carry a
// literal prefix and suffix ({id}.json), and a dead end backtracks. The
// document's first server URL gives the base path requests carry (/v1 for
// https://api.example.com/v1; WithBasePath overrides it). Matching allocates
// nothing. Requests that match no operation pass through untouched, or run
// under the document's defaults with WithUnknownRoutes.
//
// # x-telstra
//
// Documents written for Failsafe's x-telstra extension are read as they
// are, so they need no edit. An operation's x-telstra: {resiliency: {...}}
// becomes a layer under the operation's own x-bulwark, each block present
// taking that system's defaults for the keys it leaves out; the document's
// x-telstra (otel, controller, protection) is checked for unknown keys and
// otherwise has no effect (bulwark protects the side it is wired on and
// reports through the Observer it is given). The mapping:
//
//	x-telstra key                          default          x-bulwark equivalent
//	ratelimit.max_executions               100              ratelimit.limit
//	ratelimit.per_time_secs                60               ratelimit.per (seconds)
//	ratelimit.bucket_size                  max_executions   ratelimit.burst
//	ratelimit.retry_after_strategy         backpressure     ratelimit.retry_after: backpressure (utilization reads as
//	                                                        backpressure; fixed as limiter: the bucket's own wait)
//	ratelimit.p95_baseline                 0.2              ratelimit.backpressure.baseline
//	ratelimit.min_retry_delay              1.0              ratelimit.backpressure.min_retry_after
//	ratelimit.max_retry_penalty            15.0             ratelimit.backpressure.max_retry_after
//	ratelimit.min_latency                  0.05             checked, no effect (the estimator needs no floor)
//	ratelimit.gradient_sensitivity         2.0              checked, no effect (the estimator's gradient is fixed)
//	(ratelimit key)                        -                ratelimit.key: route (one budget per operation), scope fleet
//	retry.attempts                         3                retry.attempts
//	retry.delay                            1.0              retry.delay (seconds)
//	retry.backoff                          2.0              retry.multiplier (backoff exponential; 1.0: constant)
//	retry.max_delay                        60.0             retry.max_delay (seconds)
//	retry.exceptions                       [Exception]      checked, no effect: retry.statuses 500, 502, 503, 504
//	(retry jitter)                         -                retry.jitter: none
//	circuitbreaker.failure_threshold       5                circuitbreaker.consecutive_failures (and minimum_calls,
//	                                                        with failure_rate 1)
//	circuitbreaker.recovery_timeout        30               circuitbreaker.open_for (seconds)
//	circuitbreaker.half_open_requests      3                circuitbreaker.half_open_calls
//	timeout.seconds                        30.0             timeout (seconds)
//	<block>.enabled                        true             <block>.enabled (timeout: enabled false is timeout 0)
//	<block>.name                           operationId      name (the first block's name names the whole stack)
//
// # Server side
//
// Middleware runs each operation's stack with package bulwarkhttp's
// behaviour: 429 with Retry-After and the RateLimit header fields, 503 from
// an open breaker, a full bulkhead or the load shedder, 504 after the
// timeout. WithStore makes scope: fleet (the default) Redis-backed; without
// it every pattern is local. A retry block on a server operation re-runs the
// handler after a retried status from a buffered response, with the request
// body replayed, and never once the response has started streaming (see
// Middleware). Package serve is the one-call bootstrap with /metrics.
//
// # Client side
//
// Transport applies a dependency's declared retry, timeout (per attempt),
// breaker, hedge and rate limit to outgoing calls, on top of
// bulwarkhttp.Transport's Retry-After handling.
package openapi
