package telemetry

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/bulwark-go/bulwark"
)

// Label values.
const (
	allowed  = "allowed"
	denied   = "denied"
	success  = "success"
	failure  = "failure"
	ok       = "ok"
	errLabel = "error"
	acquired = "acquired"
	rejected = "rejected"
	hit      = "hit"
	miss     = "miss"
)

// OverflowName replaces the instance name once [WithMaxInstances] distinct
// (pattern, name) pairs have been seen, so a misused name cannot grow the
// number of series without bound.
const OverflowName = "_overflow"

var boolLabel = [2]string{"false", "true"}

var states = [3]bulwark.State{bulwark.Closed, bulwark.Open, bulwark.HalfOpen}

type decisionSeries struct {
	decisions [2][2]Counter // [allowed][degraded]
	nearLimit Counter
	shadow    [2]Counter // [allowed]
}

type breakerSeries struct {
	state       [3]Gauge
	transitions [3][3]Counter // [from][to]; nil on the diagonal
	rejected    Counter
	calls       [2]Counter // [success]

	// shown is 1 + the index of the state the gauges show (0: none yet);
	// mu serialises changing them, so the three gauges always agree.
	mu    sync.Mutex
	shown atomic.Int32
}

// show sets the state gauges to state index i (1 for it, 0 for the others)
// unless they show it already; the common case is one atomic load.
func (s *breakerSeries) show(i int) {
	if i < 0 || s.shown.Load() == int32(i+1) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown.Load() == int32(i+1) {
		return
	}
	for j := range s.state {
		s.state[j].Set(float64(b2i(j == i)))
	}
	s.shown.Store(int32(i + 1))
}

type bulkheadSeries struct {
	inUse    UpDown
	waiting  UpDown
	wait     [2]Histogram // [acquired]
	rejected Counter
}

type storeSeries struct {
	calls   [2]Histogram // [ok]
	healthy Gauge
}

type oneSeries struct {
	c Counter
	s Gauge
	// cache results
	hit, miss Counter
	// live configuration: s is the version
	stale Gauge
}

type seriesKey struct {
	kind          bulwark.EventKind // the family's representative kind
	pattern, name string
}

// seriesCache maps keys to built series. Lookups read an immutable map
// through an atomic pointer, so the steady state takes no lock and
// allocates nothing; a new key copies the map under a mutex.
// (Copy-on-write is quadratic in the number of series, bounded by
// WithMaxInstances; it buys lookups with no lock.)
type seriesCache[V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[seriesKey]*V]
}

func (c *seriesCache[V]) load(k seriesKey) (*V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	return nil, false
}

// build returns the series of k, calling create to make it unless it
// exists. Creating happens under the mutex, so one key's series is made
// once (a backend's constructors run once per series, and the store gauge's
// initial 1 cannot land after a later event's value); lookups never wait
// for it.
func (c *seriesCache[V]) build(k seriesKey, create func() *V) *V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if prev, ok := (*old)[k]; ok {
			return prev
		}
	}
	v := create()
	next := map[seriesKey]*V{k: v}
	if old != nil {
		next = maps.Clone(*old)
		next[k] = v
	}
	c.m.Store(&next)
	return v
}

// Observer is a bulwark.Observer that turns events into the metrics of the
// table in the package documentation, written to a [Backend].
//
// Observe is safe for concurrent use and cheap: the series of a pattern
// instance are created the first time it reports and then found through a
// lock-free lookup, so observing allocates nothing in the steady state
// (unless the backend's instruments do).
type Observer struct {
	b            Backend
	nearLimit    float64
	maxInstances int

	instMu    sync.Mutex
	instances map[[2]string]struct{}

	decisions seriesCache[decisionSeries]
	breakers  seriesCache[breakerSeries]
	bulkheads seriesCache[bulkheadSeries]
	stores    seriesCache[storeSeries]
	others    seriesCache[oneSeries]
}

var _ bulwark.Observer = (*Observer)(nil)

// New returns an Observer writing to b. It calls b.Define once for every
// metric, in [MetricID] order, with the options applied, and returns the
// first error Define returns (wrapped). It returns an error wrapping
// bulwark.ErrInvalidConfig when b is nil (or a nil pointer) or an option
// is invalid; nil options are ignored.
//
// Backend packages wrap New: bulwarkprom.New(registerer) and
// bulwarkotel.New(meter) are what most programs call.
func New(b Backend, opts ...Option) (*Observer, error) {
	if isNil(b) {
		return nil, configError("telemetry: backend must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	for _, m := range o.metrics() {
		if err := b.Define(m); err != nil {
			return nil, fmt.Errorf("telemetry: defining %s: %w", m.Name, err)
		}
	}
	return &Observer{b: b, nearLimit: o.nearLimit, maxInstances: o.maxInstances, instances: make(map[[2]string]struct{})}, nil
}

// Metrics returns the definitions of every metric of the table, in
// [MetricID] order, with opts applied: what [New] gives [Backend.Define].
// Use it to document or pre-create what an observer will export. It
// returns an error wrapping bulwark.ErrInvalidConfig when an option is
// invalid.
func Metrics(opts ...Option) ([]Metric, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return o.metrics(), nil
}

// isNil reports whether b is nil or holds a nil pointer, map, slice,
// channel or func, whose methods would most likely panic.
func isNil(b Backend) bool {
	if b == nil {
		return true
	}
	switch v := reflect.ValueOf(b); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// Observe records e. Events of kinds the table does not know are ignored;
// a nil *Observer records nothing.
func (o *Observer) Observe(e bulwark.Event) {
	if o != nil {
		o.observe(e)
	}
}

// labelValues lists the label values of a series; invalid UTF-8 in a
// pattern or name (which Prometheus would refuse) is replaced.
func labelValues(pattern, name string, extra []string) []string {
	return append([]string{validUTF8(pattern), validUTF8(name)}, extra...)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// The constructors below ask the backend for one instrument and put a
// no-op in place of a nil one.

func (o *Observer) counter(id MetricID, pattern, name string, extra ...string) Counter {
	if v := o.b.Counter(id, labelValues(pattern, name, extra)); v != nil {
		return v
	}
	return nop{}
}

func (o *Observer) gauge(id MetricID, pattern, name string, extra ...string) Gauge {
	if v := o.b.Gauge(id, labelValues(pattern, name, extra)); v != nil {
		return v
	}
	return nop{}
}

func (o *Observer) upDown(id MetricID, pattern, name string, extra ...string) UpDown {
	if v := o.b.UpDown(id, labelValues(pattern, name, extra)); v != nil {
		return v
	}
	return nop{}
}

func (o *Observer) histogram(id MetricID, pattern, name string, extra ...string) Histogram {
	if v := o.b.Histogram(id, labelValues(pattern, name, extra)); v != nil {
		return v
	}
	return nop{}
}

// nop is every kind of instrument, recording nothing.
type nop struct{}

func (nop) Inc()            {}
func (nop) Dec()            {}
func (nop) Set(float64)     {}
func (nop) Observe(float64) {}

// admit returns the name to label a new series with: name itself while
// fewer than maxInstances (pattern, name) pairs were seen, else
// OverflowName.
func (o *Observer) admit(pattern, name string) string {
	o.instMu.Lock()
	defer o.instMu.Unlock()
	k := [2]string{pattern, name}
	if _, ok := o.instances[k]; ok {
		return name
	}
	if len(o.instances) >= o.maxInstances {
		return OverflowName
	}
	o.instances[k] = struct{}{}
	return name
}

func (o *Observer) observe(e bulwark.Event) {
	switch e.Kind {
	case bulwark.EventDecision:
		s := o.decision(e.Pattern, e.Name)
		a := b2i(e.Allowed)
		if e.Shadow {
			s.shadow[a].Inc()
			return
		}
		s.decisions[a][b2i(e.Degraded)].Inc()
		if e.Allowed && e.Limit > 0 && float64(max(e.Remaining, 0)) <= o.nearLimit*float64(e.Limit) {
			s.nearLimit.Inc()
		}
	case bulwark.EventBreakerTransition:
		s := o.breaker(e.Pattern, e.Name)
		from, to := stateIndex(e.From), stateIndex(e.To)
		if from >= 0 && to >= 0 && from != to {
			s.transitions[from][to].Inc()
		}
		s.show(to)
	case bulwark.EventBreakerRejected:
		s := o.breaker(e.Pattern, e.Name)
		s.rejected.Inc()
		s.show(stateIndex(e.To))
	case bulwark.EventBreakerOutcome:
		s := o.breaker(e.Pattern, e.Name)
		s.calls[b2i(e.Allowed)].Inc()
		s.show(stateIndex(e.To))
	case bulwark.EventBulkheadAcquired:
		s := o.bulkhead(e.Pattern, e.Name)
		s.inUse.Inc()
		s.wait[1].Observe(e.Duration.Seconds())
	case bulwark.EventBulkheadRejected:
		s := o.bulkhead(e.Pattern, e.Name)
		s.rejected.Inc()
		s.wait[0].Observe(e.Duration.Seconds())
	case bulwark.EventBulkheadReleased:
		o.bulkhead(e.Pattern, e.Name).inUse.Dec()
	case bulwark.EventBulkheadQueued:
		o.bulkhead(e.Pattern, e.Name).waiting.Inc()
	case bulwark.EventBulkheadDequeued:
		o.bulkhead(e.Pattern, e.Name).waiting.Dec()
	case bulwark.EventStoreCall:
		o.store(e.Pattern, e.Name).calls[b2i(e.Err == nil)].Observe(e.Duration.Seconds())
	case bulwark.EventStoreHealth:
		o.store(e.Pattern, e.Name).healthy.Set(float64(b2i(!e.Degraded)))
	case bulwark.EventRetry, bulwark.EventTimeout, bulwark.EventFallback, bulwark.EventHedge,
		bulwark.EventRejected, bulwark.EventLeaseLost:
		o.other(e.Kind, e.Pattern, e.Name).c.Inc()
	case bulwark.EventLimitChanged:
		o.other(e.Kind, e.Pattern, e.Name).s.Set(float64(e.Limit))
	case bulwark.EventCache:
		s := o.other(e.Kind, e.Pattern, e.Name)
		if e.Allowed {
			s.hit.Inc()
		} else {
			s.miss.Inc()
		}
	case bulwark.EventConfig:
		s := o.other(e.Kind, e.Pattern, e.Name)
		if e.Allowed || (e.Name == "" && e.Err == nil) {
			s.s.Set(float64(e.Limit))
		}
		if e.Name == "" && s.stale != nil {
			s.stale.Set(float64(b2i(e.Degraded)))
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func stateIndex(s bulwark.State) int {
	for i, st := range states {
		if st == s {
			return i
		}
	}
	return -1
}

func (o *Observer) decision(pattern, name string) *decisionSeries {
	k := seriesKey{bulwark.EventDecision, pattern, name}
	if s, ok := o.decisions.load(k); ok {
		return s
	}
	n := o.admit(pattern, name)
	if n != name {
		return o.decision(pattern, n)
	}
	return o.decisions.build(k, func() *decisionSeries {
		s := &decisionSeries{nearLimit: o.counter(DecisionsNearLimit, pattern, n)}
		for a := range 2 {
			for d := range 2 {
				s.decisions[a][d] = o.counter(Decisions, pattern, n, resultLabel(a), boolLabel[d])
			}
			s.shadow[a] = o.counter(ShadowDecisions, pattern, n, resultLabel(a))
		}
		return s
	})
}

func resultLabel(a int) string {
	if a == 1 {
		return allowed
	}
	return denied
}

func (o *Observer) breaker(pattern, name string) *breakerSeries {
	k := seriesKey{bulwark.EventBreakerTransition, pattern, name}
	if s, ok := o.breakers.load(k); ok {
		return s
	}
	n := o.admit(pattern, name)
	if n != name {
		return o.breaker(pattern, n)
	}
	return o.breakers.build(k, func() *breakerSeries {
		s := &breakerSeries{
			rejected: o.counter(BreakerRejected, pattern, n),
			calls: [2]Counter{
				o.counter(BreakerCalls, pattern, n, failure),
				o.counter(BreakerCalls, pattern, n, success),
			},
		}
		for i, from := range states {
			s.state[i] = o.gauge(BreakerState, pattern, n, from.String())
			for j, to := range states {
				if i != j {
					s.transitions[i][j] = o.counter(BreakerTransitions, pattern, n, from.String(), to.String())
				}
			}
		}
		return s
	})
}

func (o *Observer) bulkhead(pattern, name string) *bulkheadSeries {
	k := seriesKey{bulwark.EventBulkheadAcquired, pattern, name}
	if s, ok := o.bulkheads.load(k); ok {
		return s
	}
	n := o.admit(pattern, name)
	if n != name {
		return o.bulkhead(pattern, n)
	}
	return o.bulkheads.build(k, func() *bulkheadSeries {
		return &bulkheadSeries{
			inUse:   o.upDown(BulkheadInUse, pattern, n),
			waiting: o.upDown(BulkheadWaiting, pattern, n),
			wait: [2]Histogram{
				o.histogram(BulkheadWait, pattern, n, rejected),
				o.histogram(BulkheadWait, pattern, n, acquired),
			},
			rejected: o.counter(BulkheadRejected, pattern, n),
		}
	})
}

func (o *Observer) store(pattern, name string) *storeSeries {
	k := seriesKey{bulwark.EventStoreCall, pattern, name}
	if s, ok := o.stores.load(k); ok {
		return s
	}
	n := o.admit(pattern, name)
	if n != name {
		return o.store(pattern, n)
	}
	return o.stores.build(k, func() *storeSeries {
		s := &storeSeries{
			calls: [2]Histogram{
				o.histogram(StoreCallDuration, pattern, n, errLabel),
				o.histogram(StoreCallDuration, pattern, n, ok),
			},
			healthy: o.gauge(StoreHealthy, pattern, n),
		}
		// A store starts healthy and reports only changes: the gauge shows 1
		// from its first event until an EventStoreHealth says otherwise.
		s.healthy.Set(1)
		return s
	})
}

var otherMetric = map[bulwark.EventKind]MetricID{
	bulwark.EventRetry:        Retries,
	bulwark.EventTimeout:      Timeouts,
	bulwark.EventFallback:     Fallbacks,
	bulwark.EventHedge:        Hedges,
	bulwark.EventRejected:     Rejections,
	bulwark.EventLeaseLost:    LeasesLost,
	bulwark.EventLimitChanged: Limit,
	bulwark.EventCache:        CacheRequests,
	bulwark.EventConfig:       ConfigVersion,
}

func (o *Observer) other(kind bulwark.EventKind, pattern, name string) *oneSeries {
	k := seriesKey{kind, pattern, name}
	if s, ok := o.others.load(k); ok {
		return s
	}
	n := o.admit(pattern, name)
	if n != name {
		return o.other(kind, pattern, n)
	}
	return o.others.build(k, func() *oneSeries {
		s := &oneSeries{}
		switch id := otherMetric[kind]; kind {
		case bulwark.EventLimitChanged:
			s.s = o.gauge(id, pattern, n)
		case bulwark.EventCache:
			s.hit = o.counter(id, pattern, n, hit)
			s.miss = o.counter(id, pattern, n, miss)
		case bulwark.EventConfig:
			s.s = o.gauge(id, pattern, n)
			if n == "" { // the replica as a whole
				s.stale = o.gauge(ConfigStale, pattern, n)
			}
		default:
			s.c = o.counter(id, pattern, n)
		}
		return s
	})
}
