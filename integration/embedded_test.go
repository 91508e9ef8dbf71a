package integration_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// TestDifferentialEmbedded runs every algorithm against an embedded server
// (miniredis, the demo's default), whose Lua has no struct library: the
// token bucket then keeps its state as text. Local and Redis decisions must
// still be equal field for field on one fake clock.
func TestDifferentialEmbedded(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	clk := fakeclock.New(fakeclock.Epoch)
	st, err := distributed.New(c, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	type pair struct {
		name  string
		local func(bulwark.Limit) (bulwark.Limiter, error)
		redis func(string, bulwark.Limit) (bulwark.Limiter, error)
	}
	pairs := []pair{
		{"token_bucket",
			func(l bulwark.Limit) (bulwark.Limiter, error) { return local.NewTokenBucket(l, local.WithClock(clk)) },
			func(n string, l bulwark.Limit) (bulwark.Limiter, error) { return st.TokenBucket(n, l) }},
		{"sliding_window",
			func(l bulwark.Limit) (bulwark.Limiter, error) { return local.NewSlidingWindow(l, local.WithClock(clk)) },
			func(n string, l bulwark.Limit) (bulwark.Limiter, error) { return st.SlidingWindow(n, l) }},
		{"sliding_log",
			func(l bulwark.Limit) (bulwark.Limiter, error) { return local.NewSlidingLog(l, local.WithClock(clk)) },
			func(n string, l bulwark.Limit) (bulwark.Limiter, error) { return st.SlidingLog(n, l) }},
		{"fixed_window",
			func(l bulwark.Limit) (bulwark.Limiter, error) { return local.NewFixedWindow(l, local.WithClock(clk)) },
			func(n string, l bulwark.Limit) (bulwark.Limiter, error) { return st.FixedWindow(n, l) }},
	}
	limits := []bulwark.Limit{
		{Events: 5, Period: time.Second, Burst: 8},
		{Events: 3, Period: 250 * time.Millisecond},
		{Events: 100, Period: time.Minute, Burst: 10},
	}
	ctx := context.Background()
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			var allowed, denied int
			for li, l := range limits {
				if p.name != "token_bucket" {
					l.Burst = 0
				}
				loc, err := p.local(l)
				if err != nil {
					t.Fatal(err)
				}
				rem, err := p.redis("embedded-"+p.name+"-"+string(rune('a'+li)), l)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(uint64(li), 0xe3b))
				capacity := l.Events
				if l.Burst > capacity {
					capacity = l.Burst
				}
				for i := range 200 {
					clk.Advance(time.Duration(r.Int64N(int64(l.Period)/int64(l.Events)/1000+1)) * time.Microsecond)
					key := []string{"a", "b"}[r.IntN(2)]
					n := 1 + r.IntN(min(capacity, 3))
					ld, lerr := loc.Allow(ctx, key, n)
					rd, rerr := rem.Allow(ctx, key, n)
					if lerr != nil || rerr != nil {
						t.Fatalf("%v step %d: errors local %v, redis %v", l, i, lerr, rerr)
					}
					if ld != rd {
						t.Fatalf("%v step %d key %q n %d: local %+v, redis %+v", l, i, key, n, ld, rd)
					}
					if ld.Allowed {
						allowed++
					} else {
						denied++
					}
				}
			}
			if allowed == 0 || denied == 0 {
				t.Errorf("sequences did not exercise both outcomes: allowed %d, denied %d", allowed, denied)
			}
			if !st.Healthy() {
				t.Fatalf("store degraded on the embedded server: %v", st.HealthError())
			}
		})
	}
}
