package distributed_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// TestDifferentialMiniredis runs every algorithm against an embedded
// server (the demo's default), whose Lua has no struct library: the token
// bucket then keeps its state as text, with the same decisions.
func TestDifferentialMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	clk := fakeclock.New(fakeclock.Epoch)
	st, err := distributed.New(c, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			var total counts
			for seed := range 4 {
				r := rand.New(rand.NewPCG(uint64(seed), 0xe3b))
				seq := randomSequence(r, a, []string{"a", "b"}, 150, seed%4 == 3)
				total.add(runSequence(t, st, clk, a, fmt.Sprintf("mini-%d", seed), seq))
			}
			if total.allowed == 0 || total.denied == 0 {
				t.Errorf("sequences did not exercise both outcomes: %+v", total)
			}
			if !st.Healthy() {
				t.Fatalf("store degraded on the embedded server: %v", st.HealthError())
			}
		})
	}
}
