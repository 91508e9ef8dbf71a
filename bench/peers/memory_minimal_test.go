package peers_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestMemoryVsMinimalScript: with a one-letter prefix and name, a token
// bucket key costs no more than the minimal integer GCRA script's
// (bench/evalsha/gcra_minimal.lua) on a key of the same length: both hold
// one integer.
func TestMemoryVsMinimalScript(t *testing.T) {
	src, err := os.ReadFile("../evalsha/gcra_minimal.lua")
	if err != nil {
		t.Fatal(err)
	}
	minimal := redis.NewScript(string(src))
	c := redistest.StartServer(t).Client(t)
	ctx := context.Background()
	st, err := distributed.New(c, distributed.WithPrefix("b"), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tb, err := st.TokenBucket("a", bulwark.PerSecond(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"u", "user-0000000042"} {
		for range 3 {
			if _, err := tb.Allow(ctx, user, 1); err != nil {
				t.Fatal(err)
			}
		}
		ours := "b:tb:{a:" + user + "}"
		theirs := "m" + strings.Repeat("x", len(ours)-1)
		for range 3 {
			// 100 per second: a token every 10000µs, burst 100.
			if err := minimal.Run(ctx, c, []string{theirs}, 10000, 990000).Err(); err != nil {
				t.Fatal(err)
			}
		}
		o, err := c.MemoryUsage(ctx, ours).Result()
		if err != nil {
			t.Fatal(err)
		}
		th, err := c.MemoryUsage(ctx, theirs).Result()
		if err != nil {
			t.Fatal(err)
		}
		enc := c.ObjectEncoding(ctx, ours).Val()
		t.Logf("key of %d bytes: ours %d bytes (%s), minimal script %d bytes (%s)", len(ours), o, enc, th, c.ObjectEncoding(ctx, theirs).Val())
		if o > th || enc != "int" {
			t.Errorf("key %q: ours %d bytes (%s), minimal %d bytes", ours, o, enc, th)
		}
	}
}
