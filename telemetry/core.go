package telemetry

import (
	"sync"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
)

// The instruments the core writes to. Prometheus children satisfy them
// directly; the OpenTelemetry observer wraps its instruments.
type (
	counter interface{ Inc() }
	setter  interface{ Set(float64) }
	upDown  interface {
		Inc()
		Dec()
	}
	histogram interface{ Observe(float64) }
)

// metricID names one metric of the table in doc.go.
type metricID int

const (
	mDecisions metricID = iota
	mNearLimit
	mShadow
	mBreakerState
	mBreakerTransitions
	mBreakerRejected
	mBreakerCalls
	mBulkheadInUse
	mBulkheadWait
	mBulkheadRejected
	mBulkheadWaiting
	mStoreCall
	mStoreHealthy
	mRetries
	mTimeouts
	mFallbacks
	mHedges
	mRejections
	mLimit
	mCache
	mLeasesLost
	numMetrics
)

// backend builds the instrument of metric id for the label values
// pattern, name and then the metric's own labels, in the table's order.
type backend interface {
	counter(id metricID, pattern, name string, extra ...string) counter
	setter(id metricID, pattern, name string, extra ...string) setter
	upDown(id metricID, pattern, name string, extra ...string) upDown
	histogram(id metricID, pattern, name string, extra ...string) histogram
}

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
	// OverflowName replaces the instance name once MaxInstances distinct
	// (pattern, name) pairs have been seen, so a misused name cannot grow
	// the number of series without bound.
	OverflowName = "_overflow"
)

var boolLabel = [2]string{"false", "true"}

var states = [3]bulwark.State{bulwark.Closed, bulwark.Open, bulwark.HalfOpen}

type decisionSeries struct {
	decisions [2][2]counter // [allowed][degraded]
	nearLimit counter
	shadow    [2]counter // [allowed]
}

type breakerSeries struct {
	state       [3]setter
	transitions [3][3]counter // [from][to]; nil on the diagonal
	rejected    counter
	calls       [2]counter // [success]

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
	inUse    upDown
	waiting  upDown
	wait     [2]histogram // [acquired]
	rejected counter
}

type storeSeries struct {
	calls   [2]histogram // [ok]
	healthy setter
}

type oneSeries struct {
	c counter
	s setter
	// cache results
	hit, miss counter
}

type seriesKey struct {
	kind          bulwark.EventKind // the family's representative kind
	pattern, name string
}

// seriesCache maps keys to built series. Lookups read an immutable map
// through an atomic pointer, so the steady state takes no lock and
// allocates nothing; a new key copies the map under a mutex.
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

func (c *seriesCache[V]) store(k seriesKey, v *V) *V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	var next map[seriesKey]*V
	if old != nil {
		if prev, ok := (*old)[k]; ok {
			return prev
		}
		next = make(map[seriesKey]*V, len(*old)+1)
		for kk, vv := range *old {
			next[kk] = vv
		}
	} else {
		next = make(map[seriesKey]*V, 1)
	}
	next[k] = v
	c.m.Store(&next)
	return v
}

// core turns events into measurements; the Prometheus and OpenTelemetry
// observers share it.
type core struct {
	b            backend
	nearLimit    float64
	maxInstances int

	instMu    sync.Mutex
	instances map[[2]string]struct{}
	full      atomic.Bool

	decisions seriesCache[decisionSeries]
	breakers  seriesCache[breakerSeries]
	bulkheads seriesCache[bulkheadSeries]
	stores    seriesCache[storeSeries]
	others    seriesCache[oneSeries]
}

func newCore(b backend, o *options) *core {
	return &core{b: b, nearLimit: o.nearLimit, maxInstances: o.maxInstances, instances: make(map[[2]string]struct{})}
}

// admit returns the name to label a new series with: name itself while
// fewer than maxInstances (pattern, name) pairs were seen, else
// OverflowName.
func (c *core) admit(pattern, name string) string {
	c.instMu.Lock()
	defer c.instMu.Unlock()
	k := [2]string{pattern, name}
	if _, ok := c.instances[k]; ok {
		return name
	}
	if len(c.instances) >= c.maxInstances {
		return OverflowName
	}
	c.instances[k] = struct{}{}
	return name
}

func (c *core) observe(e bulwark.Event) {
	switch e.Kind {
	case bulwark.EventDecision:
		s := c.decision(e.Pattern, e.Name)
		a := b2i(e.Allowed)
		if e.Shadow {
			s.shadow[a].Inc()
			return
		}
		s.decisions[a][b2i(e.Degraded)].Inc()
		if e.Allowed && e.Limit > 0 && float64(max(e.Remaining, 0)) <= c.nearLimit*float64(e.Limit) {
			s.nearLimit.Inc()
		}
	case bulwark.EventBreakerTransition:
		s := c.breaker(e.Pattern, e.Name)
		from, to := stateIndex(e.From), stateIndex(e.To)
		if from >= 0 && to >= 0 && from != to {
			s.transitions[from][to].Inc()
		}
		s.show(to)
	case bulwark.EventBreakerRejected:
		s := c.breaker(e.Pattern, e.Name)
		s.rejected.Inc()
		s.show(stateIndex(e.To))
	case bulwark.EventBreakerOutcome:
		s := c.breaker(e.Pattern, e.Name)
		s.calls[b2i(e.Allowed)].Inc()
		s.show(stateIndex(e.To))
	case bulwark.EventBulkheadAcquired:
		s := c.bulkhead(e.Pattern, e.Name)
		s.inUse.Inc()
		s.wait[1].Observe(e.Duration.Seconds())
	case bulwark.EventBulkheadRejected:
		s := c.bulkhead(e.Pattern, e.Name)
		s.rejected.Inc()
		s.wait[0].Observe(e.Duration.Seconds())
	case bulwark.EventBulkheadReleased:
		c.bulkhead(e.Pattern, e.Name).inUse.Dec()
	case bulwark.EventBulkheadQueued:
		c.bulkhead(e.Pattern, e.Name).waiting.Inc()
	case bulwark.EventBulkheadDequeued:
		c.bulkhead(e.Pattern, e.Name).waiting.Dec()
	case bulwark.EventStoreCall:
		c.store(e.Pattern, e.Name).calls[b2i(e.Err == nil)].Observe(e.Duration.Seconds())
	case bulwark.EventStoreHealth:
		c.store(e.Pattern, e.Name).healthy.Set(float64(b2i(!e.Degraded)))
	case bulwark.EventRetry, bulwark.EventTimeout, bulwark.EventFallback, bulwark.EventHedge,
		bulwark.EventRejected, bulwark.EventLeaseLost:
		c.other(e.Kind, e.Pattern, e.Name).c.Inc()
	case bulwark.EventLimitChanged:
		c.other(e.Kind, e.Pattern, e.Name).s.Set(float64(e.Limit))
	case bulwark.EventCache:
		s := c.other(e.Kind, e.Pattern, e.Name)
		if e.Allowed {
			s.hit.Inc()
		} else {
			s.miss.Inc()
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

func (c *core) decision(pattern, name string) *decisionSeries {
	k := seriesKey{bulwark.EventDecision, pattern, name}
	if s, ok := c.decisions.load(k); ok {
		return s
	}
	n := c.admit(pattern, name)
	if n != name {
		return c.decision(pattern, n)
	}
	s := &decisionSeries{nearLimit: c.b.counter(mNearLimit, pattern, n)}
	for a := range 2 {
		for d := range 2 {
			s.decisions[a][d] = c.b.counter(mDecisions, pattern, n, resultLabel(a), boolLabel[d])
		}
		s.shadow[a] = c.b.counter(mShadow, pattern, n, resultLabel(a))
	}
	return c.decisions.store(k, s)
}

func resultLabel(a int) string {
	if a == 1 {
		return allowed
	}
	return denied
}

func (c *core) breaker(pattern, name string) *breakerSeries {
	k := seriesKey{bulwark.EventBreakerTransition, pattern, name}
	if s, ok := c.breakers.load(k); ok {
		return s
	}
	n := c.admit(pattern, name)
	if n != name {
		return c.breaker(pattern, n)
	}
	s := &breakerSeries{
		rejected: c.b.counter(mBreakerRejected, pattern, n),
		calls: [2]counter{
			c.b.counter(mBreakerCalls, pattern, n, failure),
			c.b.counter(mBreakerCalls, pattern, n, success),
		},
	}
	for i, from := range states {
		s.state[i] = c.b.setter(mBreakerState, pattern, n, from.String())
		for j, to := range states {
			if i != j {
				s.transitions[i][j] = c.b.counter(mBreakerTransitions, pattern, n, from.String(), to.String())
			}
		}
	}
	return c.breakers.store(k, s)
}

func (c *core) bulkhead(pattern, name string) *bulkheadSeries {
	k := seriesKey{bulwark.EventBulkheadAcquired, pattern, name}
	if s, ok := c.bulkheads.load(k); ok {
		return s
	}
	n := c.admit(pattern, name)
	if n != name {
		return c.bulkhead(pattern, n)
	}
	return c.bulkheads.store(k, &bulkheadSeries{
		inUse:   c.b.upDown(mBulkheadInUse, pattern, n),
		waiting: c.b.upDown(mBulkheadWaiting, pattern, n),
		wait: [2]histogram{
			c.b.histogram(mBulkheadWait, pattern, n, rejected),
			c.b.histogram(mBulkheadWait, pattern, n, acquired),
		},
		rejected: c.b.counter(mBulkheadRejected, pattern, n),
	})
}

func (c *core) store(pattern, name string) *storeSeries {
	k := seriesKey{bulwark.EventStoreCall, pattern, name}
	if s, ok := c.stores.load(k); ok {
		return s
	}
	n := c.admit(pattern, name)
	if n != name {
		return c.store(pattern, n)
	}
	s := &storeSeries{
		calls: [2]histogram{
			c.b.histogram(mStoreCall, pattern, n, errLabel),
			c.b.histogram(mStoreCall, pattern, n, ok),
		},
		healthy: c.b.setter(mStoreHealthy, pattern, n),
	}
	// A store starts healthy and reports only changes: the gauge shows 1
	// from its first event until an EventStoreHealth says otherwise.
	s.healthy.Set(1)
	return c.stores.store(k, s)
}

var otherMetric = map[bulwark.EventKind]metricID{
	bulwark.EventRetry:        mRetries,
	bulwark.EventTimeout:      mTimeouts,
	bulwark.EventFallback:     mFallbacks,
	bulwark.EventHedge:        mHedges,
	bulwark.EventRejected:     mRejections,
	bulwark.EventLeaseLost:    mLeasesLost,
	bulwark.EventLimitChanged: mLimit,
	bulwark.EventCache:        mCache,
}

func (c *core) other(kind bulwark.EventKind, pattern, name string) *oneSeries {
	k := seriesKey{kind, pattern, name}
	if s, ok := c.others.load(k); ok {
		return s
	}
	n := c.admit(pattern, name)
	if n != name {
		return c.other(kind, pattern, n)
	}
	s := &oneSeries{}
	switch id := otherMetric[kind]; kind {
	case bulwark.EventLimitChanged:
		s.s = c.b.setter(id, pattern, n)
	case bulwark.EventCache:
		s.hit = c.b.counter(id, pattern, n, hit)
		s.miss = c.b.counter(id, pattern, n, miss)
	default:
		s.c = c.b.counter(id, pattern, n)
	}
	return c.others.store(k, s)
}
