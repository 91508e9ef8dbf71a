package bulwarkprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
)

// TestMain checks for leaked goroutines, allowing go-redis the moment it
// takes to stop after Close (the end-to-end test uses Redis).
func TestMain(m *testing.M) { redistest.Main(m) }

// promValue reads one counter or gauge series of reg by metric name and
// label values (pairs of name, value; pattern and name included); it
// fails the test when the series does not exist.
func promValue(t *testing.T, reg prometheus.Gatherer, metric string, labels ...string) float64 {
	t.Helper()
	m := promSeries(t, reg, metric, labels...)
	if m == nil {
		t.Fatalf("no series %s%v", metric, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("series %s%v is neither a counter nor a gauge", metric, labels)
	return 0
}

// promCount returns the number of observations of one histogram series.
func promCount(t *testing.T, reg prometheus.Gatherer, metric string, labels ...string) uint64 {
	t.Helper()
	m := promSeries(t, reg, metric, labels...)
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram series %s%v", metric, labels)
	}
	return m.Histogram.GetSampleCount()
}

func promSeries(t *testing.T, reg prometheus.Gatherer, metric string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return m
		}
	}
	return nil
}

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

// TestEndToEndOnRedis attaches a Prometheus observer to a real
// Redis-backed store and checks the numbers it exports for a token bucket, a
// breaker and a bulkhead, then for an outage (degraded decisions, the
// store's health) and the recovery.
func TestEndToEndOnRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	client := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: srv.Addr()}, 0))
	t.Cleanup(func() { _ = client.Close() })
	prefix := redistest.Prefix(t, client)

	reg := prometheus.NewRegistry()
	obs, err := bulwarkprom.New(reg)
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

	// Token bucket: burst 3, no refill to speak of within the test.
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
		labels []string
		want   float64
	}{
		{with(api, "result", "allowed", "degraded", "false"), 3},
		{with(api, "result", "denied", "degraded", "false"), 2},
		{with(api, "result", "allowed", "degraded", "true"), 0},
	} {
		if got := promValue(t, reg, "bulwark_decisions_total", tc.labels...); got != tc.want {
			t.Errorf("decisions_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	// Remaining 0 of 3 is within 20% of the limit; 2 and 1 are not.
	if got := promValue(t, reg, "bulwark_decisions_near_limit_total", api...); got != 1 {
		t.Errorf("decisions_near_limit_total = %v, want 1", got)
	}

	// Breaker: three failures in a row trip it fleet-wide.
	br, err := store.Breaker("payments", bulwark.BreakerConfig{
		Window: time.Minute, MinimumCalls: 10, FailureRate: 1, ConsecutiveFailures: 3, OpenFor: time.Hour, HalfOpenCalls: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	pay := []string{"pattern", "breaker", "name", "payments"}
	for i := range 3 {
		done, err := br.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow on a closed breaker: %v", err)
		}
		done(false)
		if i == 0 {
			// The first outcome told the state before any transition. (After
			// the third the breaker may already have tripped: a failure that
			// can trip it is sent to Redis at once.)
			if got := promValue(t, reg, "bulwark_breaker_state", with(pay, "state", "closed")...); got != 1 {
				t.Errorf("breaker_state{closed} after the first outcome = %v, want 1", got)
			}
		}
	}
	// Flush returns once the batch went to Redis and its reply (open) was
	// applied.
	if err := br.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow after three failures: %v, want ErrOpen", err)
	}
	for _, tc := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"bulwark_breaker_state", with(pay, "state", "open"), 1},
		{"bulwark_breaker_state", with(pay, "state", "closed"), 0},
		{"bulwark_breaker_state", with(pay, "state", "half-open"), 0},
		{"bulwark_breaker_transitions_total", with(pay, "from", "closed", "to", "open"), 1},
		{"bulwark_breaker_calls_total", with(pay, "outcome", "failure"), 3},
		{"bulwark_breaker_calls_total", with(pay, "outcome", "success"), 0},
	} {
		if got := promValue(t, reg, tc.metric, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
		}
	}
	if got := promValue(t, reg, "bulwark_breaker_rejected_total", pay...); got < 1 {
		t.Errorf("breaker_rejected_total = %v, want at least 1", got)
	}
	// Closing it now keeps its local twin (which an outage would seed) out
	// of the transition counts.
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// Bulkhead: one slot, one waiter, a second would-be waiter turned away.
	bh, err := store.Bulkhead("db", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: 5 * time.Second, MaxWaiting: 1})
	if err != nil {
		t.Fatal(err)
	}
	db := []string{"pattern", "bulkhead", "name", "db"}
	hold, err := bh.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	var waiterRelease func()
	go func() {
		var err error
		waiterRelease, err = bh.Acquire(ctx)
		waited <- err
	}()
	eventually(t, "a caller waits", func() bool { return promValue(t, reg, "bulwark_bulkhead_waiting", db...) == 1 })
	if got := promValue(t, reg, "bulwark_bulkhead_in_use", db...); got != 1 {
		t.Errorf("bulkhead_in_use while held = %v, want 1", got)
	}
	if _, err := bh.Acquire(ctx); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire with the waiting queue full: %v, want ErrBulkheadFull", err)
	}
	hold()
	if err := <-waited; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	waiterRelease()
	for _, tc := range []struct {
		metric string
		want   float64
	}{
		{"bulwark_bulkhead_in_use", 0},
		{"bulwark_bulkhead_waiting", 0},
		{"bulwark_bulkhead_rejected_total", 1},
	} {
		if got := promValue(t, reg, tc.metric, db...); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.metric, got, tc.want)
		}
	}
	if n := promCount(t, reg, "bulwark_bulkhead_wait_seconds", with(db, "result", "acquired")...); n != 2 {
		t.Errorf("bulkhead_wait_seconds{acquired} count = %d, want 2", n)
	}
	if n := promCount(t, reg, "bulwark_bulkhead_wait_seconds", with(db, "result", "rejected")...); n != 1 {
		t.Errorf("bulkhead_wait_seconds{rejected} count = %d, want 1", n)
	}

	// Every Redis round trip so far was timed, and the store is healthy.
	st := []string{"pattern", "store", "name", ""}
	okCalls := promCount(t, reg, "bulwark_store_call_duration_seconds", with(st, "result", "ok")...)
	if okCalls == 0 {
		t.Error("store_call_duration_seconds{ok} count = 0, want round trips")
	}
	if got := promValue(t, reg, "bulwark_store_healthy", st...); got != 1 {
		t.Errorf("store_healthy before the outage = %v, want 1", got)
	}

	// Outage: the first failed call turns the store degraded; decisions
	// come from the local twin.
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
	if got := promValue(t, reg, "bulwark_store_healthy", st...); got != 0 {
		t.Errorf("store_healthy in the outage = %v, want 0", got)
	}
	degraded := promValue(t, reg, "bulwark_decisions_total", with(api, "result", "allowed", "degraded", "true")...) +
		promValue(t, reg, "bulwark_decisions_total", with(api, "result", "denied", "degraded", "true")...)
	if degraded != 2 {
		t.Errorf("degraded decisions = %v, want 2", degraded)
	}
	if n := promCount(t, reg, "bulwark_store_call_duration_seconds", with(st, "result", "error")...); n == 0 {
		t.Error("store_call_duration_seconds{error} count = 0, want the failed call")
	}

	// Recovery: the prober finds Redis back and the gauge follows.
	srv.Restart()
	eventually(t, "the store recovers", func() bool { return promValue(t, reg, "bulwark_store_healthy", st...) == 1 })
	d, err := tb.Allow(ctx, "tenant-42", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Degraded {
		t.Errorf("decision after recovery: %+v, want from Redis", d)
	}
	if got := promCount(t, reg, "bulwark_store_call_duration_seconds", with(st, "result", "ok")...); got <= okCalls {
		t.Errorf("store_call_duration_seconds{ok} count = %d after recovery, want more than %d", got, okCalls)
	}

	// The user's key is never a label.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "tenant") {
					t.Errorf("%s has label %s=%q: a user key", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	// Bounded series: e.g. one decisions series per result × degraded.
	if n, err := testutil.GatherAndCount(reg, "bulwark_decisions_total"); err != nil || n != 4 {
		t.Errorf("decisions_total series = %d (%v), want 4", n, err)
	}
}
