// Package telemetry turns bulwark's events into metrics: one table of
// counters, gauges and histograms (below), the same for every metrics
// system. The [Observer] made by [New] is a bulwark.Observer; pass it to a
// pattern's or a store's WithObserver option, or fan one event stream out
// with bulwark.Observers. It writes to a [Backend]:
//
//   - Prometheus: package bulwarkprom
//     (module github.com/bulwark-go/bulwark/telemetry/bulwarkprom),
//     bulwarkprom.New(prometheus.DefaultRegisterer);
//   - OpenTelemetry: package bulwarkotel
//     (module github.com/bulwark-go/bulwark/telemetry/bulwarkotel),
//     bulwarkotel.New(meter), the metric API only: bring your own SDK and
//     exporter;
//   - anything else (StatsD, expvar, a test recorder): implement Backend
//     and call New; see the example.
//
// This package needs only the standard library and is part of the core
// module; each backend package is a module of its own, so a program that
// exports to Prometheus never downloads OpenTelemetry, and the other way
// round.
//
//	metrics, err := bulwarkprom.New(prometheus.DefaultRegisterer)
//	if err != nil {
//		return err
//	}
//	tb, err := local.NewTokenBucket(bulwark.PerSecond(100),
//		local.WithObserver(metrics), local.WithName("api"))
//
// Observing is cheap and safe for concurrent use: the series of an
// instance are created when it first reports (the Backend's constructors
// run then) and afterwards found by a lock-free lookup; steady-state
// observing allocates nothing in this package, and the Prometheus and
// OpenTelemetry backends allocate nothing either.
//
// # Labels and cardinality
//
// Every metric carries the labels pattern (what reported: "token_bucket",
// "breaker", "http_limit", … — set by the library) and name (the instance
// name given with a WithName option; empty when none). The key a limiter
// was asked about (a tenant, a client address) is never a label, so the
// number of series depends on your code, not on your traffic. As a guard
// against names built from request data, after [DefaultMaxInstances]
// distinct (pattern, name) pairs ([WithMaxInstances]) further ones are
// counted under the name [OverflowName]. In OpenTelemetry, labels are
// attributes prefixed with "bulwark." (bulwark.pattern, bulwark.name,
// bulwark.result, …). [Metric.Labels] lists a metric's labels in the order
// of the values a Backend receives.
//
// # Metrics
//
// Prometheus-style names ([Metric.Name]) carry the namespace "bulwark"
// ([WithNamespace]); OpenTelemetry names ([Metric.OTelName]) start with
// it. Extra labels follow pattern and name. [Metrics] returns the table
// with the options applied.
//
//	Prometheus name                       OpenTelemetry name             Kind       Extra labels
//	bulwark_decisions_total               bulwark.decisions              counter    result (allowed, denied), degraded (true, false)
//	bulwark_decisions_near_limit_total    bulwark.decisions.near_limit   counter    -
//	bulwark_shadow_decisions_total        bulwark.decisions.shadow       counter    result
//	bulwark_breaker_state                 bulwark.breaker.state          gauge      state (closed, open, half-open)
//	bulwark_breaker_transitions_total     bulwark.breaker.transitions    counter    from, to
//	bulwark_breaker_rejected_total        bulwark.breaker.rejected       counter    -
//	bulwark_breaker_calls_total           bulwark.breaker.calls          counter    outcome (success, failure)
//	bulwark_bulkhead_in_use               bulwark.bulkhead.in_use        updown     -  (Prometheus: a gauge)
//	bulwark_bulkhead_wait_seconds         bulwark.bulkhead.wait.duration histogram  result (acquired, rejected); seconds
//	bulwark_bulkhead_waiting              bulwark.bulkhead.waiting       updown     -  (Prometheus: a gauge)
//	bulwark_bulkhead_rejected_total       bulwark.bulkhead.rejected      counter    -
//	bulwark_store_call_duration_seconds   bulwark.store.call.duration    histogram  result (ok, error); seconds
//	bulwark_store_healthy                 bulwark.store.healthy          gauge      -
//	bulwark_retries_total                 bulwark.retries                counter    -
//	bulwark_timeouts_total                bulwark.timeouts               counter    -
//	bulwark_fallbacks_total               bulwark.fallbacks              counter    -
//	bulwark_hedges_total                  bulwark.hedges                 counter    -
//	bulwark_rejections_total              bulwark.rejections             counter    -
//	bulwark_limit                         bulwark.limit                  gauge      -
//	bulwark_cache_requests_total          bulwark.cache.requests         counter    result (hit, miss)
//	bulwark_leases_lost_total             bulwark.leases.lost            counter    -
//	bulwark_config_version                bulwark.config.version         gauge      -
//	bulwark_config_stale                  bulwark.config.stale           gauge      -
//
// What each one counts, by event kind:
//
//   - bulwark.EventDecision: decisions_total by result and degraded; an
//     allowed decision whose Remaining is at most 20% of its Limit
//     ([WithNearLimit]) also counts in decisions_near_limit_total. A
//     decision with Shadow set (made in shadow mode and not enforced, as
//     bulwarkhttp's shadow middleware reports them) counts only in
//     shadow_decisions_total.
//   - Breaker events: breaker_transitions_total on a transition,
//     breaker_rejected_total, breaker_calls_total by outcome. Every breaker
//     event carries the breaker's state (a transition its new state, a
//     rejection the state that rejected, an outcome the state once it was
//     counted), and breaker_state follows it, so the gauge is right from a
//     breaker's first event, not only after its first transition; a
//     breaker that has reported nothing has no series yet. The state of a
//     Redis-backed breaker is the one its replica acts on: the fleet's, or
//     its local twin's while the store is degraded.
//   - Bulkhead events: bulkhead_in_use goes up on acquire and down on
//     release; bulkhead_waiting goes up when a caller starts waiting for a
//     slot (bulwark.EventBulkheadQueued) and down when it stops, whatever
//     the end (bulwark.EventBulkheadDequeued); bulkhead_wait_seconds
//     observes the wait of each acquire and rejection;
//     bulkhead_rejected_total counts rejections.
//   - bulwark.EventStoreCall: store_call_duration_seconds by result (every
//     Redis round trip of a store: limiter decisions, multi-limit ones
//     too, breaker and bulkhead scripts, health probes); bulwark.EventStoreHealth:
//     store_healthy (1 healthy, 0 degraded). A store reports only changes
//     of health, so store_healthy is 1 from the store's first event on until
//     a switch to degraded.
//   - Retry, timeout, fallback, hedge, rejected, lease-lost events: one
//     counter each; limit changes set the limit gauge; cache lookups count
//     by hit or miss.
//   - bulwark.EventConfig (package control): config_version follows the
//     version each policy runs (name: the policy) and the version counter
//     the replica loaded (name ""); config_stale is 1 while the replica
//     could not read the live configuration. A replica stuck behind the
//     fleet shows a lower config_version than the others.
//
// Store-call buckets run from 100µs to 1s ([DefaultStoreBuckets],
// [WithStoreBuckets]); bulkhead-wait buckets from 1ms to 10s
// ([DefaultWaitBuckets], [WithWaitBuckets]). The same table, in markdown,
// is in METRICS.md.
package telemetry
