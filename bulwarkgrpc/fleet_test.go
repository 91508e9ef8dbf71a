package bulwarkgrpc

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFleetLimitAcrossThreeServers runs three gRPC servers, each with its
// own Redis client and Store on one prefix, as three replicas would: a
// fleet-wide limit of 10 per hour admits exactly 10 of 30 calls spread
// over them, and every other call is RESOURCE_EXHAUSTED with a pushback.
func TestFleetLimitAcrossThreeServers(t *testing.T) {
	shared := redistest.Default(t)
	prefix := redistest.Prefix(t, shared)
	addr := shared.(*redis.Client).Options().Addr
	var conns []*grpc.ClientConn
	for range 3 {
		client := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = client.Close() })
		store, err := distributed.New(client, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		lim, err := store.TokenBucket("grpc-fleet", bulwark.PerHour(10)) // no refill during the test
		if err != nil {
			t.Fatal(err)
		}
		ic := mustLimit(t, lim, WithKey(KeyByMethod()), WithDegradedTrailer(""))
		conns = append(conns, dial(t, startServer(t, newEcho(), serve(ic)...)))
	}
	ctx := ctxT(t)
	var ok, exhausted, degraded atomic.Int64
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err, _, trl := say(ctx, conns[i%3], "ok")
			if len(trl.Get(DefaultDegradedKey)) > 0 {
				degraded.Add(1)
			}
			switch status.Code(err) {
			case codes.OK:
				ok.Add(1)
			case codes.ResourceExhausted:
				if len(trl.Get(PushbackKey)) != 1 {
					t.Errorf("denial without pushback: %v", trl)
				}
				exhausted.Add(1)
			default:
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if degraded.Load() != 0 {
		t.Fatalf("%d decisions were degraded: Redis was not reached", degraded.Load())
	}
	if ok.Load() != 10 || exhausted.Load() != 20 {
		t.Fatalf("admitted %d and refused %d of 30, want exactly 10 and 20", ok.Load(), exhausted.Load())
	}
}

// TestPacedGRPCClient: a client with a pacer, calling a server that
// enforces 10 calls per second and says so in its RateLimit metadata,
// waits for the quota instead of being refused.
func TestPacedGRPCClient(t *testing.T) {
	fw, err := local.NewFixedWindow(bulwark.PerSecond(10))
	if err != nil {
		t.Fatal(err)
	}
	ic := mustLimit(t, fw, WithKey(KeyByMethod()), WithRateLimitMetadata("default", time.Second))
	pacer, err := bulwarkhttp.NewPacer(bulwarkhttp.PacerConfig{MaxWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, WithMaxRetries(0), WithPacer(pacer))
	conn := dial(t, startServer(t, newEcho(), serve(ic)...), withClient(cl)...)
	const n = 30
	var next, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				_, err, _, _ := say(context.Background(), conn, "ok")
				switch status.Code(err) {
				case codes.OK:
				case codes.ResourceExhausted:
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("paced gRPC client: %d calls in %v, %d RESOURCE_EXHAUSTED", n, took.Round(time.Millisecond), refused.Load())
	if refused.Load() > 5 {
		t.Errorf("paced client was refused %d times, want a handful (at most 5)", refused.Load())
	}
	if took < time.Duration(n/10-1)*time.Second || took > time.Duration(n/10)*2*time.Second+5*time.Second {
		t.Errorf("paced run took %v", took)
	}
}
