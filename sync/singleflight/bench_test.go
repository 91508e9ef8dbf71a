package singleflight

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// One Do on the shared Redis: a fresh key each time (claim, run, complete:
// two script calls), and a key whose result is stored (one claim).
func BenchmarkDo(b *testing.B) {
	clients, prefix := replicas(b, 1)
	g, err := New(clients[0], "bench", Bytes{}, WithPrefix(prefix), WithResultTTL(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	value := []byte("value")
	fn := func(context.Context, uint64) ([]byte, error) { return value, nil }
	b.Run("fresh-key", func(b *testing.B) {
		var n atomic.Int64
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Do(ctx, "k"+strconv.FormatInt(n.Add(1), 10), fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stored-result", func(b *testing.B) {
		if _, err := g.Do(ctx, "stored", fn); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			r, err := g.Do(ctx, "stored", fn)
			if err != nil || !r.Remote {
				b.Fatalf("%+v, %v", r, err)
			}
		}
	})
}
