package bulwarkotel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/telemetry"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkotel"
	"github.com/bulwark-go/bulwark/telemetry/internal/eventscript"
)

func newOTel(t testing.TB, opts ...telemetry.Option) (*sdkmetric.ManualReader, *bulwarkotel.Observer, func()) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	o, err := bulwarkotel.New(provider.Meter("github.com/bulwark-go/bulwark"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reader, o, func() { _ = provider.Shutdown(context.Background()) }
}

// collected indexes one collection by metric name.
type collected map[string]metricdata.Metrics

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func attrSet(kv ...string) attribute.Set {
	var a []attribute.KeyValue
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, attribute.String("bulwark."+kv[i], kv[i+1]))
	}
	return attribute.NewSet(a...)
}

// int64Point returns the value of the int64 sum or gauge point of metric
// name with attributes kv.
func (c collected) int64Point(t *testing.T, name string, kv ...string) int64 {
	t.Helper()
	m, ok := c[name]
	if !ok {
		t.Fatalf("metric %s not collected", name)
	}
	want := attrSet(kv...)
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("metric %s has data %T", name, m.Data)
	}
	for _, p := range points {
		if p.Attributes.Equals(&want) {
			return p.Value
		}
	}
	t.Fatalf("metric %s has no point with %v", name, kv)
	return 0
}

func (c collected) histogram(t *testing.T, name string, kv ...string) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := c[name]
	if !ok {
		t.Fatalf("metric %s not collected", name)
	}
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("metric %s has data %T", name, m.Data)
	}
	want := attrSet(kv...)
	for _, p := range d.DataPoints {
		if p.Attributes.Equals(&want) {
			return p
		}
	}
	t.Fatalf("metric %s has no point with %v", name, kv)
	return metricdata.HistogramDataPoint[float64]{}
}

func TestExportsEveryKind(t *testing.T) {
	reader, o, stop := newOTel(t)
	defer stop()
	for _, e := range eventscript.Events() {
		o.Observe(e)
	}
	c := collect(t, reader)
	tb := []string{"pattern", "token_bucket", "name", "api"}
	with := func(base []string, kv ...string) []string { return append(append([]string(nil), base...), kv...) }
	for _, tc := range []struct {
		metric string
		kv     []string
		want   int64
	}{
		{"bulwark.decisions", with(tb, "result", "allowed", "degraded", "false"), 3},
		{"bulwark.decisions", with(tb, "result", "allowed", "degraded", "true"), 1},
		{"bulwark.decisions", with(tb, "result", "denied", "degraded", "false"), 1},
		{"bulwark.decisions.near_limit", tb, 2},
		{"bulwark.decisions.shadow", with(tb, "result", "denied"), 1},
		{"bulwark.breaker.state", []string{"pattern", "breaker", "name", "payments", "state", "half-open"}, 1},
		{"bulwark.breaker.state", []string{"pattern", "breaker", "name", "payments", "state", "open"}, 0},
		{"bulwark.breaker.transitions", []string{"pattern", "breaker", "name", "payments", "from", "closed", "to", "open"}, 1},
		{"bulwark.breaker.transitions", []string{"pattern", "breaker", "name", "payments", "from", "open", "to", "half-open"}, 1},
		{"bulwark.breaker.rejected", []string{"pattern", "breaker", "name", "payments"}, 1},
		{"bulwark.breaker.calls", []string{"pattern", "breaker", "name", "payments", "outcome", "failure"}, 1},
		{"bulwark.bulkhead.in_use", []string{"pattern", "bulkhead", "name", "db"}, 1},
		{"bulwark.bulkhead.rejected", []string{"pattern", "bulkhead", "name", "db"}, 1},
		{"bulwark.bulkhead.waiting", []string{"pattern", "bulkhead", "name", "db"}, 1},
		{"bulwark.store.healthy", []string{"pattern", "store", "name", "redis"}, 0},
		{"bulwark.retries", []string{"pattern", "http_client", "name", "upstream"}, 2},
		{"bulwark.hedges", []string{"pattern", "http_client", "name", "upstream"}, 1},
		{"bulwark.timeouts", []string{"pattern", "http_timeout", "name", ""}, 1},
		{"bulwark.fallbacks", []string{"pattern", "fallback", "name", "catalog"}, 1},
		{"bulwark.rejections", []string{"pattern", "load_shedder", "name", ""}, 1},
		{"bulwark.limit", []string{"pattern", "adaptive", "name", ""}, 35},
		{"bulwark.cache.requests", []string{"pattern", "cache", "name", "", "result", "hit"}, 2},
		{"bulwark.cache.requests", []string{"pattern", "cache", "name", "", "result", "miss"}, 1},
		{"bulwark.leases.lost", []string{"pattern", "semaphore", "name", "jobs"}, 1},
	} {
		if got := c.int64Point(t, tc.metric, tc.kv...); got != tc.want {
			t.Errorf("%s %v = %d, want %d", tc.metric, tc.kv, got, tc.want)
		}
	}
	st := []string{"pattern", "store", "name", "redis"}
	if p := c.histogram(t, "bulwark.store.call.duration", with(st, "result", "ok")...); p.Count != 1 || p.Sum != 0.0003 {
		t.Errorf("store ok histogram: count %d sum %v", p.Count, p.Sum)
	}
	if p := c.histogram(t, "bulwark.store.call.duration", with(st, "result", "error")...); p.Count != 1 || p.Sum != 0.02 {
		t.Errorf("store error histogram: count %d sum %v", p.Count, p.Sum)
	}
	if p := c.histogram(t, "bulwark.bulkhead.wait.duration", "pattern", "bulkhead", "name", "db", "result", "acquired"); p.Count != 2 {
		t.Errorf("bulkhead wait histogram count %d", p.Count)
	}
	if m := c["bulwark.store.call.duration"]; m.Unit != "s" || m.Description == "" {
		t.Errorf("store histogram unit %q description %q", m.Unit, m.Description)
	}
	// The default store buckets reach down to 100µs.
	if p := c.histogram(t, "bulwark.store.call.duration", with(st, "result", "ok")...); len(p.Bounds) != len(telemetry.DefaultStoreBuckets) || p.Bounds[0] != 0.0001 {
		t.Errorf("bounds = %v", p.Bounds)
	}
}

func TestNamespace(t *testing.T) {
	reader, o, stop := newOTel(t, telemetry.WithNamespace("shop"))
	defer stop()
	o.Observe(bulwark.Event{Kind: bulwark.EventHedge, Pattern: "hedge"})
	c := collect(t, reader)
	if got := c.int64Point(t, "shop.hedges", "pattern", "hedge", "name", ""); got != 1 {
		t.Errorf("shop.hedges = %d", got)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := bulwarkotel.New(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil meter: %v", err)
	}
	if _, err := bulwarkotel.New((*struct{ metric.Meter })(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("typed nil meter: %v", err)
	}
	provider := sdkmetric.NewMeterProvider()
	defer func() { _ = provider.Shutdown(context.Background()) }()
	if _, err := bulwarkotel.New(provider.Meter("x"), telemetry.WithNearLimit(2)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad option: %v", err)
	}
	// A meter that cannot create an instrument makes New fail with its
	// error.
	if _, err := bulwarkotel.New(gaugeless{noop.NewMeterProvider().Meter("x")}); !errors.Is(err, errNoGauge) ||
		!strings.Contains(err.Error(), "bulwark.breaker.state") {
		t.Errorf("failing meter: %v", err)
	}
}

var errNoGauge = errors.New("gauges are not supported")

// gaugeless is a meter that refuses to create gauges.
type gaugeless struct{ metric.Meter }

func (gaugeless) Int64Gauge(string, ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	return nil, errNoGauge
}

func TestNilObserverRecordsNothing(t *testing.T) {
	var o *bulwarkotel.Observer
	for _, e := range eventscript.Events() {
		o.Observe(e)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	_, o, stop := newOTel(t)
	defer stop()
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

func BenchmarkObserve(b *testing.B) {
	_, o, stop := newOTel(b)
	defer stop()
	e := bulwark.Event{Kind: bulwark.EventDecision, Pattern: "token_bucket", Name: "api", Allowed: true, Limit: 100, Remaining: 50}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(e)
		}
	})
}
