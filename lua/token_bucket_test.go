package lua_test

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
)

// TestTokenBucketState: the single-key token bucket keeps its state as one
// number, an integer Redis encodes as such when E is 1, "T:r" otherwise;
// it reads the (at, ahead) state of earlier versions; the clock it is
// given decides.
func TestTokenBucketState(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	ctx := context.Background()
	const now = 1_700_000_000_000_000 // µs
	run := func(key string, n int, e, p, tau int64) []int64 {
		t.Helper()
		v, err := lua.TokenBucket.Run(ctx, c, []string{key}, now, 0, n, e, p, tau).Int64Slice()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return v
	}
	get := func(key string) string {
		t.Helper()
		return c.Get(ctx, key).Val()
	}

	// 10 per second, burst 3: E 1, P 100000 µs, tau 300000.
	k := prefix + "int{a}"
	if v := run(k, 2, 1, 100000, 300000); v[0] != 1 || v[1] != 200000 {
		t.Fatalf("first call: %v, want [1 200000]", v)
	}
	if got, want := get(k), "1700000000200000"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
	if enc := c.ObjectEncoding(ctx, k).Val(); enc != "int" {
		t.Errorf("OBJECT ENCODING %q, want int", enc)
	}
	if ttl := c.PTTL(ctx, k).Val().Milliseconds(); ttl <= 0 || ttl > 200 {
		t.Errorf("PTTL %dms, want (0, 200]", ttl)
	}
	// Two more tokens do not fit: denied with the debt, nothing written.
	if v := run(k, 2, 1, 100000, 300000); v[0] != 0 || v[1] != 200000 {
		t.Fatalf("second call: %v, want [0 200000]", v)
	}
	if got := get(k); got != "1700000000200000" {
		t.Errorf("a denial wrote %q", got)
	}

	// 3 per second: a token costs 1000000 units of 1/3 µs; one token puts
	// tat at now + 333333 µs and 1/3.
	k = prefix + "frac{a}"
	if v := run(k, 1, 3, 1000000, 3000000); v[0] != 1 || v[1] != 1000000 {
		t.Fatalf("fractional: %v, want [1 1000000]", v)
	}
	if got, want := get(k), "1700000000333333:1"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
	if v := run(k, 2, 3, 1000000, 3000000); v[0] != 1 || v[1] != 3000000 {
		t.Fatalf("fractional, two more: %v, want [1 3000000]", v)
	}
	if got, want := get(k), "1700000001000000"; got != want {
		t.Errorf("state %q, want %q (back to a whole number)", got, want)
	}

	// Earlier versions' state (at, ahead): at 1µs before now, 250000
	// units ahead, read as a debt of 250000 − 1 × E.
	for name, raw := range map[string]string{"text": "1699999999999999 250000", "packed": packDD(now-1, 250000)} {
		k = prefix + "old-" + name + "{a}"
		c.Set(ctx, k, raw, 0)
		if v := run(k, 1, 1, 100000, 300000); v[0] != 0 || v[1] != 249999 {
			t.Errorf("%s: %v, want [0 249999]", name, v)
		}
	}

	// The clock went back 1s: the debt grows by what it had repaid.
	k = prefix + "back{a}"
	run(k, 1, 1, 100000, 300000)
	v, err := lua.TokenBucket.Run(ctx, c, []string{k}, now-1_000_000, 0, 1, 1, 100000, 300000).Int64Slice()
	if err != nil || v[0] != 0 || v[1] != 1_100_000 {
		t.Errorf("clock back: %v, %v; want [0 1100000]", v, err)
	}
}

// packDD is struct.pack('dd', a, b) of Lua's struct library (little endian
// doubles on the servers that have it).
func packDD(a, b float64) string {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], math.Float64bits(a))
	binary.LittleEndian.PutUint64(buf[8:], math.Float64bits(b))
	return string(buf[:])
}
