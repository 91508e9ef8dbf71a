package telemetry_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/telemetry"
	"github.com/bulwark-go/bulwark/telemetry/internal/eventscript"
)

func newObserver(t testing.TB, opts ...telemetry.Option) (*recorder, *telemetry.Observer) {
	t.Helper()
	r := newRecorder()
	o, err := telemetry.New(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r, o
}

func TestObserverRecordsEveryKind(t *testing.T) {
	r, o := newObserver(t)
	for _, e := range eventscript.Events() {
		o.Observe(e)
	}
	tb := "pattern=token_bucket,name=api"
	br := "pattern=breaker,name=payments"
	bh := "pattern=bulkhead,name=db"
	for _, tc := range []struct {
		key  string
		want float64
	}{
		{"bulwark_decisions_total{" + tb + ",result=allowed,degraded=false}", 3},
		{"bulwark_decisions_total{" + tb + ",result=allowed,degraded=true}", 1},
		{"bulwark_decisions_total{" + tb + ",result=denied,degraded=false}", 1},
		{"bulwark_decisions_total{" + tb + ",result=denied,degraded=true}", 0},
		{"bulwark_decisions_near_limit_total{" + tb + "}", 2},
		{"bulwark_shadow_decisions_total{" + tb + ",result=denied}", 1},
		{"bulwark_shadow_decisions_total{" + tb + ",result=allowed}", 0},
		{"bulwark_breaker_state{" + br + ",state=closed}", 0},
		{"bulwark_breaker_state{" + br + ",state=open}", 0},
		{"bulwark_breaker_state{" + br + ",state=half-open}", 1},
		{"bulwark_breaker_transitions_total{" + br + ",from=closed,to=open}", 1},
		{"bulwark_breaker_transitions_total{" + br + ",from=open,to=half-open}", 1},
		{"bulwark_breaker_transitions_total{" + br + ",from=half-open,to=closed}", 0},
		{"bulwark_breaker_rejected_total{" + br + "}", 1},
		{"bulwark_breaker_calls_total{" + br + ",outcome=success}", 1},
		{"bulwark_breaker_calls_total{" + br + ",outcome=failure}", 1},
		{"bulwark_bulkhead_in_use{" + bh + "}", 1},
		{"bulwark_bulkhead_waiting{" + bh + "}", 1},
		{"bulwark_bulkhead_rejected_total{" + bh + "}", 1},
		{"bulwark_store_healthy{pattern=store,name=redis}", 0},
		{"bulwark_retries_total{pattern=http_client,name=upstream}", 2},
		{"bulwark_hedges_total{pattern=http_client,name=upstream}", 1},
		{"bulwark_timeouts_total{pattern=http_timeout,name=}", 1},
		{"bulwark_fallbacks_total{pattern=fallback,name=catalog}", 1},
		{"bulwark_rejections_total{pattern=load_shedder,name=}", 1},
		{"bulwark_limit{pattern=adaptive,name=}", 35},
		{"bulwark_cache_requests_total{pattern=cache,name=,result=hit}", 2},
		{"bulwark_cache_requests_total{pattern=cache,name=,result=miss}", 1},
		{"bulwark_leases_lost_total{pattern=semaphore,name=jobs}", 1},
	} {
		if got := r.value(t, tc.key); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.key, got, tc.want)
		}
	}
	for _, tc := range []struct {
		key   string
		count int64
		sum   float64
	}{
		{"bulwark_store_call_duration_seconds{pattern=store,name=redis,result=ok}", 1, 0.0003},
		{"bulwark_store_call_duration_seconds{pattern=store,name=redis,result=error}", 1, 0.02},
		{"bulwark_bulkhead_wait_seconds{" + bh + ",result=acquired}", 2, 0.002},
		{"bulwark_bulkhead_wait_seconds{" + bh + ",result=rejected}", 1, 0.1},
	} {
		count, sum := r.hist(t, tc.key)
		if count != tc.count || math.Abs(sum-tc.sum) > 1e-12 {
			t.Errorf("%s: count %d sum %v, want %d and %v", tc.key, count, sum, tc.count, tc.sum)
		}
	}
	// The unknown kind made no series; the pattern instances made exactly
	// their families' series (4 decisions + 1 near-limit + 2 shadow ones for
	// the token bucket, 3 + 6 + 1 + 2 for the breaker, …).
	if got := r.keys("bulwark_"); len(got) != 4+1+2+3+6+1+2+1+1+2+1+2+1+1+1+1+1+1+1+2+1 {
		t.Errorf("%d series:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, k := range r.keys("") {
		if strings.Contains(k, "future") {
			t.Errorf("unknown event kind made series %s", k)
		}
	}
}

// New defines every metric once, in MetricID order, with the options
// applied.
func TestNewDefinesTheTable(t *testing.T) {
	r, _ := newObserver(t, telemetry.WithNamespace("shop"), telemetry.WithStoreBuckets(0.001, 0.01))
	if len(r.defined) != int(telemetry.ConfigStale)+1 {
		t.Fatalf("defined %d metrics, want %d", len(r.defined), int(telemetry.ConfigStale)+1)
	}
	names := map[string]bool{}
	for i, m := range r.defined {
		if m.ID != telemetry.MetricID(i) {
			t.Errorf("metric %d defined as id %d", i, m.ID)
		}
		if !strings.HasPrefix(m.Name, "shop_") || !strings.HasPrefix(m.OTelName, "shop.") {
			t.Errorf("names %q, %q do not carry the namespace", m.Name, m.OTelName)
		}
		if m.Name != "shop_"+m.ID.String() {
			t.Errorf("Name %q, ID.String %q", m.Name, m.ID.String())
		}
		if names[m.Name] || names[m.OTelName] {
			t.Errorf("name %s or %s defined twice", m.Name, m.OTelName)
		}
		names[m.Name], names[m.OTelName] = true, true
		if len(m.Labels) < 2 || m.Labels[0] != "pattern" || m.Labels[1] != "name" {
			t.Errorf("%s: labels %v do not start with pattern, name", m.Name, m.Labels)
		}
		if m.Help == "" || m.Unit == "" {
			t.Errorf("%s: help %q unit %q", m.Name, m.Help, m.Unit)
		}
		switch m.Kind {
		case telemetry.KindHistogram:
			if m.Unit != "s" || !strings.HasSuffix(m.Name, "_seconds") || len(m.Buckets) == 0 {
				t.Errorf("histogram %s: unit %q buckets %v", m.Name, m.Unit, m.Buckets)
			}
		case telemetry.KindCounter:
			if !strings.HasSuffix(m.Name, "_total") || m.Buckets != nil {
				t.Errorf("counter %s: buckets %v", m.Name, m.Buckets)
			}
		case telemetry.KindGauge, telemetry.KindUpDown:
			if m.Buckets != nil {
				t.Errorf("%s %s has buckets %v", m.Kind, m.Name, m.Buckets)
			}
		default:
			t.Errorf("%s: kind %v", m.Name, m.Kind)
		}
	}
	listed, err := telemetry.Metrics(telemetry.WithNamespace("shop"), telemetry.WithStoreBuckets(0.001, 0.01))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(listed, r.defined) {
		t.Errorf("Metrics lists\n%+v\nNew defined\n%+v", listed, r.defined)
	}
	if _, err := telemetry.Metrics(telemetry.WithMaxInstances(-1)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Metrics with an invalid option: %v", err)
	}
	d := r.defined[telemetry.Decisions]
	if d.Name != "shop_decisions_total" || d.OTelName != "shop.decisions" || d.Kind != telemetry.KindCounter ||
		!slices.Equal(d.Labels, []string{"pattern", "name", "result", "degraded"}) {
		t.Errorf("decisions: %+v", d)
	}
	if got := r.defined[telemetry.StoreCallDuration].Buckets; !slices.Equal(got, []float64{0.001, 0.01}) {
		t.Errorf("store buckets %v", got)
	}
	if got := r.defined[telemetry.BulkheadWait].Buckets; !slices.Equal(got, telemetry.DefaultWaitBuckets) {
		t.Errorf("wait buckets %v, want the defaults", got)
	}
	// The definitions are copies: a backend changing them changes nothing
	// for the next observer.
	r.defined[telemetry.BulkheadWait].Buckets[0] = 99
	r2, _ := newObserver(t)
	if got := r2.defined[telemetry.BulkheadWait].Buckets[0]; got != telemetry.DefaultWaitBuckets[0] || got == 99 {
		t.Errorf("wait buckets[0] = %v after a backend changed its copy", got)
	}
	if r2.defined[telemetry.Decisions].OTelName != "bulwark.decisions" {
		t.Errorf("default OTel name %q", r2.defined[telemetry.Decisions].OTelName)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := telemetry.New(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil backend: %v", err)
	}
	if _, err := telemetry.New((*recorder)(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("typed nil backend: %v", err)
	}
	for _, opt := range []telemetry.Option{
		telemetry.WithNamespace(""), telemetry.WithNamespace("9lives"), telemetry.WithNamespace("a-b"), telemetry.WithNamespace("a.b"),
		telemetry.WithNearLimit(0), telemetry.WithNearLimit(1), telemetry.WithNearLimit(math.NaN()), telemetry.WithMaxInstances(0),
		telemetry.WithStoreBuckets(), telemetry.WithStoreBuckets(0.1, 0.1), telemetry.WithWaitBuckets(-1),
		telemetry.WithWaitBuckets(math.Inf(1)),
	} {
		r := newRecorder()
		if _, err := telemetry.New(r, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("err = %v, want ErrInvalidConfig", err)
		}
		if len(r.defined) != 0 {
			t.Errorf("an invalid option still defined %d metrics", len(r.defined))
		}
	}
	// Nil options are ignored.
	if _, err := telemetry.New(newRecorder(), nil, telemetry.WithNearLimit(0.5), nil); err != nil {
		t.Errorf("nil options: %v", err)
	}
	// A backend refusing a metric makes New fail with its error.
	r := newRecorder()
	r.failing, r.failDefine = true, telemetry.BreakerState
	if _, err := telemetry.New(r); !errors.Is(err, errDefine) || !strings.Contains(err.Error(), "bulwark_breaker_state") {
		t.Errorf("Define error: %v", err)
	}
}

func TestNilObserverRecordsNothing(t *testing.T) {
	var o *telemetry.Observer
	for _, e := range eventscript.Events() {
		o.Observe(e)
	}
}

func TestNamespaceAndNearLimit(t *testing.T) {
	r, o := newObserver(t, telemetry.WithNamespace("shop"), telemetry.WithNearLimit(0.5))
	for _, e := range []bulwark.Event{
		{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 10, Remaining: 5},  // near
		{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 10, Remaining: 6},  // not near
		{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 0, Remaining: 0},   // no limit known
		{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: false, Limit: 10, Remaining: 0}, // denied
		{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 10, Remaining: -1}, // below zero counts as 0
	} {
		o.Observe(e)
	}
	if got := r.value(t, "shop_decisions_near_limit_total{pattern=fixed_window,name=}"); got != 2 {
		t.Errorf("near limit = %v, want 2", got)
	}
}

// After WithMaxInstances distinct (pattern, name) pairs, further ones are
// counted under OverflowName, and the backend makes no series for them.
func TestMaxInstancesBoundsSeries(t *testing.T) {
	r, o := newObserver(t, telemetry.WithMaxInstances(2))
	for _, name := range []string{"a", "b", "tenant-1", "tenant-2", "a", "\xff\xfe"} {
		o.Observe(bulwark.Event{Kind: bulwark.EventRetry, Pattern: "retry", Name: name})
	}
	for i := range 1000 {
		o.Observe(bulwark.Event{Kind: bulwark.EventTimeout, Pattern: "timeout", Name: fmt.Sprint("req-", i)})
	}
	want := []string{
		"bulwark_retries_total{pattern=retry,name=_overflow}",
		"bulwark_retries_total{pattern=retry,name=a}",
		"bulwark_retries_total{pattern=retry,name=b}",
	}
	if got := r.keys("bulwark_retries_total"); !slices.Equal(got, want) {
		t.Errorf("series %v, want %v", got, want)
	}
	if got := r.value(t, "bulwark_retries_total{pattern=retry,name=_overflow}"); got != 3 {
		t.Errorf("overflow = %v, want 3", got)
	}
	if got := r.keys("bulwark_timeouts_total"); !slices.Equal(got, []string{"bulwark_timeouts_total{pattern=timeout,name=_overflow}"}) {
		t.Errorf("timeout series %v", got)
	}
	if got := r.value(t, "bulwark_timeouts_total{pattern=timeout,name=_overflow}"); got != 1000 {
		t.Errorf("timeouts overflow = %v, want 1000", got)
	}
	for k, n := range r.made {
		if n != 1 {
			t.Errorf("series %s made %d times, want once", k, n)
		}
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	r, o := newObserver(t)
	o.Observe(bulwark.Event{Kind: bulwark.EventTimeout, Pattern: "time\xffout", Name: "bad\xffname"})
	if got := r.value(t, "bulwark_timeouts_total{pattern=time\ufffdout,name=bad\ufffdname}"); got != 1 {
		t.Errorf("timeouts = %v", got)
	}
}

// A backend may return nil instruments: those series are dropped, nothing
// panics.
func TestNilInstrumentsAreDropped(t *testing.T) {
	r := newRecorder()
	r.nilOnes = true
	o, err := telemetry.New(r)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, e := range eventscript.Events() {
			o.Observe(e)
		}
	}
	if len(r.made) == 0 {
		t.Error("the backend was never asked for an instrument")
	}
	for k, n := range r.made {
		if n != 1 {
			t.Errorf("series %s asked for %d times, want once", k, n)
		}
	}
}

// The breaker state gauge is right from a breaker's first event, whatever
// its kind, and follows the state later events carry.
func TestBreakerStateFromFirstEvent(t *testing.T) {
	r, o := newObserver(t)
	state := func(name string) string {
		t.Helper()
		var out []string
		for _, s := range []string{"closed", "open", "half-open"} {
			if r.value(t, "bulwark_breaker_state{pattern=breaker,name="+name+",state="+s+"}") == 1 {
				out = append(out, s)
			}
		}
		return strings.Join(out, ",")
	}
	// A replica that starts while the fleet's breaker is open hears of it
	// first through a rejection.
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: "breaker", Name: "a", To: bulwark.Open})
	// A closed breaker first reports an outcome.
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: "breaker", Name: "b", Allowed: true, To: bulwark.Closed})
	if got := state("a"); got != "open" {
		t.Errorf("a: state %q, want open", got)
	}
	if got := state("b"); got != "closed" {
		t.Errorf("b: state %q, want closed", got)
	}
	// The outcome that trips b carries the new state, as its transition does.
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerTransition, Pattern: "breaker", Name: "b", From: bulwark.Closed, To: bulwark.Open})
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Pattern: "breaker", Name: "b", To: bulwark.Open})
	if got := state("b"); got != "open" {
		t.Errorf("b after trip: state %q, want open", got)
	}
	// A half-open rejection moves the gauge even without a transition event
	// (a Redis-backed breaker learning the fleet's state from a reply).
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerRejected, Pattern: "breaker", Name: "b", To: bulwark.HalfOpen})
	if got := state("b"); got != "half-open" {
		t.Errorf("b: state %q, want half-open", got)
	}
	if n := len(r.keys("bulwark_breaker_state")); n != 6 {
		t.Errorf("breaker_state series = %d, want 6", n)
	}
	// A transition to a state the table does not know moves nothing.
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerTransition, Pattern: "breaker", Name: "b", From: bulwark.HalfOpen, To: bulwark.State(99)})
	if got := state("b"); got != "half-open" {
		t.Errorf("b after an unknown state: %q, want half-open", got)
	}
}

// The store's health gauge is 1 from its first call until a switch.
func TestStoreHealthyFromFirstCall(t *testing.T) {
	r, o := newObserver(t)
	const key = "bulwark_store_healthy{pattern=store,name=}"
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreCall, Pattern: "store", Duration: time.Millisecond})
	if got := r.value(t, key); got != 1 {
		t.Errorf("after a call: healthy = %v, want 1", got)
	}
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreHealth, Pattern: "store", Degraded: true})
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreCall, Pattern: "store", Err: errors.New("down")})
	if got := r.value(t, key); got != 0 {
		t.Errorf("degraded: healthy = %v, want 0", got)
	}
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreHealth, Pattern: "store"})
	if got := r.value(t, key); got != 1 {
		t.Errorf("recovered: healthy = %v, want 1", got)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	_, o := newObserver(t)
	events := eventscript.Events()
	for _, e := range events {
		o.Observe(e) // create the series
	}
	n := testing.AllocsPerRun(100, func() {
		for _, e := range events {
			o.Observe(e)
		}
	})
	if n != 0 {
		t.Errorf("allocs per %d events = %v, want 0", len(events), n)
	}
}

// Many goroutines reporting for the same and for new instances at once:
// every event is counted, every series made once, the bound holds.
func TestConcurrentObserve(t *testing.T) {
	r, o := newObserver(t, telemetry.WithMaxInstances(10))
	const goroutines, perG = 8, 200
	shared := []bulwark.Event{
		{Kind: bulwark.EventDecision, Pattern: "token_bucket", Name: "shared", Allowed: true, Limit: 10, Remaining: 9},
		{Kind: bulwark.EventBreakerOutcome, Pattern: "breaker", Name: "shared", Allowed: true, To: bulwark.Closed},
	}
	// The two shared instances report first, so they hold 2 of the 10.
	for _, e := range shared {
		o.Observe(e)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				o.Observe(shared[0])
				o.Observe(bulwark.Event{Kind: bulwark.EventHedge, Pattern: "hedge", Name: fmt.Sprint(g, "-", i%20)})
				o.Observe(shared[1])
			}
		})
	}
	wg.Wait()
	if got := r.value(t, "bulwark_decisions_total{pattern=token_bucket,name=shared,result=allowed,degraded=false}"); got != goroutines*perG+1 {
		t.Errorf("decisions = %v, want %d", got, goroutines*perG+1)
	}
	var hedges float64
	for _, k := range r.keys("bulwark_hedges_total") {
		hedges += r.value(t, k)
	}
	if hedges != goroutines*perG {
		t.Errorf("hedges = %v, want %d", hedges, goroutines*perG)
	}
	// token_bucket/shared and breaker/shared take 2 of the 10 instances;
	// 8 hedge names get series of their own, the rest overflow.
	if got := len(r.keys("bulwark_hedges_total")); got != 8+1 {
		t.Errorf("hedge series = %d, want 9: %v", got, r.keys("bulwark_hedges_total"))
	}
	if got := r.value(t, "bulwark_breaker_state{pattern=breaker,name=shared,state=closed}"); got != 1 {
		t.Errorf("breaker closed gauge = %v", got)
	}
	for k, n := range r.made {
		if n != 1 {
			t.Errorf("series %s made %d times, want once", k, n)
		}
	}
}

func TestKindAndMetricIDStrings(t *testing.T) {
	for k, want := range map[telemetry.Kind]string{
		telemetry.KindCounter: "counter", telemetry.KindGauge: "gauge", telemetry.KindUpDown: "updown",
		telemetry.KindHistogram: "histogram", telemetry.Kind(0): "unknown",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
	if got := telemetry.StoreHealthy.String(); got != "store_healthy" {
		t.Errorf("StoreHealthy = %q", got)
	}
	if got := telemetry.MetricID(-1).String(); got != "unknown" {
		t.Errorf("MetricID(-1) = %q", got)
	}
	if got := (telemetry.ConfigStale + 1).String(); got != "unknown" {
		t.Errorf("past the last = %q", got)
	}
}

// TestConfigEvents: a replica's EventConfig events become the
// config_version and config_stale gauges.
func TestConfigEvents(t *testing.T) {
	rec, o := newObserver(t)
	ev := func(name string, version int, allowed, degraded bool, err error) {
		o.Observe(bulwark.Event{Kind: bulwark.EventConfig, Pattern: "config", Name: name, Limit: version,
			Allowed: allowed, Degraded: degraded, Err: err})
	}
	ev("checkout", 3, true, false, nil)
	ev("checkout", 4, false, false, errors.New("refused")) // refused: still 3
	ev("", 4, true, false, nil)
	ev("", 4, false, true, errors.New("redis down"))
	if got := rec.value(t, "bulwark_config_version{pattern=config,name=checkout}"); got != 3 {
		t.Errorf("policy version %v, want 3", got)
	}
	if got := rec.value(t, "bulwark_config_version{pattern=config,name=}"); got != 4 {
		t.Errorf("replica version %v, want 4", got)
	}
	if got := rec.value(t, "bulwark_config_stale{pattern=config,name=}"); got != 1 {
		t.Errorf("stale %v, want 1", got)
	}
	ev("", 5, true, false, nil)
	if got := rec.value(t, "bulwark_config_stale{pattern=config,name=}"); got != 0 {
		t.Errorf("stale after catching up %v, want 0", got)
	}
	if got := rec.value(t, "bulwark_config_version{pattern=config,name=}"); got != 5 {
		t.Errorf("replica version after catching up %v, want 5", got)
	}
}

func BenchmarkObserve(b *testing.B) {
	_, o := newObserver(b)
	e := bulwark.Event{Kind: bulwark.EventDecision, Pattern: "token_bucket", Name: "api", Allowed: true, Limit: 100, Remaining: 50}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(e)
		}
	})
}
