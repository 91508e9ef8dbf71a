// Package policy describes a stack of resilience patterns for one named
// operation as data, and builds it from bulwark's constructors.
//
// A [Spec] is a plain value: a rate limit, a circuit breaker, a bulkhead,
// a timeout, a retry, a hedge and a load shedder, each optional, plus the
// flags enabled and shadow. It round-trips through JSON (durations as Go
// duration strings such as "500ms" or "1m", or numbers of seconds), so it can
// come from a file, an OpenAPI document's x-bulwark blocks, or a control
// plane, as well as from Go code:
//
//	{"ratelimit": {"limit": 100, "per": "1m", "key": "header:X-Tenant", "scope": "fleet"},
//	 "circuitbreaker": {"failure_rate": 0.5, "open_for": "30s"},
//	 "timeout": "2s"}
//
// # Layers
//
// Specs are layered, most general first: service defaults, then a group of
// operations, then one operation. [Spec.Merge] combines two layers field by
// field, the more specific winning for every field it sets, so a default
// limit of 100/min with an operation's {"ratelimit": {"limit": 10}} gives
// 10/min with every other setting inherited. A block with "enabled": false
// switches that inherited pattern off; a Spec with "enabled": false switches
// the whole stack off. Unset fields are nil pointers (or empty strings):
// that is how a layer says "inherit".
//
// # Checking
//
// [Decode] reads a Spec from decoded JSON or YAML (map[string]any) and
// [Spec.Validate] checks a merged one; both report every problem at once,
// each naming the exact field (such as "ratelimit.burst") and, for an
// unknown key, the nearest valid one ("unknown key \"limt\"; did you mean
// \"limit\"?"). Errors wrap bulwark.ErrInvalidConfig and unwrap to an
// [*Error] listing the [Problem]s.
//
// # Building
//
// [Build] turns a valid Spec into a [*Stack] of the existing patterns:
// package local's limiters, breaker, bulkhead, shedder and backpressure
// estimator, or package distributed's fleet-wide ones when a
// distributed.Store is given and the block's scope is "fleet" (or
// "tiered": a local limiter in front of the fleet one, see
// distributed.Tiered). Nothing is implemented twice. Every pattern is named
// after the operation (or the Spec's name), so metric labels, Redis keys
// and RateLimit-Policy names stay the same across restarts and replicas.
//
// A Stack's patterns live in one immutable [Parts] value read with one
// atomic load; [Stack.Update] builds a new Parts from a new Spec and swaps
// it in whole, or keeps the current one when the new Spec is invalid, so a
// caller never sees a half-applied configuration. A pattern whose settings
// did not change is carried over with its state; a changed fleet-wide one
// keeps its state in Redis (under the same names) when its shape is the
// same;
// local limiters, bulkheads and breakers keep theirs when only their
// limits, caps or thresholds change (see "Live reconfiguration" in
// live.go), and start afresh when their shape changes. Package control
// drives Update from a live value in Redis.
//
// A circuit breaker's force field ("open" or "closed") overrides its
// state without touching its counts: an operator's switch during an
// incident.
package policy
