package telemetry

// Backend is a metrics system the [Observer] writes to: Prometheus
// (package bulwarkprom), OpenTelemetry (package bulwarkotel), or one of your
// own (StatsD, expvar, a test recorder).
//
// [New] first calls Define once for every metric of the table, in
// [MetricID] order, so the backend can create or register what it needs
// (a Prometheus vector, an OpenTelemetry instrument); an error from Define
// makes New fail with it. After that the Observer asks for one instrument
// per series, the first time a pattern instance reports: Counter for
// [KindCounter] metrics, Gauge for [KindGauge], UpDown for [KindUpDown],
// Histogram for [KindHistogram]. values holds the label values in the order
// of the metric's [Metric.Labels] (pattern, name, then the metric's own);
// the slice is the backend's to keep. Pattern and name values are valid
// UTF-8.
//
// The Observer keeps each instrument it gets and calls only its methods
// afterwards, so the constructors run a bounded number of times (at most
// the metric's label combinations times [WithMaxInstances]) and may
// allocate; the instruments' methods run on every event and should not. A
// constructor that returns nil drops that series' measurements.
//
// The instruments' methods may be called from many goroutines at once.
// The constructors are called one at a time for a family of series (the
// Observer holds a lock meanwhile, so each series is made once) and must
// not call the Observer back.
type Backend interface {
	// Define announces metric m before any of its series is made.
	Define(m Metric) error
	// Counter returns the counter of metric id for the label values.
	Counter(id MetricID, values []string) Counter
	// Gauge returns the gauge of metric id for the label values.
	Gauge(id MetricID, values []string) Gauge
	// UpDown returns the up-down counter of metric id for the label values.
	UpDown(id MetricID, values []string) UpDown
	// Histogram returns the histogram of metric id for the label values.
	Histogram(id MetricID, values []string) Histogram
}

// Counter is a monotonic count; a prometheus.Counter satisfies it.
type Counter interface {
	// Inc adds 1.
	Inc()
}

// Gauge is a value that is set; a prometheus.Gauge satisfies it. The
// values set are small whole numbers (0 and 1 for states, an adaptive
// limit).
type Gauge interface {
	// Set replaces the value.
	Set(v float64)
}

// UpDown is a count that goes up and down (slots held, callers waiting); a
// prometheus.Gauge satisfies it.
type UpDown interface {
	// Inc adds 1.
	Inc()
	// Dec subtracts 1.
	Dec()
}

// Histogram records a distribution of durations in seconds; a
// prometheus.Observer satisfies it.
type Histogram interface {
	// Observe records one value, in seconds.
	Observe(seconds float64)
}

// Kind is the kind of instrument a metric is recorded with.
type Kind uint8

// The kinds of instrument.
const (
	// KindCounter only goes up, by 1 an event: [Backend.Counter].
	KindCounter Kind = iota + 1
	// KindGauge is set to a value: [Backend.Gauge].
	KindGauge
	// KindUpDown goes up and down by 1: [Backend.UpDown]. Prometheus
	// exports it as a gauge.
	KindUpDown
	// KindHistogram records durations in seconds into buckets:
	// [Backend.Histogram].
	KindHistogram
)

// String returns "counter", "gauge", "updown" or "histogram".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindUpDown:
		return "updown"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// Metric describes one metric of the table, with the [Option] values of
// the [Observer] applied (namespace, histogram buckets).
type Metric struct {
	// ID identifies the metric in the Backend's constructor calls.
	ID MetricID
	// Name is the metric's name in Prometheus style: the namespace, "_",
	// then a snake-case suffix (bulwark_decisions_total,
	// bulwark_store_call_duration_seconds). It is a valid Prometheus,
	// StatsD and Graphite name.
	Name string
	// OTelName is the metric's name in OpenTelemetry style: the namespace,
	// ".", then dotted words without unit or _total suffix
	// (bulwark.decisions, bulwark.store.call.duration).
	OTelName string
	// Kind is the instrument the metric is recorded with.
	Kind Kind
	// Unit is the metric's unit in UCUM notation, as OpenTelemetry wants it:
	// "s" for histograms, "1" for states and limits, "{decision}" and the
	// like for counts.
	Unit string
	// Help says what the metric counts, in one sentence.
	Help string
	// Labels are the label names, in the order of the values given to the
	// Backend's constructors: "pattern" and "name" first, then the metric's
	// own (for example "result", "degraded").
	Labels []string
	// Buckets are a histogram's bucket upper bounds in seconds, strictly
	// increasing ([WithStoreBuckets], [WithWaitBuckets]); nil for other
	// kinds. The slice is the backend's to keep.
	Buckets []float64
}

// MetricID identifies one metric of the table in the package
// documentation.
type MetricID int

// The metrics, in the order [Backend.Define] sees them.
const (
	// Decisions counts rate-limit decisions (bulwark_decisions_total).
	Decisions MetricID = iota
	// DecisionsNearLimit counts allowed decisions near the limit
	// (bulwark_decisions_near_limit_total).
	DecisionsNearLimit
	// ShadowDecisions counts shadow-mode decisions
	// (bulwark_shadow_decisions_total).
	ShadowDecisions
	// BreakerState is a breaker's state, one gauge per state
	// (bulwark_breaker_state).
	BreakerState
	// BreakerTransitions counts breaker state changes
	// (bulwark_breaker_transitions_total).
	BreakerTransitions
	// BreakerRejected counts calls a breaker refused
	// (bulwark_breaker_rejected_total).
	BreakerRejected
	// BreakerCalls counts call outcomes a breaker recorded
	// (bulwark_breaker_calls_total).
	BreakerCalls
	// BulkheadInUse is the number of bulkhead slots held
	// (bulwark_bulkhead_in_use).
	BulkheadInUse
	// BulkheadWait is the time spent waiting for a bulkhead slot
	// (bulwark_bulkhead_wait_seconds).
	BulkheadWait
	// BulkheadRejected counts calls a bulkhead turned away
	// (bulwark_bulkhead_rejected_total).
	BulkheadRejected
	// BulkheadWaiting is the number of callers waiting for a slot
	// (bulwark_bulkhead_waiting).
	BulkheadWaiting
	// StoreCallDuration is the duration of round trips to the shared store
	// (bulwark_store_call_duration_seconds).
	StoreCallDuration
	// StoreHealthy is 1 while the shared store answers
	// (bulwark_store_healthy).
	StoreHealthy
	// Retries counts retries (bulwark_retries_total).
	Retries
	// Timeouts counts calls past their budget (bulwark_timeouts_total).
	Timeouts
	// Fallbacks counts failures replaced by a fallback
	// (bulwark_fallbacks_total).
	Fallbacks
	// Hedges counts hedged attempts (bulwark_hedges_total).
	Hedges
	// Rejections counts load-shedder and adaptive-limiter rejections
	// (bulwark_rejections_total).
	Rejections
	// Limit is an adaptive limit's current value (bulwark_limit).
	Limit
	// CacheRequests counts cache lookups (bulwark_cache_requests_total).
	CacheRequests
	// LeasesLost counts distributed leases that could not be renewed
	// (bulwark_leases_lost_total).
	LeasesLost
	// ConfigVersion is the live configuration version a replica runs
	// (bulwark_config_version).
	ConfigVersion
	// ConfigStale is 1 while a replica's live configuration may be behind
	// (bulwark_config_stale).
	ConfigStale

	numMetrics
)

// String returns the metric's name suffix without namespace, such as
// "decisions_total".
func (id MetricID) String() string {
	if id < 0 || id >= numMetrics {
		return "unknown"
	}
	return metricDefs[id].prom
}
