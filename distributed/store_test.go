package distributed_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
)

func TestNewRejectsBadConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: New does no I/O
	defer c.Close()
	if _, err := distributed.New(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("New(nil) error = %v, want ErrInvalidConfig", err)
	}
	bad := map[string]distributed.Option{
		"empty prefix":     distributed.WithPrefix(""),
		"brace in prefix":  distributed.WithPrefix("a{b"),
		"closing brace":    distributed.WithPrefix("a}"),
		"space in prefix":  distributed.WithPrefix("a b"),
		"glob in prefix":   distributed.WithPrefix("a*"),
		"newline":          distributed.WithPrefix("a\nb"),
		"long prefix":      distributed.WithPrefix(strings.Repeat("p", 129)),
		"negative timeout": distributed.WithTimeout(-time.Second),
		"negative min TTL": distributed.WithMinTTL(-time.Second),
		"unknown policy":   distributed.WithFailurePolicy(distributed.FailurePolicy(7)),
		"zero replicas":    distributed.WithReplicas(0),
		"zero threshold":   distributed.WithFailureThreshold(0),
		"zero recovery":    distributed.WithRecoveryThreshold(0),
		"tiny probe":       distributed.WithProbeInterval(time.Microsecond),
		"negative dwell":   distributed.WithMinDegraded(-time.Second),
		"max below min":    distributed.WithMaxDegraded(time.Millisecond),
		"zero in flight":   distributed.WithMaxInFlight(0),
	}
	for name, opt := range bad {
		if _, err := distributed.New(c, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
	s, err := distributed.New(c, distributed.WithPrefix("app:v1"), nil)
	if err != nil {
		t.Fatalf("New with a good prefix: %v", err)
	}
	if got := s.Prefix(); got != "app:v1" {
		t.Errorf("Prefix() = %q, want app:v1", got)
	}
	limits := []bulwark.Limit{
		{}, {Events: 1}, {Events: -1, Period: time.Second}, {Events: 1, Period: time.Nanosecond},
		{Events: 1, Period: 1500 * time.Nanosecond}, {Events: 1, Period: time.Second, Burst: -1},
		{Events: 1 << 40, Period: time.Hour},
	}
	for _, a := range algorithms {
		for _, l := range limits {
			if _, err := a.redis(s, "x", l); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Errorf("%s(%+v) error = %v, want ErrInvalidConfig", a.name, l, err)
			}
		}
	}
}

func TestAllowRejectsBadCalls(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	l := bulwark.Limit{Events: 5, Period: time.Second, Burst: 8}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, a := range algorithms {
		lim, err := a.redis(s, "bad-calls", l)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, -1, a.maxN(l) + 1, 1 << 40} {
			if _, err := lim.Allow(context.Background(), "k", n); !errors.Is(err, bulwark.ErrInvalidArgument) {
				t.Errorf("%s Allow(n=%d) error = %v, want ErrInvalidArgument", a.name, n, err)
			}
		}
		if _, err := lim.Allow(cancelled, "k", 1); !errors.Is(err, context.Canceled) {
			t.Errorf("%s Allow(cancelled ctx) error = %v, want context.Canceled", a.name, err)
		}
	}
	if keys := redistest.Keys(t, c, prefix); len(keys) != 0 {
		t.Errorf("rejected calls wrote keys: %q", keys)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tb, _ := s.TokenBucket("after-close", l)
	if _, err := tb.Allow(context.Background(), "k", 1); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Allow after Close error = %v, want ErrClosed", err)
	}
}

// drain admits requests of one token until the first denial and returns how
// many were admitted.
func drain(t *testing.T, lim bulwark.Limiter, key string) int {
	t.Helper()
	for i := 0; i < 10_000; i++ {
		d, err := lim.Allow(context.Background(), key, 1)
		if err != nil {
			t.Fatalf("Allow(%q): %v", key, err)
		}
		if d.Degraded {
			t.Fatalf("Allow(%q) degraded: %+v", key, d)
		}
		if !d.Allowed {
			return i
		}
	}
	t.Fatalf("Allow(%q) never denied", key)
	return 0
}

// TestHostileKeys: keys with braces, colons, newlines, binary bytes or 10
// KiB of text each get their own state, the Redis keys keep one hash tag
// built by the library, and their lengths stay bounded.
func TestHostileKeys(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	s, c, prefix := testStore(t, nil, distributed.WithClock(clk), distributed.WithMinTTL(time.Minute))
	l := bulwark.Limit{Events: 3, Period: time.Hour}
	keys := hostileKeys()
	for _, a := range algorithms {
		lim, err := a.redis(s, "hostile{name}:\n", l)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if got := drain(t, lim, k); got != 3 {
				t.Errorf("%s key %.20q admitted %d, want 3 (state shared with another key?)", a.name, k, got)
			}
		}
	}
	got := redistest.Keys(t, c, prefix)
	if want := len(keys) * len(algorithms); len(got) != want {
		t.Errorf("%d Redis keys, want %d (one per algorithm and user key)", len(got), want)
	}
	for _, k := range got {
		rest := strings.TrimPrefix(k, prefix)
		open, close := strings.IndexByte(rest, '{'), strings.IndexByte(rest, '}')
		if strings.Count(rest, "{") != 1 || strings.Count(rest, "}") != 1 || open > close || close != len(rest)-1 {
			t.Errorf("key %q: want exactly one hash tag {…} at the end", k)
		}
		if close-open < 2 {
			t.Errorf("key %q: empty hash tag", k)
		}
		if len(rest) > 120 {
			t.Errorf("key %q: %d bytes after the prefix, want a bounded length", k, len(rest))
		}
		if strings.ContainsAny(rest, "\n\r\x00 ") {
			t.Errorf("key %q holds control characters or spaces", k)
		}
	}
}

// TestTTLs: after traffic on every algorithm with the server's clock, every
// key under the prefix has a TTL no longer than its state can matter.
func TestTTLs(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	l := bulwark.Limit{Events: 5, Period: 2 * time.Second, Burst: 10}
	ctx := context.Background()
	for _, a := range algorithms {
		lim, err := a.redis(s, "ttl", l)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			if _, err := lim.Allow(ctx, string(rune('a'+i%7)), 1+i%3); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(redistest.Keys(t, c, prefix)); n != 7*len(algorithms) {
		t.Fatalf("%d keys, want %d", n, 7*len(algorithms))
	}
	// Longest state: a full token bucket refills in Burst/Events periods
	// (4s); a sliding window matters for two periods (4s); a log for one.
	redistest.CheckTTLs(t, c, prefix, 4*time.Second)
}

// TestScriptFlush: after SCRIPT FLUSH the next calls reload the scripts
// and still decide from Redis, with no error and no lost state.
func TestScriptFlush(t *testing.T) {
	srv := redistest.StartServer(t)
	s, _, _ := testStore(t, srv.Client(t))
	l := bulwark.Limit{Events: 10, Period: time.Hour}
	for _, a := range algorithms {
		lim, err := a.redis(s, "flush", l)
		if err != nil {
			t.Fatal(err)
		}
		admitted := 0
		for i := range 15 {
			if i == 4 || i == 9 {
				srv.Do(t, "SCRIPT", "FLUSH")
			}
			d, err := lim.Allow(context.Background(), "k", 1)
			if err != nil || d.Degraded {
				t.Fatalf("%s call %d after SCRIPT FLUSH: %+v, %v", a.name, i, d, err)
			}
			if d.Allowed {
				admitted++
			}
		}
		if admitted != 10 {
			t.Errorf("%s admitted %d of 15 across SCRIPT FLUSH, want 10", a.name, admitted)
		}
	}
	if !s.Healthy() {
		t.Error("store unhealthy after successful calls")
	}
}

// TestSlidingLogBounded: ten times the limit in the same microsecond admits
// exactly the limit, logs one unique member per token and never more than
// Events members, and the key expires.
func TestSlidingLogBounded(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	s, c, prefix := testStore(t, nil, distributed.WithClock(clk))
	const events = 50
	lim, err := s.SlidingLog("log", bulwark.Limit{Events: events, Period: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 3 {
		admitted := 0
		for i := range 10 * events / 3 {
			d, err := lim.Allow(ctx, "k", 1+i%5)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				admitted += 1 + i%5
			}
		}
		keys := redistest.Keys(t, c, prefix)
		if len(keys) != 1 {
			t.Fatalf("keys %q, want one", keys)
		}
		card, err := c.ZCard(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if admitted != events || card != events {
			t.Errorf("round %d: admitted %d tokens, ZCARD %d, want %d each", round, admitted, card, events)
		}
		clk.Advance(time.Minute) // the whole log leaves the window
	}
	redistest.CheckTTLs(t, c, prefix, time.Minute)
}

// TestNoDoubleApply: when the reply of a script is lost after the script
// ran, go-redis would retry the command and apply it again (MaxRetries 3 is
// its default). The store sends its scripts as non-retryable commands, so
// the tokens are taken once.
func TestNoDoubleApply(t *testing.T) {
	srv := redistest.StartServer(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	retrying := redis.NewClient(&redis.Options{
		Addr:            proxy.Addr(),
		ReadTimeout:     100 * time.Millisecond,
		MaxRetries:      3,
		MinRetryBackoff: time.Millisecond,
		MaxRetryBackoff: time.Millisecond,
	})
	t.Cleanup(func() { _ = retrying.Close() })
	s, _, prefix := testStore(t, retrying, distributed.WithTimeout(0), distributed.WithFailureThreshold(1))
	direct, err := distributed.New(srv.Client(t), distributed.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	l := bulwark.Limit{Events: 1, Period: 24 * time.Hour, Burst: 10}
	viaProxy, _ := s.TokenBucket("once", l)
	viaDirect, _ := direct.TokenBucket("once", l)
	ctx := context.Background()

	// Warm the script cache, then the pool: go-redis retries on other
	// pooled connections (new ones cannot complete their handshake while
	// replies are dropped), so the test needs idle connections to be
	// meaningful.
	if d, err := viaProxy.Allow(ctx, "k", 1); err != nil || !d.Allowed || d.Degraded {
		t.Fatalf("first call: %+v, %v", d, err)
	}
	warm(t, retrying, 5)
	proxy.DropReplies(true)
	d, err := viaProxy.Allow(ctx, "k", 1)
	proxy.DropReplies(false)
	if err != nil || !d.Degraded {
		t.Fatalf("call with a lost reply: %+v, %v; want a degraded decision", d, err)
	}
	if s.Healthy() {
		t.Error("Healthy() = true after a failed call")
	}
	d, err = viaDirect.Allow(ctx, "k", 1)
	if err != nil || d.Remaining != 7 {
		t.Errorf("after 3 calls (one with a lost reply): %+v, %v; want Remaining 7 (each call applied once)", d, err)
	}

	// The same lost reply with a plain go-redis script call is applied on
	// every retry: this is what the store's non-retryable commands prevent.
	args := []any{"", "0", 1, "1", "86400000000", "10"}
	key := []string{prefix + "plain"}
	warm(t, retrying, 5)
	proxy.DropReplies(true)
	_ = lua.TokenBucket.Run(ctx, retrying, key, args...).Err()
	proxy.DropReplies(false)
	v, err := lua.TokenBucket.Run(ctx, srv.Client(t), key, args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if v[1] >= 8 {
		t.Errorf("plain retried script: remaining %d after 2 calls; the demonstration expected retries to apply it more than once", v[1])
	}
	t.Logf("plain go-redis retries: remaining %d of 10 after 2 calls", v[1])
}

// warm leaves n idle connections in c's pool.
func warm(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	conns := make([]*redis.Conn, n)
	for i := range conns {
		conns[i] = c.Conn()
		if err := conns[i].Ping(context.Background()).Err(); err != nil {
			t.Fatalf("warming the pool: %v", err)
		}
	}
	for _, cn := range conns {
		_ = cn.Close()
	}
}

// TestDegradedWhenDown: with Redis gone the limiters answer from their
// local twins, flagged Degraded, and return to Redis when it is back.
func TestDegradedWhenDown(t *testing.T) {
	srv := redistest.StartServer(t)
	client := srv.Client(t, func(o *redis.Options) {
		o.MaxRetries = -1
		o.DialTimeout = 200 * time.Millisecond
		o.ContextTimeoutEnabled = true
	})
	s, _, _ := testStore(t, client, distributed.WithTimeout(200*time.Millisecond),
		distributed.WithProbeInterval(20*time.Millisecond), distributed.WithMinDegraded(0))
	l := bulwark.Limit{Events: 3, Period: time.Hour}
	ctx := context.Background()
	for _, a := range algorithms {
		lim, _ := a.redis(s, "down", l)
		if d, err := lim.Allow(ctx, "k", 1); err != nil || d.Degraded || !d.Allowed {
			t.Fatalf("%s before the kill: %+v, %v", a.name, d, err)
		}
	}
	srv.Kill()
	for _, a := range algorithms {
		lim, _ := a.redis(s, "down", l)
		var got []bool
		for range 4 {
			d, err := lim.Allow(ctx, "k", 1)
			if err != nil || !d.Degraded || d.Limit != 3 {
				t.Fatalf("%s with Redis down: %+v, %v; want a degraded decision", a.name, d, err)
			}
			got = append(got, d.Allowed)
		}
		// The local twin starts from its own (empty) state: 3 admitted.
		if want := []bool{true, true, true, false}; !equalBools(got, want) {
			t.Errorf("%s degraded decisions %v, want %v", a.name, got, want)
		}
	}
	if s.Healthy() {
		t.Error("Healthy() = true with Redis down")
	}
	srv.Restart()
	tb, _ := s.TokenBucket("down", l)
	waitHealthy(t, s, 10*time.Second) // the prober finds Redis back
	d, err := tb.Allow(ctx, "fresh", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Degraded || !s.Healthy() {
		t.Errorf("after restart: %+v, healthy %v; want Redis decisions again", d, s.Healthy())
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestObserver: the store reports each round trip and each decision,
// without the user's key.
func TestObserver(t *testing.T) {
	var mu sync.Mutex
	var events []bulwark.Event
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	s, _, _ := testStore(t, nil, distributed.WithObserver(obs))
	tb, _ := s.TokenBucket("observed", bulwark.Limit{Events: 1, Period: time.Hour})
	for range 2 {
		if _, err := tb.Allow(context.Background(), "secret-user", 1); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var calls, allowed, denied int
	for _, e := range events {
		switch e.Kind {
		case bulwark.EventStoreCall:
			calls++
			if e.Err != nil || e.Duration <= 0 {
				t.Errorf("store call event %+v", e)
			}
		case bulwark.EventDecision:
			if e.Pattern != "token_bucket" || e.Name != "observed" || e.Limit != 1 {
				t.Errorf("decision event %+v", e)
			}
			if e.Allowed {
				allowed++
			} else {
				denied++
			}
		}
	}
	if calls != 2 || allowed != 1 || denied != 1 {
		t.Errorf("events: %d store calls, %d allowed, %d denied; want 2, 1, 1", calls, allowed, denied)
	}
}

// waitHealthy waits up to timeout for the store's prober to bring it back:
// the store recovers in the background, from a real server coming back.
func waitHealthy(t *testing.T, s *distributed.Store, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !s.Healthy() {
		if time.Since(start) > timeout {
			t.Fatalf("store still degraded %v after the server came back: %v", timeout, s.HealthError())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestClientOptions: the recommended client settings, keeping what the
// caller set.
func TestClientOptions(t *testing.T) {
	o := distributed.ClientOptions(&redis.Options{Addr: "x:1", PoolSize: 7, ReadTimeout: time.Second}, 40*time.Millisecond)
	if !o.ContextTimeoutEnabled || o.PoolTimeout != 40*time.Millisecond || o.MaxRetries != -1 || o.DialerRetries != 1 ||
		o.ReadTimeout != time.Second || o.WriteTimeout != time.Second || o.DialTimeout != 500*time.Millisecond || o.PoolSize != 7 || o.Addr != "x:1" {
		t.Errorf("ClientOptions = %+v", o)
	}
	if o := distributed.ClientOptions(nil, 0); o.PoolTimeout != distributed.DefaultTimeout || !o.ContextTimeoutEnabled {
		t.Errorf("ClientOptions(nil, 0) = %+v", o)
	}
	in := &redis.ClusterOptions{Addrs: []string{"a:1"}}
	co := distributed.ClusterClientOptions(in, 0)
	if !co.ContextTimeoutEnabled || co.ClusterStateReloadInterval != 5*time.Second || co.MaxRetries != -1 || co.PoolTimeout != distributed.DefaultTimeout {
		t.Errorf("ClusterClientOptions = %+v", co)
	}
	if in.ContextTimeoutEnabled || in.MaxRetries != 0 {
		t.Error("ClusterClientOptions changed its argument")
	}
	fin := &redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"s:1"}, ReplicaOnly: true, RouteByLatency: true}
	fo := distributed.FailoverClientOptions(fin, 30*time.Millisecond)
	if !fo.ContextTimeoutEnabled || fo.ReplicaOnly || fo.RouteByLatency || fo.MaxRetries != -1 || fo.DialerRetries != 1 ||
		fo.PoolTimeout != 30*time.Millisecond || fo.MasterName != "m" || len(fo.SentinelAddrs) != 1 {
		t.Errorf("FailoverClientOptions = %+v", fo)
	}
	if fo.SentinelAddrs[0] = "changed"; fin.SentinelAddrs[0] != "s:1" || !fin.ReplicaOnly || fin.ContextTimeoutEnabled {
		t.Error("FailoverClientOptions changed its argument")
	}
	c := distributed.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if !c.Options().ContextTimeoutEnabled {
		t.Error("NewClient: ContextTimeoutEnabled off")
	}
	cc := distributed.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	if !cc.Options().ContextTimeoutEnabled {
		t.Error("NewClusterClient: ContextTimeoutEnabled off")
	}
}

// TestAllowAllocations guards the allocations of one Redis-backed decision,
// on the recommended client (ClientOptions: the call runs on the caller's
// goroutine) and on go-redis's default client (the call runs on a goroutine
// of its own). Most belong to go-redis (the connection check, the command,
// the parsed reply); ours are the key, the per-call deadline and, on the
// default client, the goroutine and its result channel. The argument
// vector is pooled and the script's SHA-1 boxed once.
func TestAllowAllocations(t *testing.T) {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	for _, tc := range []struct {
		name string
		opts *redis.Options
		max  float64
	}{
		{"ClientOptions", distributed.ClientOptions(&redis.Options{Addr: addr}, time.Second), 9},
		{"default client", &redis.Options{Addr: addr}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(tc.opts)
			t.Cleanup(func() { _ = c.Close() })
			s, _, _ := testStore(t, c)
			tb, _ := s.TokenBucket("allocs", bulwark.PerSecond(1_000_000))
			ctx := context.Background()
			// Warm up first: on the default client a call runs on a goroutine
			// of its own, which may still hold its connection when the next
			// call starts; the pool then dials one more (dozens of
			// allocations, once). Measure the steady state.
			for range 200 {
				if _, err := tb.Allow(ctx, "k", 1); err != nil {
					t.Fatal(err)
				}
			}
			// The least of three measurements: on the default client each call
			// starts a goroutine, and the runtime allocates one's record when
			// none is free to reuse, which depends on the machine's load,
			// not on this code.
			allocs := math.Inf(1)
			for range 3 {
				allocs = min(allocs, testing.AllocsPerRun(200, func() {
					if _, err := tb.Allow(ctx, "k", 1); err != nil {
						t.Fatal(err)
					}
				}))
			}
			t.Logf("%.0f allocations per Allow", allocs)
			if allocs > tc.max {
				t.Errorf("%.0f allocations per Allow, want at most %.0f", allocs, tc.max)
			}
		})
	}
}
