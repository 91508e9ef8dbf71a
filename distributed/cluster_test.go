package distributed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestCluster runs the Redis-backed limiters against a three-master
// cluster: differential runs, hostile keys spread over every master,
// SCRIPT FLUSH on every node, and the TTL invariant.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0) // its own: the test flushes scripts
	cc := cl.Client(t)

	t.Run("differential", func(t *testing.T) {
		clk := fakeclock.New(fakeclock.Epoch)
		st, _, _ := testStore(t, cc, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
		for _, a := range algorithms {
			t.Run(a.name, func(t *testing.T) {
				var total counts
				for seed := range 6 {
					r := rand.New(rand.NewPCG(uint64(seed), 0xc1))
					seq := randomSequence(r, a, hostileKeys()[:8], 150, seed%3 == 2)
					total.add(runSequence(t, st, clk, a, fmt.Sprintf("cdiff-%d", seed), seq))
				}
				if total.allowed == 0 || total.denied == 0 {
					t.Errorf("sequences did not exercise both outcomes: %+v", total)
				}
			})
		}
	})

	t.Run("hostile keys on every master", func(t *testing.T) {
		st, _, prefix := testStore(t, cc)
		keys := hostileKeys()
		seen := map[string]bool{}
		for _, k := range keys {
			seen[k] = true
		}
		r := rand.New(rand.NewPCG(7, 7))
		for len(keys) < 230 {
			b := make([]byte, 1+r.IntN(30))
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			if !seen[string(b)] {
				seen[string(b)] = true
				keys = append(keys, string(b))
			}
		}
		l := bulwark.Limit{Events: 2, Period: time.Minute, Burst: 3}
		ctx := context.Background()
		for _, a := range algorithms {
			lim, err := a.redis(st, "hostile}{", l)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				d, err := lim.Allow(ctx, k, 1)
				if err != nil || d.Degraded || !d.Allowed {
					t.Fatalf("%s key %.20q: %+v, %v (health %v)", a.name, k, d, err, st.Healthy())
				}
			}
		}
		perMaster := map[string]int{}
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n := len(scanAll(ctx, t, m, prefix))
			mu.Lock()
			perMaster[m.Options().Addr] = n
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for addr, n := range perMaster {
			total += n
			if n == 0 {
				t.Errorf("master %s holds no key: keys are not spread", addr)
			}
		}
		if len(perMaster) != 3 || total != len(keys)*len(algorithms) {
			t.Errorf("keys per master %v, total %d; want 3 masters and %d keys", perMaster, total, len(keys)*len(algorithms))
		}
		redistest.CheckTTLs(t, cc, prefix, 2*time.Minute)
	})

	t.Run("SCRIPT FLUSH", func(t *testing.T) {
		st, _, _ := testStore(t, cc)
		ctx := context.Background()
		l := bulwark.Limit{Events: 5, Period: time.Hour}
		for _, a := range algorithms {
			lim, _ := a.redis(st, "flush", l)
			admitted := 0
			for i := range 8 {
				if i == 3 {
					for _, n := range cl.Nodes() {
						n.Do(t, "SCRIPT", "FLUSH")
					}
				}
				d, err := lim.Allow(ctx, "k", 1)
				if err != nil || d.Degraded {
					t.Fatalf("%s call %d: %+v, %v", a.name, i, d, err)
				}
				if d.Allowed {
					admitted++
				}
			}
			if admitted != 5 {
				t.Errorf("%s admitted %d, want 5", a.name, admitted)
			}
		}
	})

	t.Run("multi-limit", func(t *testing.T) {
		st, _, _ := testStore(t, cc)
		testMultiScenario(t, st)
	})
}

// scanAll returns the keys under prefix on one node.
func scanAll(ctx context.Context, t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
