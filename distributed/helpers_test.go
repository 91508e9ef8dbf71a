package distributed_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
)

// testStore returns a store on the shared test Redis (or on c when given)
// with a prefix of the test's own, deleted at cleanup.
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

// algorithm pairs a Redis-backed limiter constructor with its local twin.
type algorithm struct {
	name   string
	redis  func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error)
	local  func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error)
	bursty bool // uses Limit.Burst
	merges bool // queued calls for one key and n share one script call
}

// sent is how many commands n queued calls of a for one key and n become.
func (a algorithm) sent(n int) int {
	if a.merges && n > 0 {
		return 1
	}
	return n
}

var algorithms = []algorithm{
	{
		name: "token_bucket", bursty: true, merges: true,
		redis: func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error) {
			return s.TokenBucket(name, l)
		},
		local: func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error) {
			return local.NewTokenBucket(l, local.WithClock(c))
		},
	},
	{
		name: "sliding_window",
		redis: func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error) {
			return s.SlidingWindow(name, l)
		},
		local: func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error) {
			return local.NewSlidingWindow(l, local.WithClock(c))
		},
	},
	{
		name: "sliding_log",
		redis: func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error) {
			return s.SlidingLog(name, l)
		},
		local: func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error) {
			return local.NewSlidingLog(l, local.WithClock(c))
		},
	},
	{
		name:   "fixed_window",
		merges: true,
		redis: func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error) {
			return s.FixedWindow(name, l)
		},
		local: func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error) {
			return local.NewFixedWindow(l, local.WithClock(c))
		},
	},
}

// maxN is the largest n a limiter of algorithm a with limit l accepts.
func (a algorithm) maxN(l bulwark.Limit) int {
	if a.bursty {
		return l.Capacity()
	}
	return l.Events
}

// hostileKeys are user keys that try to break the key layout.
func hostileKeys() []string {
	long := make([]byte, 10<<10)
	for i := range long {
		long[i] = byte('a' + i%26)
	}
	return []string{
		"", " ", "}", "{", "{}", "}{", "{a}{b}", "a}b", "{x}", "a:b", "a:b:c", ":", "::",
		"line\nbreak", "cr\r\nlf", "nul\x00byte", "\xff\xfe invalid utf8", "~", "!", "~AA", "!x",
		"*", "?", "[a-z]", "\\", "user:42", "x:tb:{y}", string(long), string(long) + "b",
		"ünïcödé", "tab\there",
	}
}
