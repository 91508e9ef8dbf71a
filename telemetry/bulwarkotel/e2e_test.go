package bulwarkotel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkotel"
)

// TestMain checks for leaked goroutines, allowing go-redis the moment it
// takes to stop after Close (the end-to-end test uses Redis).
func TestMain(m *testing.M) { redistest.Main(m) }

// eventually polls cond until it holds: for what a background goroutine
// or a restarting server makes true. It never sleeps for correctness, only
// between looks.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// otelInt64 collects from r and returns the int64 sum or gauge point of
// metric with attributes kv (pairs, without the "bulwark." prefix).
func otelInt64(t *testing.T, r *sdkmetric.ManualReader, metric string, kv ...string) int64 {
	t.Helper()
	v, ok := otelPoint(t, r, metric, kv...)
	if !ok {
		t.Fatalf("no point %s%v", metric, kv)
	}
	return v
}

// otelPoint is otelInt64 reporting a missing point instead of failing.
func otelPoint(t *testing.T, r *sdkmetric.ManualReader, metric string, kv ...string) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attrs(kv...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metric {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				if p.Attributes.Equals(&want) {
					return p.Value, true
				}
			}
		}
	}
	return 0, false
}

// TestEndToEndLocal drives local patterns on a fake clock through an
// OpenTelemetry observer and reads the numbers back with a manual reader.
func TestEndToEndLocal(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	obs, err := bulwarkotel.New(provider.Meter("e2e"))
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(fakeclock.Epoch)
	ctx := context.Background()

	tb, err := local.NewTokenBucket(bulwark.Limit{Events: 2, Period: time.Hour}, local.WithClock(clk), local.WithObserver(obs), local.WithName("api"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tb.Allow(ctx, "tenant-1", 1); err != nil {
			t.Fatal(err)
		}
	}
	api := []string{"pattern", "token_bucket", "name", "api"}
	if got := otelInt64(t, reader, "bulwark.decisions", append(api, "result", "allowed", "degraded", "false")...); got != 2 {
		t.Errorf("allowed decisions = %d, want 2", got)
	}
	if got := otelInt64(t, reader, "bulwark.decisions", append(api, "result", "denied", "degraded", "false")...); got != 1 {
		t.Errorf("denied decisions = %d, want 1", got)
	}

	br, err := local.NewBreaker(bulwark.BreakerConfig{
		Window: time.Minute, MinimumCalls: 10, FailureRate: 1, ConsecutiveFailures: 2, OpenFor: time.Minute, HalfOpenCalls: 1,
	}, local.WithClock(clk), local.WithObserver(obs), local.WithName("payments"))
	if err != nil {
		t.Fatal(err)
	}
	pay := []string{"pattern", "breaker", "name", "payments"}
	done, err := br.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	// Known closed from the first outcome, before any transition.
	if got := otelInt64(t, reader, "bulwark.breaker.state", append(pay, "state", "closed")...); got != 1 {
		t.Errorf("state closed after the first outcome = %d, want 1", got)
	}
	for range 2 {
		done, err := br.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(false)
	}
	if _, err := br.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow after the trip: %v, want ErrOpen", err)
	}
	for _, tc := range []struct {
		metric string
		kv     []string
		want   int64
	}{
		{"bulwark.breaker.state", append(pay, "state", "open"), 1},
		{"bulwark.breaker.state", append(pay, "state", "closed"), 0},
		{"bulwark.breaker.transitions", append(pay, "from", "closed", "to", "open"), 1},
		{"bulwark.breaker.rejected", pay, 1},
		{"bulwark.breaker.calls", append(pay, "outcome", "failure"), 2},
		{"bulwark.breaker.calls", append(pay, "outcome", "success"), 1},
	} {
		if got := otelInt64(t, reader, tc.metric, tc.kv...); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.metric, tc.kv, got, tc.want)
		}
	}

	bh, err := local.NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Second, MaxWaiting: 1},
		local.WithClock(clk), local.WithObserver(obs), local.WithName("db"))
	if err != nil {
		t.Fatal(err)
	}
	db := []string{"pattern", "bulkhead", "name", "db"}
	hold, err := bh.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := bh.Acquire(ctx) // times out on the fake clock
		waited <- err
	}()
	clk.WaitTimers(1)
	eventually(t, "a caller waits", func() bool {
		v, ok := otelPoint(t, reader, "bulwark.bulkhead.waiting", db...)
		return ok && v == 1
	})
	if _, err := bh.Acquire(ctx); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire with the queue full: %v, want ErrBulkheadFull", err)
	}
	clk.Advance(time.Second)
	if err := <-waited; !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("waiter past MaxWait: %v, want ErrBulkheadFull", err)
	}
	hold()
	for _, tc := range []struct {
		metric string
		want   int64
	}{
		{"bulwark.bulkhead.in_use", 0},
		{"bulwark.bulkhead.waiting", 0},
		{"bulwark.bulkhead.rejected", 2},
	} {
		if got := otelInt64(t, reader, tc.metric, db...); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.metric, got, tc.want)
		}
	}
}

// otelHistCount collects from r and returns the number of observations of
// the histogram point of metric with attributes kv (0 when there is none).
func otelHistCount(t *testing.T, r *sdkmetric.ManualReader, metric string, kv ...string) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attrs(kv...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == metric {
				for _, p := range h.DataPoints {
					if p.Attributes.Equals(&want) {
						return p.Count
					}
				}
			}
		}
	}
	return 0
}

// TestEndToEndOnRedis attaches an OpenTelemetry observer to a real
// Redis-backed store and checks what it records for a token bucket and a
// breaker, then through an outage (degraded decisions, the store's
// health) and the recovery.
func TestEndToEndOnRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	client := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: srv.Addr()}, 0))
	t.Cleanup(func() { _ = client.Close() })
	prefix := redistest.Prefix(t, client)

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	obs, err := bulwarkotel.New(provider.Meter("e2e"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := distributed.New(client,
		distributed.WithPrefix(prefix),
		distributed.WithObserver(obs),
		distributed.WithTimeout(time.Second),
		distributed.WithFailureThreshold(1),
		distributed.WithRecoveryThreshold(1),
		distributed.WithProbeInterval(20*time.Millisecond),
		distributed.WithMinDegraded(0),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()

	tb, err := store.TokenBucket("api", bulwark.Limit{Events: 3, Period: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		d, err := tb.Allow(ctx, "tenant-42", 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 3; d.Allowed != want || d.Degraded {
			t.Fatalf("decision %d: %+v, want allowed %v, not degraded", i, d, want)
		}
	}
	api := []string{"pattern", "token_bucket", "name", "api"}
	with := func(base []string, kv ...string) []string { return append(append([]string(nil), base...), kv...) }
	for _, tc := range []struct {
		kv   []string
		want int64
	}{
		{with(api, "result", "allowed", "degraded", "false"), 3},
		{with(api, "result", "denied", "degraded", "false"), 2},
	} {
		if got := otelInt64(t, reader, "bulwark.decisions", tc.kv...); got != tc.want {
			t.Errorf("bulwark.decisions%v = %d, want %d", tc.kv, got, tc.want)
		}
	}
	// A counter never added to has no point (unlike a Prometheus child,
	// which shows 0).
	if v, ok := otelPoint(t, reader, "bulwark.decisions", with(api, "result", "allowed", "degraded", "true")...); ok && v != 0 {
		t.Errorf("degraded decisions before the outage = %d, want none", v)
	}
	if got := otelInt64(t, reader, "bulwark.decisions.near_limit", api...); got != 1 {
		t.Errorf("near_limit = %d, want 1", got)
	}

	// Breaker: three failures in a row trip it fleet-wide.
	br, err := store.Breaker("payments", bulwark.BreakerConfig{
		Window: time.Minute, MinimumCalls: 10, FailureRate: 1, ConsecutiveFailures: 3, OpenFor: time.Hour, HalfOpenCalls: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	pay := []string{"pattern", "breaker", "name", "payments"}
	for range 3 {
		done, err := br.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow on a closed breaker: %v", err)
		}
		done(false)
	}
	if err := br.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow after three failures: %v, want ErrOpen", err)
	}
	for _, tc := range []struct {
		metric string
		kv     []string
		want   int64
	}{
		{"bulwark.breaker.state", with(pay, "state", "open"), 1},
		{"bulwark.breaker.state", with(pay, "state", "closed"), 0},
		{"bulwark.breaker.transitions", with(pay, "from", "closed", "to", "open"), 1},
		{"bulwark.breaker.calls", with(pay, "outcome", "failure"), 3},
	} {
		if got := otelInt64(t, reader, tc.metric, tc.kv...); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.metric, tc.kv, got, tc.want)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	st := []string{"pattern", "store", "name", ""}
	okCalls := otelHistCount(t, reader, "bulwark.store.call.duration", with(st, "result", "ok")...)
	if okCalls == 0 {
		t.Error("bulwark.store.call.duration{ok} count = 0, want round trips")
	}
	if got := otelInt64(t, reader, "bulwark.store.healthy", st...); got != 1 {
		t.Errorf("store healthy before the outage = %d, want 1", got)
	}

	// Outage: decisions come from the local twin, flagged degraded.
	srv.Kill()
	for range 2 {
		d, err := tb.Allow(ctx, "tenant-42", 1)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Degraded {
			t.Fatalf("decision with Redis down: %+v, want degraded", d)
		}
	}
	if got := otelInt64(t, reader, "bulwark.store.healthy", st...); got != 0 {
		t.Errorf("store healthy in the outage = %d, want 0", got)
	}
	var degraded int64
	for _, result := range []string{"allowed", "denied"} {
		if v, ok := otelPoint(t, reader, "bulwark.decisions", with(api, "result", result, "degraded", "true")...); ok {
			degraded += v
		}
	}
	if degraded != 2 {
		t.Errorf("degraded decisions = %d, want 2", degraded)
	}
	if n := otelHistCount(t, reader, "bulwark.store.call.duration", with(st, "result", "error")...); n == 0 {
		t.Error("bulwark.store.call.duration{error} count = 0, want the failed call")
	}

	// Recovery: the prober finds Redis back and the gauge follows.
	srv.Restart()
	eventually(t, "the store recovers", func() bool { return otelInt64(t, reader, "bulwark.store.healthy", st...) == 1 })
	d, err := tb.Allow(ctx, "tenant-42", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Degraded {
		t.Errorf("decision after recovery: %+v, want from Redis", d)
	}
	if got := otelHistCount(t, reader, "bulwark.store.call.duration", with(st, "result", "ok")...); got <= okCalls {
		t.Errorf("store ok calls = %d after recovery, want more than %d", got, okCalls)
	}

	// The user's key is never an attribute value.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range pointAttributes(m.Data) {
				for _, kv := range set.ToSlice() {
					if strings.Contains(kv.Value.Emit(), "tenant") {
						t.Errorf("%s has attribute %s=%q: a user key", m.Name, kv.Key, kv.Value.Emit())
					}
				}
			}
		}
	}
}

// pointAttributes lists the attribute sets of the points of one metric.
func pointAttributes(data metricdata.Aggregation) []attribute.Set {
	var out []attribute.Set
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

// attrs builds the attribute set of pairs kv (names without the
// "bulwark." prefix).
func attrs(kv ...string) attribute.Set {
	var a []attribute.KeyValue
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, attribute.String(bulwarkotel.AttributePrefix+kv[i], kv[i+1]))
	}
	return attribute.NewSet(a...)
}
