package distributed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestMergedCallsDecideInTurn: queued calls of a token bucket or fixed
// window for one key and n go out as one script call, and each caller
// gets, field for field, the decision its local twin gives when the calls
// are made one after the other in the order they queued. Random limits,
// keys, sizes and clock steps; every round checks the pipeline holds one
// command per key.
func TestMergedCallsDecideInTurn(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			c, g := batchClient(t, addr)
			clk := fakeclock.New(fakeclock.Epoch)
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), distributed.WithClock(clk), distributed.WithMinTTL(time.Hour), m.opt)
			r := rand.New(rand.NewPCG(7, uint64(len(m.name))))
			for _, a := range algorithms {
				if !a.merges {
					continue
				}
				t.Run(a.name, func(t *testing.T) {
					ctx := context.Background()
					merged, admitted, denied := 0, 0, 0
					for seq := range 6 {
						l := randomLimit(r, a.bursty)
						name := fmt.Sprintf("merge%d", seq)
						lim, err := a.redis(s, name, l)
						if err != nil {
							t.Fatal(err)
						}
						twin, err := a.local(l, clk)
						if err != nil {
							t.Fatal(err)
						}
						clk.Set(fakeclock.Epoch.Add(time.Duration(r.Int64N(int64(time.Hour))) / time.Microsecond * time.Microsecond))
						for round := range 5 {
							keys := []string{"a", "b", "c"}[:1+r.IntN(3)]
							ns := map[string]int{}
							for _, k := range keys {
								ns[k] = 1
								if r.IntN(2) == 0 {
									ns[k] = 1 + r.IntN(min(a.maxN(l), 5))
								}
							}
							q := 2 + r.IntN(30)
							order := make([]string, q)
							used := map[string]bool{}
							for i := range order {
								order[i] = keys[r.IntN(len(keys))]
								used[order[i]] = true
							}
							before := len(g.pipelines())
							h := m.holdFirst(g)
							first := goAllow(ctx, lim, "held", 1)
							h.wait(t)
							rest := make([]chan allowResult, q)
							for i, k := range order {
								rest[i] = goAllow(ctx, lim, k, ns[k])
								waitQueued(t, s, i+1)
							}
							h.let(nil)
							check := func(i int, key string, n int, ch chan allowResult) {
								t.Helper()
								got := <-ch
								want, err := twin.Allow(ctx, key, n)
								if got.err != nil || err != nil {
									t.Fatalf("%v round %d call %d: redis %v, local %v", l, round, i, got.err, err)
								}
								if got.d != want {
									t.Fatalf("%v round %d call %d (key %q n %d of %v):\n  merged %+v\n  local  %+v", l, round, i, key, n, order, got.d, want)
								}
								if want.Allowed {
									admitted++
								} else {
									denied++
								}
							}
							check(-1, "held", 1, first)
							for i, k := range order {
								check(i, k, ns[k], rest[i])
							}
							if got, want := g.pipelines()[before:], m.want(len(used)); !slices.Equal(got, want) {
								t.Fatalf("round %d: pipelines of %v commands, want %v (one per key)", round, got, want)
							}
							merged += q - len(used)
							switch r.IntN(3) {
							case 0:
								clk.Advance(time.Duration(r.Int64N(int64(l.Period)/1000+1)) * time.Microsecond)
							case 1:
								clk.Advance(l.Period)
							}
						}
					}
					if admitted == 0 || denied == 0 || merged == 0 {
						t.Fatalf("admitted %d, denied %d, merged %d: the rounds did not exercise both outcomes", admitted, denied, merged)
					}
					t.Logf("%d decisions admitted, %d denied, %d calls merged into another's", admitted, denied, merged)
				})
			}
		})
	}
}

// TestMergedCallsRunAtTheLatestTime: with a client-side clock, calls that
// queued at different times and are merged are decided at the latest of
// their times, as one call made then would be.
func TestMergedCallsRunAtTheLatestTime(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			c, g := batchClient(t, addr)
			clk := fakeclock.New(fakeclock.Epoch)
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), distributed.WithClock(clk), distributed.WithMinTTL(time.Hour), m.opt)
			l := bulwark.Limit{Events: 2, Period: 2 * time.Second} // a token a second, 2 at most
			tb, err := s.TokenBucket("latest", l)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// Empty the bucket at t0.
			for range 2 {
				if d, err := tb.Allow(ctx, "k", 1); err != nil || !d.Allowed {
					t.Fatalf("filling call: %+v, %v", d, err)
				}
			}
			h := m.holdFirst(g)
			first := goAllow(ctx, tb, "held", 1)
			h.wait(t)
			a := goAllow(ctx, tb, "k", 1) // at t0: nothing left
			waitQueued(t, s, 1)
			clk.Advance(time.Second) // one token back
			b := goAllow(ctx, tb, "k", 1)
			waitQueued(t, s, 2)
			h.let(nil)
			if r := <-first; r.err != nil || !r.d.Allowed {
				t.Fatalf("held call: %+v, %v", r.d, r.err)
			}
			ra, rb := <-a, <-b
			if ra.err != nil || rb.err != nil {
				t.Fatal(ra.err, rb.err)
			}
			// At t0+1s, in queue order: a takes the token, b is denied for a second.
			if !ra.d.Allowed || ra.d.Remaining != 0 || rb.d.Allowed || rb.d.RetryAfter != time.Second {
				t.Fatalf("merged at the latest time: a %+v, b %+v; want a admitted and b denied with RetryAfter 1s", ra.d, rb.d)
			}
		})
	}
}
