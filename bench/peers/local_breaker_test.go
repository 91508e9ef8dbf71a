package peers_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"
)

// benchBreakerConfig never trips on successes, like gobreaker's default
// ReadyToTrip below.
func benchBreakerConfig() bulwark.BreakerConfig {
	c := bulwark.DefaultBreakerConfig()
	c.SlowCall = time.Second
	c.SlowCallRate = 1
	return c
}

func newBenchBreaker(b *testing.B, c bulwark.BreakerConfig) *local.Breaker {
	b.Helper()
	br, err := local.NewBreaker(c)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

// gobreakerSettings match benchBreakerConfig: a rolling 10s window in 1s
// buckets, 30s open, 3 half-open calls.
var gobreakerSettings = gobreaker.Settings{
	Name:         "bench",
	MaxRequests:  3,
	Interval:     10 * time.Second,
	BucketPeriod: time.Second,
	Timeout:      30 * time.Second,
}

func BenchmarkBreakerAllowDone(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		cfg  func() bulwark.BreakerConfig
	}{
		{"plain", bulwark.DefaultBreakerConfig},
		{"slowcall", benchBreakerConfig},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := benchOpaque[bulwark.Breaker](newBenchBreaker(b, bc.cfg()))
			b.ReportAllocs()
			for b.Loop() {
				done, err := br.Allow(ctx)
				if err != nil {
					b.Fatal(err)
				}
				done(true)
			}
		})
	}
}

func BenchmarkBreakerAllowDoneParallel(b *testing.B) {
	ctx := context.Background()
	br := benchOpaque[bulwark.Breaker](newBenchBreaker(b, bulwark.DefaultBreakerConfig()))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			done(true)
		}
	})
}

func BenchmarkBreakerAllowOpen(b *testing.B) {
	ctx := context.Background()
	br := newBenchBreaker(b, bulwark.DefaultBreakerConfig())
	br.Isolate()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(ctx); err == nil {
			b.Fatal("allowed while open")
		}
	}
}

func BenchmarkGobreakerExecute(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreakerSettings)
	req := func() (struct{}, error) { return struct{}{}, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cb.Execute(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGobreakerExecuteParallel(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreakerSettings)
	req := func() (struct{}, error) { return struct{}{}, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cb.Execute(req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGobreakerTwoStep(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreakerSettings)
	b.ReportAllocs()
	for b.Loop() {
		done, err := cb.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

func BenchmarkGobreakerTwoStepParallel(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreakerSettings)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := cb.Allow()
			if err != nil {
				b.Error(err)
				return
			}
			done(nil)
		}
	})
}

// benchOpaque hides the concrete type from the compiler, so calls through the
// interface are not devirtualised and inlined: the release or done func
// escapes as it does when a policy holds the pattern as an interface.
//
//go:noinline
func benchOpaque[T any](v T) T { return v }

func newBenchBulkhead(b *testing.B) *local.Bulkhead {
	b.Helper()
	bh, err := local.NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	return bh
}

func BenchmarkBulkheadAcquireRelease(b *testing.B) {
	ctx := context.Background()
	bh := benchOpaque[bulwark.Bulkhead](newBenchBulkhead(b))
	b.ReportAllocs()
	for b.Loop() {
		release, err := bh.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

func BenchmarkBulkheadAcquireReleaseParallel(b *testing.B) {
	ctx := context.Background()
	bh := benchOpaque[bulwark.Bulkhead](newBenchBulkhead(b))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := bh.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}

func BenchmarkBulkheadAcquireSlot(b *testing.B) {
	ctx := context.Background()
	bh := newBenchBulkhead(b)
	b.ReportAllocs()
	for b.Loop() {
		s, err := bh.AcquireSlot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

func BenchmarkBulkheadAcquireSlotParallel(b *testing.B) {
	ctx := context.Background()
	bh := newBenchBulkhead(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := bh.AcquireSlot(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			s.Release()
		}
	})
}

// failsafeBreaker is failsafe-go's breaker shaped like
// bulwark.DefaultBreakerConfig: a failure rate of 50% over at least 20
// calls in a 10s window, 30s open, 3 half-open trials.
func failsafeBreaker() circuitbreaker.CircuitBreaker[any] {
	return circuitbreaker.NewBuilder[any]().
		WithFailureRateThreshold(0.5, 20, 10*time.Second).
		WithDelay(30 * time.Second).
		WithSuccessThreshold(3).
		Build()
}

// BenchmarkFailsafePermit is failsafe-go's permit path, the peer of
// BenchmarkBreakerAllowDone/plain: TryAcquirePermit, then RecordSuccess.
// "time" is shaped like ours (a time-based failure rate, which reads the
// clock per outcome); "count" is failsafe-go's default breaker (trips on one
// failure among the last call, no clock), cheaper and not the same policy.
func BenchmarkFailsafePermit(b *testing.B) {
	for _, bc := range []struct {
		name string
		cb   func() circuitbreaker.CircuitBreaker[any]
	}{
		{"time", failsafeBreaker},
		{"count", circuitbreaker.NewWithDefaults[any]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cb := bc.cb()
			b.ReportAllocs()
			for b.Loop() {
				if !cb.TryAcquirePermit() {
					b.Fatal("no permit")
				}
				cb.RecordSuccess()
			}
		})
	}
}

func BenchmarkFailsafePermitParallel(b *testing.B) {
	cb := failsafeBreaker()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !cb.TryAcquirePermit() {
				b.Error("no permit")
				return
			}
			cb.RecordSuccess()
		}
	})
}
