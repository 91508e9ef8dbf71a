package peers_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

// The benchmarks run on the system clock, as in production. The limits are
// high enough that most calls are admitted.

var benchLimit = bulwark.PerSecond(1_000_000_000)

func benchOneKey(b *testing.B, lim bulwark.Limiter) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lim.Allow(ctx, "tenant-42", 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenBucketAllowOneKey(b *testing.B) {
	lim, err := local.NewTokenBucket(benchLimit)
	if err != nil {
		b.Fatal(err)
	}
	benchOneKey(b, lim)
}

// BenchmarkXRateAllow is the baseline for BenchmarkTokenBucketAllowOneKey:
// one golang.org/x/time/rate limiter, which serves a single key.
func BenchmarkXRateAllow(b *testing.B) {
	lim := rate.NewLimiter(rate.Limit(benchLimit.Events), benchLimit.Capacity())
	b.ReportAllocs()
	for b.Loop() {
		lim.Allow()
	}
}

func BenchmarkSlidingWindowAllowOneKey(b *testing.B) {
	lim, err := local.NewSlidingWindow(benchLimit)
	if err != nil {
		b.Fatal(err)
	}
	benchOneKey(b, lim)
}

func BenchmarkSlidingLogAllowOneKey(b *testing.B) {
	// A log holds every admission time of the last period: keep it small.
	lim, err := local.NewSlidingLog(bulwark.PerSecond(1000))
	if err != nil {
		b.Fatal(err)
	}
	benchOneKey(b, lim)
}

func BenchmarkFixedWindowAllowOneKey(b *testing.B) {
	lim, err := local.NewFixedWindow(benchLimit)
	if err != nil {
		b.Fatal(err)
	}
	benchOneKey(b, lim)
}

const localBenchKeys = 10_000

func benchKeyNames() []string {
	keys := make([]string, localBenchKeys)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	return keys
}

// benchParallel calls allow from every P, each goroutine walking the keys
// from its own offset.
func benchParallel(b *testing.B, allow func(key string)) {
	keys := benchKeyNames()
	for _, k := range keys { // every key exists before timing starts
		allow(k)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919) % localBenchKeys
		for pb.Next() {
			allow(keys[i])
			if i++; i == localBenchKeys {
				i = 0
			}
		}
	})
}

func BenchmarkTokenBucketAllowParallel10kKeys(b *testing.B) {
	lim, err := local.NewTokenBucket(benchLimit)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	benchParallel(b, func(key string) { _, _ = lim.Allow(ctx, key, 1) })
}

// BenchmarkXRateMutexMap10kKeys is the baseline for
// BenchmarkTokenBucketAllowParallel10kKeys: the common way to key
// golang.org/x/time/rate, a map of limiters behind one mutex.
func BenchmarkXRateMutexMap10kKeys(b *testing.B) {
	var mu sync.Mutex
	limiters := make(map[string]*rate.Limiter)
	benchParallel(b, func(key string) {
		mu.Lock()
		lim, ok := limiters[key]
		if !ok {
			lim = rate.NewLimiter(rate.Limit(benchLimit.Events), benchLimit.Capacity())
			limiters[key] = lim
		}
		mu.Unlock()
		lim.Allow()
	})
}
