package bulwarkprom_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/telemetry"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
	"github.com/bulwark-go/bulwark/telemetry/internal/eventscript"
)

func newProm(t testing.TB, opts ...telemetry.Option) (*prometheus.Registry, *bulwarkprom.Observer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := bulwarkprom.New(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reg, p
}

func TestExportsEveryKind(t *testing.T) {
	reg, p := newProm(t)
	for _, e := range eventscript.Events() {
		p.Observe(e)
	}
	const want = `
# HELP bulwark_decisions_total Rate-limit decisions, by result (allowed, denied) and whether the shared store was unreachable (degraded).
# TYPE bulwark_decisions_total counter
bulwark_decisions_total{degraded="false",name="api",pattern="token_bucket",result="allowed"} 3
bulwark_decisions_total{degraded="false",name="api",pattern="token_bucket",result="denied"} 1
bulwark_decisions_total{degraded="true",name="api",pattern="token_bucket",result="allowed"} 1
bulwark_decisions_total{degraded="true",name="api",pattern="token_bucket",result="denied"} 0
# HELP bulwark_decisions_near_limit_total Allowed decisions that left at most the near-limit fraction (default 20%) of the limit.
# TYPE bulwark_decisions_near_limit_total counter
bulwark_decisions_near_limit_total{name="api",pattern="token_bucket"} 2
# HELP bulwark_shadow_decisions_total Decisions made in shadow mode (reported, not enforced), by result.
# TYPE bulwark_shadow_decisions_total counter
bulwark_shadow_decisions_total{name="api",pattern="token_bucket",result="allowed"} 0
bulwark_shadow_decisions_total{name="api",pattern="token_bucket",result="denied"} 1
# HELP bulwark_breaker_state 1 for the circuit breaker's current state (closed, open, half-open), 0 for the others; follows the state each transition, rejection and outcome reports.
# TYPE bulwark_breaker_state gauge
bulwark_breaker_state{name="payments",pattern="breaker",state="closed"} 0
bulwark_breaker_state{name="payments",pattern="breaker",state="half-open"} 1
bulwark_breaker_state{name="payments",pattern="breaker",state="open"} 0
# HELP bulwark_breaker_transitions_total Circuit breaker state changes, by from and to state.
# TYPE bulwark_breaker_transitions_total counter
bulwark_breaker_transitions_total{from="closed",name="payments",pattern="breaker",to="half-open"} 0
bulwark_breaker_transitions_total{from="closed",name="payments",pattern="breaker",to="open"} 1
bulwark_breaker_transitions_total{from="half-open",name="payments",pattern="breaker",to="closed"} 0
bulwark_breaker_transitions_total{from="half-open",name="payments",pattern="breaker",to="open"} 0
bulwark_breaker_transitions_total{from="open",name="payments",pattern="breaker",to="closed"} 0
bulwark_breaker_transitions_total{from="open",name="payments",pattern="breaker",to="half-open"} 1
# HELP bulwark_breaker_rejected_total Calls a circuit breaker refused.
# TYPE bulwark_breaker_rejected_total counter
bulwark_breaker_rejected_total{name="payments",pattern="breaker"} 1
# HELP bulwark_breaker_calls_total Call outcomes a circuit breaker recorded, by outcome (success, failure).
# TYPE bulwark_breaker_calls_total counter
bulwark_breaker_calls_total{name="payments",outcome="failure",pattern="breaker"} 1
bulwark_breaker_calls_total{name="payments",outcome="success",pattern="breaker"} 1
# HELP bulwark_bulkhead_in_use Bulkhead slots held now.
# TYPE bulwark_bulkhead_in_use gauge
bulwark_bulkhead_in_use{name="db",pattern="bulkhead"} 1
# HELP bulwark_bulkhead_waiting Callers waiting for a bulkhead slot now.
# TYPE bulwark_bulkhead_waiting gauge
bulwark_bulkhead_waiting{name="db",pattern="bulkhead"} 1
# HELP bulwark_bulkhead_rejected_total Calls a bulkhead turned away.
# TYPE bulwark_bulkhead_rejected_total counter
bulwark_bulkhead_rejected_total{name="db",pattern="bulkhead"} 1
# HELP bulwark_store_healthy 1 while the shared store answers (from its first event on), 0 while it is degraded and patterns decide locally.
# TYPE bulwark_store_healthy gauge
bulwark_store_healthy{name="redis",pattern="store"} 0
# HELP bulwark_retries_total Retries started by a retry policy or the HTTP client transport.
# TYPE bulwark_retries_total counter
bulwark_retries_total{name="upstream",pattern="http_client"} 2
# HELP bulwark_hedges_total Hedged attempts started.
# TYPE bulwark_hedges_total counter
bulwark_hedges_total{name="upstream",pattern="http_client"} 1
# HELP bulwark_timeouts_total Calls that ran past their time budget.
# TYPE bulwark_timeouts_total counter
bulwark_timeouts_total{name="",pattern="http_timeout"} 1
# HELP bulwark_fallbacks_total Failures replaced by a fallback.
# TYPE bulwark_fallbacks_total counter
bulwark_fallbacks_total{name="catalog",pattern="fallback"} 1
# HELP bulwark_rejections_total Calls rejected by a load shedder or an adaptive limiter.
# TYPE bulwark_rejections_total counter
bulwark_rejections_total{name="",pattern="load_shedder"} 1
# HELP bulwark_limit The current value of an adaptive limit.
# TYPE bulwark_limit gauge
bulwark_limit{name="",pattern="adaptive"} 35
# HELP bulwark_cache_requests_total Cache lookups, by result (hit, miss).
# TYPE bulwark_cache_requests_total counter
bulwark_cache_requests_total{name="",pattern="cache",result="hit"} 2
bulwark_cache_requests_total{name="",pattern="cache",result="miss"} 1
# HELP bulwark_leases_lost_total Distributed leases that could not be renewed.
# TYPE bulwark_leases_lost_total counter
bulwark_leases_lost_total{name="jobs",pattern="semaphore"} 1
`
	names := []string{
		"bulwark_decisions_total", "bulwark_decisions_near_limit_total", "bulwark_shadow_decisions_total",
		"bulwark_breaker_state", "bulwark_breaker_transitions_total", "bulwark_breaker_rejected_total",
		"bulwark_breaker_calls_total", "bulwark_bulkhead_in_use", "bulwark_bulkhead_waiting", "bulwark_bulkhead_rejected_total",
		"bulwark_store_healthy", "bulwark_retries_total", "bulwark_hedges_total", "bulwark_timeouts_total",
		"bulwark_fallbacks_total", "bulwark_rejections_total", "bulwark_limit", "bulwark_cache_requests_total",
		"bulwark_leases_lost_total",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestHistograms(t *testing.T) {
	reg, p := newProm(t, telemetry.WithStoreBuckets(0.001, 0.01), telemetry.WithWaitBuckets(0.05, 0.5))
	for _, e := range eventscript.Events() {
		p.Observe(e)
	}
	const want = `
# HELP bulwark_store_call_duration_seconds Round trips to the shared store (Redis), by result (ok, error).
# TYPE bulwark_store_call_duration_seconds histogram
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="error",le="0.001"} 0
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="error",le="0.01"} 0
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="error",le="+Inf"} 1
bulwark_store_call_duration_seconds_sum{name="redis",pattern="store",result="error"} 0.02
bulwark_store_call_duration_seconds_count{name="redis",pattern="store",result="error"} 1
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="ok",le="0.001"} 1
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="ok",le="0.01"} 1
bulwark_store_call_duration_seconds_bucket{name="redis",pattern="store",result="ok",le="+Inf"} 1
bulwark_store_call_duration_seconds_sum{name="redis",pattern="store",result="ok"} 0.0003
bulwark_store_call_duration_seconds_count{name="redis",pattern="store",result="ok"} 1
# HELP bulwark_bulkhead_wait_seconds Time spent waiting for a bulkhead slot, by result (acquired, rejected).
# TYPE bulwark_bulkhead_wait_seconds histogram
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="acquired",le="0.05"} 2
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="acquired",le="0.5"} 2
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="acquired",le="+Inf"} 2
bulwark_bulkhead_wait_seconds_sum{name="db",pattern="bulkhead",result="acquired"} 0.002
bulwark_bulkhead_wait_seconds_count{name="db",pattern="bulkhead",result="acquired"} 2
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="rejected",le="0.05"} 0
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="rejected",le="0.5"} 1
bulwark_bulkhead_wait_seconds_bucket{name="db",pattern="bulkhead",result="rejected",le="+Inf"} 1
bulwark_bulkhead_wait_seconds_sum{name="db",pattern="bulkhead",result="rejected"} 0.1
bulwark_bulkhead_wait_seconds_count{name="db",pattern="bulkhead",result="rejected"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "bulwark_store_call_duration_seconds", "bulwark_bulkhead_wait_seconds"); err != nil {
		t.Error(err)
	}
}

func TestNamespaceAndNearLimit(t *testing.T) {
	reg, p := newProm(t, telemetry.WithNamespace("shop"), telemetry.WithNearLimit(0.5))
	p.Observe(bulwark.Event{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 10, Remaining: 5})
	p.Observe(bulwark.Event{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 10, Remaining: 6})
	p.Observe(bulwark.Event{Kind: bulwark.EventDecision, Pattern: "fixed_window", Allowed: true, Limit: 0, Remaining: 0}) // no limit known
	const want = `
# HELP shop_decisions_near_limit_total Allowed decisions that left at most the near-limit fraction (default 20%) of the limit.
# TYPE shop_decisions_near_limit_total counter
shop_decisions_near_limit_total{name="",pattern="fixed_window"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shop_decisions_near_limit_total"); err != nil {
		t.Error(err)
	}
}

func TestBoundsInstances(t *testing.T) {
	reg, p := newProm(t, telemetry.WithMaxInstances(2))
	for _, name := range []string{"a", "b", "tenant-1", "tenant-2", "a", "\xff\xfe"} {
		p.Observe(bulwark.Event{Kind: bulwark.EventRetry, Pattern: "retry", Name: name})
	}
	const want = `
# HELP bulwark_retries_total Retries started by a retry policy or the HTTP client transport.
# TYPE bulwark_retries_total counter
bulwark_retries_total{name="_overflow",pattern="retry"} 3
bulwark_retries_total{name="a",pattern="retry"} 2
bulwark_retries_total{name="b",pattern="retry"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "bulwark_retries_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "bulwark_retries_total"); err != nil || n != 3 {
		t.Errorf("series = %d (%v), want 3", n, err)
	}
}

func TestInvalidUTF8NameDoesNotPanic(t *testing.T) {
	reg, p := newProm(t)
	p.Observe(bulwark.Event{Kind: bulwark.EventTimeout, Pattern: "timeout", Name: "bad\xffname"})
	const want = `
# HELP bulwark_timeouts_total Calls that ran past their time budget.
# TYPE bulwark_timeouts_total counter
bulwark_timeouts_total{name="bad<R>name",pattern="timeout"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.ReplaceAll(want, "<R>", "\ufffd")), "bulwark_timeouts_total"); err != nil {
		t.Error(err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := bulwarkprom.New(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil registerer: %v", err)
	}
	if _, err := bulwarkprom.New((*prometheus.Registry)(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("typed nil registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	for _, opt := range []telemetry.Option{
		telemetry.WithNamespace(""), telemetry.WithNamespace("9lives"), telemetry.WithNamespace("a-b"),
		telemetry.WithNearLimit(0), telemetry.WithNearLimit(1), telemetry.WithMaxInstances(0),
		telemetry.WithStoreBuckets(), telemetry.WithStoreBuckets(0.1, 0.1), telemetry.WithWaitBuckets(-1),
	} {
		if _, err := bulwarkprom.New(reg, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("err = %v, want ErrInvalidConfig", err)
		}
	}
	// A second observer on one registry needs its own namespace; the failed
	// attempt leaves nothing registered.
	if _, err := bulwarkprom.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := bulwarkprom.New(reg); err == nil {
		t.Error("duplicate registration succeeded")
	}
	p2, err := bulwarkprom.New(reg, telemetry.WithNamespace("second"))
	if err != nil {
		t.Fatal(err)
	}
	p2.Unregister()
	// A registration failing part-way leaves nothing behind: the metrics
	// before the clash are unregistered again.
	defs, err := telemetry.Metrics(telemetry.WithNamespace("third"))
	if err != nil {
		t.Fatal(err)
	}
	st := defs[telemetry.BreakerState]
	clash := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: st.Name, Help: st.Help}, st.Labels)
	if err := reg.Register(clash); err != nil {
		t.Fatal(err)
	}
	if _, err := bulwarkprom.New(reg, telemetry.WithNamespace("third")); err == nil || !strings.Contains(err.Error(), "third_breaker_state") {
		t.Errorf("clash with a registered metric: %v", err)
	}
	reg.Unregister(clash)
	if _, err := bulwarkprom.New(reg, telemetry.WithNamespace("third")); err != nil {
		t.Errorf("after a failed New, the metrics before the clash are still registered: %v", err)
	}
	if _, err := bulwarkprom.New(reg, telemetry.WithNamespace("second")); err != nil {
		t.Errorf("after Unregister: %v", err)
	}
}

func TestNilObserverDoesNothing(t *testing.T) {
	var o *bulwarkprom.Observer
	for _, e := range eventscript.Events() {
		o.Observe(e)
	}
	o.Unregister()
}

func TestObserveAllocatesNothing(t *testing.T) {
	_, p := newProm(t)
	events := eventscript.Events()
	for _, e := range events {
		p.Observe(e) // create the series
	}
	n := testing.AllocsPerRun(100, func() {
		for _, e := range events {
			p.Observe(e)
		}
	})
	if n != 0 {
		t.Errorf("allocs per %d events = %v, want 0", len(events), n)
	}
}

func BenchmarkObserve(b *testing.B) {
	p, err := bulwarkprom.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := bulwark.Event{Kind: bulwark.EventDecision, Pattern: "token_bucket", Name: "api", Allowed: true, Limit: 100, Remaining: 50}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Observe(e)
		}
	})
}
