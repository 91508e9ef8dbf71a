package peers_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// testStore opens a store on c (the default test Redis when nil) under a
// prefix of the test's own, closed at cleanup.
func testStore(tb testing.TB, c redis.UniversalClient, opts ...distributed.Option) (*distributed.Store, redis.UniversalClient, string) {
	tb.Helper()
	if c == nil {
		c = redistest.Default(tb)
	}
	prefix := redistest.Prefix(tb, c)
	s, err := distributed.New(c, append([]distributed.Option{distributed.WithPrefix(prefix), distributed.WithTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		tb.Fatalf("distributed.New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, c, prefix
}
