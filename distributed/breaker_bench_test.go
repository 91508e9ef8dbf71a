package distributed_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// roundTrips is a go-redis hook counting the commands a client sends: one
// per Process call and one per pipeline (a pipeline is one round trip).
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkRedisBreakerClosed measures a protected call on a closed
// fleet-wide breaker (Allow, then done(true)) on three replicas with
// their own clients, and reports the Redis round trips per call ("rt/op",
// counted by a hook on every client: flushes, refreshes, anything).
func BenchmarkRedisBreakerClosed(b *testing.B) {
	c := redistest.Default(b)
	prefix := redistest.Prefix(b, c)
	addr := addrOf(b, c)
	var rt roundTrips
	var brs [3]*distributed.Breaker
	for i := range brs {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		client.AddHook(&rt)
		b.Cleanup(func() { _ = client.Close() })
		s, err := distributed.New(client, distributed.WithPrefix(prefix))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		if brs[i], err = s.Breaker("bench", fleetConfig()); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, br := range brs {
		if br.State(ctx).String() != "closed" {
			b.Fatal("not closed")
		}
	}
	var next atomic.Int64
	start := rt.n.Load()
	began := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		br := brs[next.Add(1)%3]
		for pb.Next() {
			done, err := br.Allow(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			done(true)
		}
	})
	b.StopTimer()
	// Include the batch still waiting: its flush is part of the calls' cost.
	for _, br := range brs {
		_ = br.Flush(ctx)
	}
	n := rt.n.Load() - start
	b.ReportMetric(float64(n)/float64(b.N), "rt/op")
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "calls/s")
}
