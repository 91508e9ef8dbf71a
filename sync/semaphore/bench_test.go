package semaphore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// benchEnv opens n Weighted values of one semaphore on the shared test
// Redis for a benchmark, as n replicas would.
func benchEnv(b *testing.B, capacity int64, n int, opts ...Option) []*Weighted {
	b.Helper()
	c := redistest.Default(b)
	prefix := redistest.Prefix(b, c)
	ws := make([]*Weighted, n)
	for i := range ws {
		w, err := New(c, "bench", capacity, append([]Option{WithPrefix(prefix)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = w.Close() })
		ws[i] = w
	}
	return ws
}

// BenchmarkAcquireRelease is one uncontended Acquire plus Release: two
// script round trips.
func BenchmarkAcquireRelease(b *testing.B) {
	w := benchEnv(b, 10, 1)[0]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l, err := w.Acquire(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTryAcquireFull is a TryAcquire refused because the semaphore is
// full: one script round trip.
func BenchmarkTryAcquireFull(b *testing.B) {
	w := benchEnv(b, 1, 1)[0]
	ctx := context.Background()
	l, err := w.Acquire(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := w.TryAcquire(ctx, 1); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.StopTimer()
	_ = l.Release(ctx)
}

// BenchmarkWakeUpLatency measures the time from the start of a Release by
// one process to the return of an Acquire blocked in another (a separate
// Weighted with its own subscription, as in another replica), and reports
// its p50 and p99. The waiter's poll interval and the lease TTL are far
// above the measured times, so only the published wake-up can end a wait.
func BenchmarkWakeUpLatency(b *testing.B) {
	ws := benchEnv(b, 1, 2, WithPollInterval(time.Minute))
	holderSide, waiterSide := ws[0], ws[1]
	ctx := context.Background()
	held, err := holderSide.Acquire(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1024)
	type result struct {
		l   *Lease
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		go func() {
			l, err := waiterSide.Acquire(ctx, 1)
			done <- result{l, err, time.Now()}
		}()
		for {
			n, err := waiterSide.Waiting(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 1 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StartTimer()
		start := time.Now()
		if err := held.Release(ctx); err != nil {
			b.Fatal(err)
		}
		r := <-done
		if r.err != nil {
			b.Fatal(r.err)
		}
		lat = append(lat, r.at.Sub(start))
		b.StopTimer()
		// Hand the slot back to the holder side for the next round.
		if err := r.l.Release(ctx); err != nil {
			b.Fatal(err)
		}
		if held, err = holderSide.Acquire(ctx, 1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	_ = held.Release(ctx)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
}
