package telemetry

import (
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/bulwark-go/bulwark"
)

// metricDef is one row of the table. The Prometheus-style name is
// namespace + "_" + prom; the OpenTelemetry name is otel with its leading
// "bulwark" replaced by the namespace. Every metric has the labels pattern
// and name first, then labels.
type metricDef struct {
	prom, otel string
	kind       Kind
	unit       string // UCUM, for OpenTelemetry
	help       string
	labels     []string
}

var metricDefs = [numMetrics]metricDef{
	Decisions: {"decisions_total", "bulwark.decisions", KindCounter, "{decision}",
		"Rate-limit decisions, by result (allowed, denied) and whether the shared store was unreachable (degraded).",
		[]string{"result", "degraded"}},
	DecisionsNearLimit: {"decisions_near_limit_total", "bulwark.decisions.near_limit", KindCounter, "{decision}",
		"Allowed decisions that left at most the near-limit fraction (default 20%) of the limit.",
		nil},
	ShadowDecisions: {"shadow_decisions_total", "bulwark.decisions.shadow", KindCounter, "{decision}",
		"Decisions made in shadow mode (reported, not enforced), by result.",
		[]string{"result"}},
	BreakerState: {"breaker_state", "bulwark.breaker.state", KindGauge, "1",
		"1 for the circuit breaker's current state (closed, open, half-open), 0 for the others; follows the state each transition, rejection and outcome reports.",
		[]string{"state"}},
	BreakerTransitions: {"breaker_transitions_total", "bulwark.breaker.transitions", KindCounter, "{transition}",
		"Circuit breaker state changes, by from and to state.",
		[]string{"from", "to"}},
	BreakerRejected: {"breaker_rejected_total", "bulwark.breaker.rejected", KindCounter, "{call}",
		"Calls a circuit breaker refused.",
		nil},
	BreakerCalls: {"breaker_calls_total", "bulwark.breaker.calls", KindCounter, "{call}",
		"Call outcomes a circuit breaker recorded, by outcome (success, failure).",
		[]string{"outcome"}},
	BulkheadInUse: {"bulkhead_in_use", "bulwark.bulkhead.in_use", KindUpDown, "{slot}",
		"Bulkhead slots held now.",
		nil},
	BulkheadWait: {"bulkhead_wait_seconds", "bulwark.bulkhead.wait.duration", KindHistogram, "s",
		"Time spent waiting for a bulkhead slot, by result (acquired, rejected).",
		[]string{"result"}},
	BulkheadRejected: {"bulkhead_rejected_total", "bulwark.bulkhead.rejected", KindCounter, "{call}",
		"Calls a bulkhead turned away.",
		nil},
	BulkheadWaiting: {"bulkhead_waiting", "bulwark.bulkhead.waiting", KindUpDown, "{call}",
		"Callers waiting for a bulkhead slot now.",
		nil},
	StoreCallDuration: {"store_call_duration_seconds", "bulwark.store.call.duration", KindHistogram, "s",
		"Round trips to the shared store (Redis), by result (ok, error).",
		[]string{"result"}},
	StoreHealthy: {"store_healthy", "bulwark.store.healthy", KindGauge, "1",
		"1 while the shared store answers (from its first event on), 0 while it is degraded and patterns decide locally.",
		nil},
	Retries: {"retries_total", "bulwark.retries", KindCounter, "{retry}",
		"Retries started by a retry policy or the HTTP client transport.",
		nil},
	Timeouts: {"timeouts_total", "bulwark.timeouts", KindCounter, "{call}",
		"Calls that ran past their time budget.",
		nil},
	Fallbacks: {"fallbacks_total", "bulwark.fallbacks", KindCounter, "{call}",
		"Failures replaced by a fallback.",
		nil},
	Hedges: {"hedges_total", "bulwark.hedges", KindCounter, "{attempt}",
		"Hedged attempts started.",
		nil},
	Rejections: {"rejections_total", "bulwark.rejections", KindCounter, "{call}",
		"Calls rejected by a load shedder or an adaptive limiter.",
		nil},
	Limit: {"limit", "bulwark.limit", KindGauge, "1",
		"The current value of an adaptive limit.",
		nil},
	CacheRequests: {"cache_requests_total", "bulwark.cache.requests", KindCounter, "{request}",
		"Cache lookups, by result (hit, miss).",
		[]string{"result"}},
	LeasesLost: {"leases_lost_total", "bulwark.leases.lost", KindCounter, "{lease}",
		"Distributed leases that could not be renewed.",
		nil},
	ConfigVersion: {"config_version", "bulwark.config.version", KindGauge, "1",
		"The live configuration version a replica runs (package control): with an empty name the version counter it loaded last, with a policy's name the version of its live value applied (0: the defaults).",
		nil},
	ConfigStale: {"config_stale", "bulwark.config.stale", KindGauge, "1",
		"1 while a replica's live configuration may be behind (Redis unreachable: it keeps the last good one), 0 once it caught up.",
		nil},
}

// DefaultNearLimit is the fraction of a limit at or below which an allowed
// decision's Remaining counts as near the limit.
const DefaultNearLimit = 0.2

// DefaultMaxInstances bounds how many distinct (pattern, name) pairs get
// series of their own; later ones are counted under [OverflowName].
const DefaultMaxInstances = 1000

// DefaultNamespace prefixes every metric name.
const DefaultNamespace = "bulwark"

// DefaultStoreBuckets are the store-call latency histogram's bucket bounds,
// in seconds: 100µs to 1s, for a Redis round trip.
var DefaultStoreBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// DefaultWaitBuckets are the bulkhead-wait histogram's bucket bounds, in
// seconds: 1ms to 10s.
var DefaultWaitBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Option configures an [Observer]: pass options to [New], or to the
// constructor of a backend package (bulwarkprom.New, bulwarkotel.New),
// which hands them to New.
type Option func(*options)

type options struct {
	err          error
	namespace    string
	nearLimit    float64
	maxInstances int
	storeBuckets []float64
	waitBuckets  []float64
}

func (o *options) fail(format string, args ...any) {
	if o.err == nil {
		o.err = configError(format, args...)
	}
}

// configError returns an error wrapping bulwark.ErrInvalidConfig.
func configError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{bulwark.ErrInvalidConfig}, args...)...)
}

var namespaceRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// WithNamespace replaces the "bulwark" prefix of every metric name (a
// Prometheus name part: letters, digits and underscores, not starting with
// a digit).
func WithNamespace(ns string) Option {
	return func(o *options) {
		if !namespaceRE.MatchString(ns) {
			o.fail("telemetry: invalid namespace %q", ns)
			return
		}
		o.namespace = ns
	}
}

// WithNearLimit sets the fraction of the limit, in (0,1), at or below which
// an allowed decision's Remaining counts as near the limit (default
// [DefaultNearLimit]).
func WithNearLimit(fraction float64) Option {
	return func(o *options) {
		if math.IsNaN(fraction) || fraction <= 0 || fraction >= 1 {
			o.fail("telemetry: near-limit fraction must be in (0,1), got %v", fraction)
			return
		}
		o.nearLimit = fraction
	}
}

// WithMaxInstances bounds how many distinct (pattern, name) pairs get their
// own series (default [DefaultMaxInstances]); events of further pairs are
// counted with the name [OverflowName]. n must be at least 1.
func WithMaxInstances(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.fail("telemetry: max instances must be at least 1, got %d", n)
			return
		}
		o.maxInstances = n
	}
}

// WithStoreBuckets sets the bucket bounds, in seconds, of the store-call
// latency histogram (default [DefaultStoreBuckets]); they must be positive
// and strictly increasing.
func WithStoreBuckets(bounds ...float64) Option {
	return func(o *options) {
		if !validBuckets(bounds) {
			o.fail("telemetry: store buckets must be positive and strictly increasing, got %v", bounds)
			return
		}
		o.storeBuckets = slices.Clone(bounds)
	}
}

// WithWaitBuckets sets the bucket bounds, in seconds, of the bulkhead-wait
// histogram (default [DefaultWaitBuckets]); they must be positive and
// strictly increasing.
func WithWaitBuckets(bounds ...float64) Option {
	return func(o *options) {
		if !validBuckets(bounds) {
			o.fail("telemetry: wait buckets must be positive and strictly increasing, got %v", bounds)
			return
		}
		o.waitBuckets = slices.Clone(bounds)
	}
}

func validBuckets(b []float64) bool {
	if len(b) == 0 {
		return false
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || (i > 0 && v <= b[i-1]) {
			return false
		}
	}
	return true
}

func buildOptions(opts []Option) (*options, error) {
	o := &options{
		namespace:    DefaultNamespace,
		nearLimit:    DefaultNearLimit,
		maxInstances: DefaultMaxInstances,
		storeBuckets: DefaultStoreBuckets,
		waitBuckets:  DefaultWaitBuckets,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return o, nil
}

// metrics returns the definitions of every metric, in MetricID order.
func (o *options) metrics() []Metric {
	out := make([]Metric, numMetrics)
	for id := range numMetrics {
		out[id] = o.metric(id)
	}
	return out
}

// metric returns the definition of metric id with the options applied.
func (o *options) metric(id MetricID) Metric {
	d := metricDefs[id]
	m := Metric{
		ID:       id,
		Name:     o.namespace + "_" + d.prom,
		OTelName: o.namespace + d.otel[len(DefaultNamespace):],
		Kind:     d.kind,
		Unit:     d.unit,
		Help:     d.help,
		Labels:   append([]string{"pattern", "name"}, d.labels...),
	}
	switch id {
	case StoreCallDuration:
		m.Buckets = slices.Clone(o.storeBuckets)
	case BulkheadWait:
		m.Buckets = slices.Clone(o.waitBuckets)
	}
	return m
}
