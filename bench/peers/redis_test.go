package peers_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// The benchmarks compare our token bucket with github.com/go-redis/redis_rate
// on the same Redis in the same run: Allow at 1, 16 and 64 goroutines, on
// one hot key and spread over 10k keys. Each reports ns/op (throughput),
// allocs/op and p99-µs, the 99th percentile latency of one call.

var benchConcurrency = []int{1, 16, 64}

// runBench spreads b.N calls of allow over goroutines, key i%len(keys) for
// call i, and reports the p99 latency.
func runBench(b *testing.B, goroutines int, keys []string, allow func(ctx context.Context, key string) error) {
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				start := time.Now()
				if err := allow(ctx, keys[i%len(keys)]); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

func benchKeys() map[string][]string {
	many := make([]string, 10_000)
	for i := range many {
		many[i] = fmt.Sprintf("user:%d", i)
	}
	return map[string][]string{"hot": {"hot"}, "10k": many}
}

// redisBenchLimit admits nearly everything, so both libraries do the same work
// (a write per call).
var redisBenchLimit = bulwark.PerSecond(1_000_000)

// benchClient returns the client both libraries use: one built with
// distributed.ClientOptions (ContextTimeoutEnabled, no retries), as the
// store's documentation recommends, on the Redis redistest.Default picks.
// With BULWARK_BENCH_CLIENT=plain it is go-redis's default client instead
// (context deadlines ignored: the store then runs each call on a goroutine
// of its own, see distributed.Store).
func benchClient(b *testing.B) *redis.Client {
	addr := redistest.Default(b).(*redis.Client).Options().Addr
	opts := &redis.Options{Addr: addr}
	if os.Getenv("BULWARK_BENCH_CLIENT") != "plain" {
		opts = distributed.ClientOptions(opts, time.Second)
	}
	c := redis.NewClient(opts)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func BenchmarkTokenBucketRedis(b *testing.B) {
	c := benchClient(b)
	opts := []distributed.Option{distributed.WithTimeout(time.Second)}
	if v := os.Getenv("BULWARK_BENCH_LANES"); v == "dispatch" {
		opts = append(opts, distributed.WithDispatcher())
	} else if v != "" {
		// Batching lanes (distributed.WithBatching); 0 turns batching off.
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("BULWARK_BENCH_LANES=%q: %v", v, err)
		}
		opts = append(opts, distributed.WithBatching(n))
	}
	st, _, _ := testStore(b, c, opts...)
	for _, ks := range []string{"hot", "10k"} {
		keys := benchKeys()[ks]
		for _, g := range benchConcurrency {
			b.Run(fmt.Sprintf("keys=%s/goroutines=%d", ks, g), func(b *testing.B) {
				tb, err := st.TokenBucket("bench", redisBenchLimit)
				if err != nil {
					b.Fatal(err)
				}
				var degraded atomic.Int64
				runBench(b, g, keys, func(ctx context.Context, key string) error {
					d, err := tb.Allow(ctx, key, 1)
					if d.Degraded {
						degraded.Add(1)
					}
					return err
				})
				if n := degraded.Load(); n > 0 {
					b.Errorf("%d degraded decisions: Redis did not answer within the store's budget", n)
				}
			})
		}
	}
}

func BenchmarkRedisRate(b *testing.B) {
	c := benchClient(b)
	prefix := redistest.Prefix(b, c)
	b.Cleanup(func() { deleteRedisRateKeys(b, c, prefix) })
	lim := redis_rate.NewLimiter(c)
	limit := redis_rate.PerSecond(redisBenchLimit.Events)
	for _, ks := range []string{"hot", "10k"} {
		keys := benchKeys()[ks]
		for i := range keys {
			keys[i] = prefix + keys[i]
		}
		for _, g := range benchConcurrency {
			b.Run(fmt.Sprintf("keys=%s/goroutines=%d", ks, g), func(b *testing.B) {
				runBench(b, g, keys, func(ctx context.Context, key string) error {
					_, err := lim.Allow(ctx, key, limit)
					return err
				})
			})
		}
	}
}

// deleteRedisRateKeys removes the keys redis_rate wrote ("rate:" + our
// test prefix + key).
func deleteRedisRateKeys(tb testing.TB, c redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, "rate:"+prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
	if err := iter.Err(); err != nil {
		tb.Logf("deleting redis_rate keys: %v", err)
	}
}

// TestMemoryPerKey compares MEMORY USAGE of one token-bucket key: ours
// stores 16 bytes (two doubles) where redis_rate stores a decimal float.
// Redis keys of equal length must cost us no more than redis_rate; the
// default layouts (ours carries a prefix, an algorithm and the limiter
// name) are reported for information.
func TestMemoryPerKey(t *testing.T) {
	// A server of its own: the shared one is busy with other packages'
	// tests, and MEMORY USAGE is read key by key.
	c := redistest.StartServer(t).Client(t)
	st, _, prefix := testStore(t, c)
	t.Cleanup(func() { deleteRedisRateKeys(t, c, prefix) })
	ctx := context.Background()
	tb, err := st.TokenBucket("api", bulwark.PerSecond(100))
	if err != nil {
		t.Fatal(err)
	}
	rl := redis_rate.NewLimiter(c)
	usage := func(key string) int64 {
		t.Helper()
		n, err := c.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %q: %v", key, err)
		}
		return n
	}
	for _, user := range []string{"u42", "user:1234567", "tenant-7f3a9c2e:user-000123456"} {
		for range 3 { // state after a few calls, as in steady use
			if _, err := tb.Allow(ctx, user, 1); err != nil {
				t.Fatal(err)
			}
		}
		ours := prefix + ":tb:{api:" + user + "}"
		// redis_rate stores "rate:" + key: pad its key to our key's length.
		theirsKey := prefix + user + strings.Repeat("x", len(ours)-len("rate:")-len(prefix)-len(user))
		for range 3 {
			if _, err := rl.Allow(ctx, theirsKey, redis_rate.PerSecond(100)); err != nil {
				t.Fatal(err)
			}
		}
		o, th := usage(ours), usage("rate:"+theirsKey)
		if len(ours) != len("rate:"+theirsKey) {
			t.Fatalf("key lengths differ: %d and %d", len(ours), len("rate:"+theirsKey))
		}
		if o > th {
			t.Errorf("user %q: MEMORY USAGE ours %d bytes, redis_rate %d bytes for keys of %d bytes", user, o, th, len(ours))
		}
		t.Logf("user %q, Redis keys of %d bytes: ours %d bytes, redis_rate %d bytes", user, len(ours), o, th)
	}
	memoryDefaultLayouts(t, c, usage)
}

// memoryDefaultLayouts reports MEMORY USAGE for the same user keys under
// each library's default layout ("bulwark:tb:{api:<key>}", 17 bytes more
// than the user key, and "rate:<key>", 5 more), and under our layout with
// a short user-chosen prefix ("b", 11 more), for user keys of 8 to 64
// bytes. Redis allocates keys in jemalloc size classes, so a longer key
// costs 0 or 16 more bytes depending on where the lengths fall.
func memoryDefaultLayouts(t *testing.T, c redis.UniversalClient, usage func(string) int64) {
	ctx := context.Background()
	rl := redis_rate.NewLimiter(c)
	run := redistest.Prefix(t, c)[len("bwtest:"):] // unique per run; no braces
	run = strings.NewReplacer(":", "").Replace(run)
	run = run[len(run)-8:]
	type layout struct {
		name                   string
		prefix                 string
		larger, equal, smaller int
		maxDiff                int64
	}
	layouts := []*layout{{name: "default prefix", prefix: distributed.DefaultPrefix}, {name: `prefix "b"`, prefix: "b"}}
	var cleanup []string
	t.Cleanup(func() { c.Del(ctx, cleanup...) })
	for _, lay := range layouts {
		st, err := distributed.New(c, distributed.WithPrefix(lay.prefix))
		if err != nil {
			t.Fatal(err)
		}
		tb, _ := st.TokenBucket("api", bulwark.PerSecond(100))
		for n := 8; n <= 64; n++ {
			user := run + strings.Repeat("u", n-len(run))
			ours := lay.prefix + ":tb:{api:" + user + "}"
			theirs := "rate:" + user
			cleanup = append(cleanup, ours, theirs)
			for range 3 {
				if _, err := tb.Allow(ctx, user, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := rl.Allow(ctx, user, redis_rate.PerSecond(100)); err != nil {
					t.Fatal(err)
				}
			}
			o, th := usage(ours), usage(theirs)
			switch {
			case o > th:
				lay.larger++
				lay.maxDiff = max(lay.maxDiff, o-th)
			case o == th:
				lay.equal++
			default:
				lay.smaller++
			}
			if n == 8 || n == 16 || n == 36 || n == 64 {
				t.Logf("%s, user key of %d bytes: ours %d bytes (key %d bytes), redis_rate %d bytes (key %d bytes)",
					lay.name, n, o, len(ours), th, len(theirs))
			}
		}
		_ = st.Close()
	}
	for _, lay := range layouts {
		t.Logf("%s, user keys of 8..64 bytes: ours larger for %d lengths (by at most %d bytes), equal for %d, smaller for %d",
			lay.name, lay.larger, lay.maxDiff, lay.equal, lay.smaller)
	}
}
