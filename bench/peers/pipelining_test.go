package peers_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"
)

// BenchmarkPipelining compares, in one run, three ways of sending the
// store's decisions on one hot key: the store's batching lanes (default),
// no batching (one round trip per call), and go-redis's AutoPipeliner as
// the store's client (go-redis coalesces concurrent commands into
// pipelines itself; the store then sees a client type it does not know to
// honour deadlines, so it runs each call on a goroutine of its own, as for
// any such wrapper). Run with -count and benchstat -col /mode.
func BenchmarkPipelining(b *testing.B) {
	c := benchClient(b)
	ap, err := c.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ap.Close() })
	_, _, prefix := testStore(b, c)
	stores := map[string]*distributed.Store{}
	for mode, client := range map[string]distributed.Client{"lanes": c, "off": c, "autopipeline": ap} {
		opts := []distributed.Option{distributed.WithPrefix(prefix), distributed.WithTimeout(time.Second)}
		if mode == "off" {
			opts = append(opts, distributed.WithBatching(0))
		}
		st, err := distributed.New(client, opts...)
		if err != nil {
			b.Fatalf("%s: %v", mode, err)
		}
		b.Cleanup(func() { _ = st.Close() })
		stores[mode] = st
	}
	keys := []string{"hot"}
	for _, g := range benchConcurrency {
		for _, mode := range []string{"lanes", "off", "autopipeline"} {
			b.Run(fmt.Sprintf("goroutines=%d/mode=%s", g, mode), func(b *testing.B) {
				tb, err := stores[mode].TokenBucket("pipelining", redisBenchLimit)
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
					b.Errorf("%d degraded decisions", n)
				}
			})
		}
	}
}

var _ distributed.Client = (*redis.AutoPipeliner)(nil)
