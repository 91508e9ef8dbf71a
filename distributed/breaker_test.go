package distributed_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
)

// eventLog is an observer that keeps every event.
type eventLog struct {
	mu     sync.Mutex
	events []bulwark.Event
}

func (l *eventLog) Observe(e bulwark.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) count(f func(bulwark.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if f(e) {
			n++
		}
	}
	return n
}

// eventually polls cond every millisecond until it holds or d has passed;
// it waits for other processes and goroutines, never for time itself.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			tb.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// replica is one "process" sharing a breaker: its own client and store.
func replica(tb testing.TB, addr, prefix, name string, c bulwark.BreakerConfig, obs bulwark.Observer, opts ...distributed.BreakerOption) *distributed.Breaker {
	tb.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { _ = client.Close() })
	sopts := []distributed.Option{distributed.WithPrefix(prefix), distributed.WithTimeout(200 * time.Millisecond)}
	if obs != nil {
		sopts = append(sopts, distributed.WithObserver(obs))
	}
	s, err := distributed.New(client, sopts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	b, err := s.Breaker(name, c, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func addrOf(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	rc, ok := c.(*redis.Client)
	if !ok {
		tb.Fatalf("want a *redis.Client, got %T", c)
	}
	return rc.Options().Addr
}

func fleetConfig() bulwark.BreakerConfig {
	return bulwark.BreakerConfig{
		Window: 10 * time.Second, MinimumCalls: 10, FailureRate: 0.5,
		OpenFor: 300 * time.Millisecond, HalfOpenCalls: 3,
	}
}

func TestBreakerRejectsBadConfig(t *testing.T) {
	s, _, _ := testStore(t, nil)
	bad := fleetConfig()
	bad.FailureRate = 2
	if _, err := s.Breaker("x", bad); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad config: got %v, want ErrInvalidConfig", err)
	}
	if _, err := s.Breaker("x", fleetConfig(), distributed.WithFlushInterval(0)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("flush 0: got %v, want ErrInvalidConfig", err)
	}
	if _, err := s.Breaker("x", fleetConfig(), distributed.WithRefreshInterval(-time.Second)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("refresh < 0: got %v, want ErrInvalidConfig", err)
	}
	b, err := s.Breaker("x", fleetConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Allow(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a done ctx: got %v", err)
	}
	_ = b.Close()
	if _, err := b.Allow(context.Background()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Allow after Close: got %v, want ErrClosed", err)
	}
	other, err := s.Breaker("z", fleetConfig())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := other.Allow(context.Background()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Allow after the store's Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Breaker("y", fleetConfig()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Breaker after store Close: got %v, want ErrClosed", err)
	}
}

// diffStep is one step of the differential test: advance the clock, then
// make a call (unless skip) that takes d and reports success.
type diffStep struct {
	advance time.Duration
	d       time.Duration
	success bool
	op      int // 0 call, 1 Reset, 2 ForceOpen
}

// TestBreakerMatchesLocal drives a Redis breaker (one replica, every outcome
// flushed at once) and a local.Breaker with the same config on one fake
// clock, and checks that they admit, reject and change state identically.
func TestBreakerMatchesLocal(t *testing.T) {
	configs := []bulwark.BreakerConfig{
		{Window: time.Second, MinimumCalls: 5, FailureRate: 0.5, OpenFor: 500 * time.Millisecond, HalfOpenCalls: 2},
		{Window: 2 * time.Second, MinimumCalls: 4, FailureRate: 0.75, ConsecutiveFailures: 3, OpenFor: time.Second, HalfOpenCalls: 3},
		{Window: time.Second, MinimumCalls: 3, FailureRate: 1, SlowCall: 50 * time.Millisecond, SlowCallRate: 0.5, OpenFor: 200 * time.Millisecond, HalfOpenCalls: 1},
	}
	for ci, cfg := range configs {
		t.Run(fmt.Sprint(ci), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			clock := fakeclock.New(time.Unix(1_700_000_000, 123_456_000))
			s, _, _ := testStore(t, nil, distributed.WithClock(clock), distributed.WithMinTTL(time.Hour))
			rb, err := s.Breaker("diff", cfg, distributed.WithFlushInterval(time.Hour), distributed.WithRefreshInterval(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			lb, err := local.NewBreaker(cfg, local.WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := range 600 {
				st := diffStep{
					advance: time.Duration(rng.Int64N(int64(cfg.Window / 8))),
					success: rng.IntN(100) < 45,
				}
				if cfg.SlowCall > 0 && rng.IntN(3) == 0 {
					st.d = cfg.SlowCall + time.Millisecond
				}
				switch rng.IntN(80) {
				case 0:
					st.op = 1
				case 1:
					st.op = 2
				}
				clock.Advance(st.advance)
				switch st.op {
				case 1:
					lb.Reset()
					if err := rb.Reset(ctx); err != nil {
						t.Fatal(err)
					}
					continue
				case 2:
					lb.ForceOpen()
					if err := rb.ForceOpen(ctx); err != nil {
						t.Fatal(err)
					}
					continue
				}
				ldone, lerr := lb.Allow(ctx)
				rdone, rerr := rb.Allow(ctx)
				if (lerr == nil) != (rerr == nil) {
					info, _ := s.BreakerState(ctx, "diff")
					t.Logf("at %v: local %+v, redis %+v", clock.Now(), lb.Metrics(), info)
					t.Fatalf("step %d %+v: local Allow %v, redis Allow %v", i, st, lerr, rerr)
				}
				if rerr != nil && !errors.Is(rerr, bulwark.ErrOpen) {
					t.Fatalf("step %d: redis Allow error %v", i, rerr)
				}
				if lerr == nil {
					clock.Advance(st.d)
					ldone(st.success)
					rdone(st.success)
					if err := rb.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if ls, rs := lb.State(ctx), rb.State(ctx); ls != rs {
					t.Fatalf("step %d %+v: local state %v, redis state %v", i, st, ls, rs)
				}
				if rb.Degraded() {
					t.Fatalf("step %d: degraded", i)
				}
			}
		})
	}
}

// TestBreakerFleet: three replicas with their own clients share a breaker.
// Failures reported by two open it for all three; after OpenFor the fleet
// admits at most HalfOpenCalls trials in total, however many goroutines
// race; their success closes it everywhere.
func TestBreakerFleet(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := addrOf(t, c)
	cfg := fleetConfig()
	var rs [3]*distributed.Breaker
	for i := range rs {
		rs[i] = replica(t, addr, prefix, "payments", cfg, nil)
	}
	ctx := context.Background()
	allIn := func(want bulwark.State) func() bool {
		return func() bool {
			for _, b := range rs {
				if b.State(ctx) != want {
					return false
				}
			}
			return true
		}
	}
	var lat []time.Duration
	for cycle := range 20 {
		if err := rs[2].Reset(ctx); err != nil {
			t.Fatal(err)
		}
		info, err := rs[2].Store().BreakerState(ctx, "payments")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "every replica knows the reset", func() bool {
			for _, b := range rs {
				if b.Generation() != info.Generation {
					return false
				}
			}
			return allIn(bulwark.Closed)()
		})
		for i := range cfg.MinimumCalls {
			done, err := rs[i%2].Allow(ctx)
			if err != nil {
				t.Fatalf("cycle %d: Allow on a closed breaker: %v", cycle, err)
			}
			done(false)
		}
		lat = append(lat, eventually(t, time.Second, "open on every replica", allIn(bulwark.Open)))
		for _, b := range rs {
			if _, err := b.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
				t.Fatalf("cycle %d: Allow on an open breaker: %v", cycle, err)
			}
		}
	}
	slices.Sort(lat)
	t.Logf("open on all 3 replicas after the last failure: min %v, median %v, p99 %v, max %v",
		lat[0], lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])

	// Half-open: 3 replicas × 16 goroutines race for trial calls.
	eventually(t, 2*time.Second, "half-open", func() bool { return rs[0].State(ctx) == bulwark.HalfOpen })
	var mu sync.Mutex
	var trials []func(bool)
	var wg sync.WaitGroup
	deadline := time.Now().Add(cfg.OpenFor / 2)
	for _, b := range rs {
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					done, err := b.Allow(ctx)
					if err == nil {
						mu.Lock()
						trials = append(trials, done)
						mu.Unlock()
					} else if !errors.Is(err, bulwark.ErrOpen) {
						t.Errorf("Allow in half-open: %v", err)
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			}()
		}
	}
	wg.Wait()
	if len(trials) != cfg.HalfOpenCalls {
		t.Fatalf("half-open admitted %d trial calls fleet-wide, want %d", len(trials), cfg.HalfOpenCalls)
	}
	info, err := rs[0].Store().BreakerState(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if info.TrialsGranted != int64(len(trials)) {
		t.Errorf("Redis granted %d trials, callers got %d", info.TrialsGranted, len(trials))
	}
	for _, done := range trials {
		done(true)
	}
	d := eventually(t, time.Second, "closed on every replica", allIn(bulwark.Closed))
	t.Logf("closed on all 3 replicas %v after the last trial succeeded", d)
	for _, b := range rs {
		if b.Degraded() {
			t.Errorf("%s degraded", b.Name())
		}
	}
	redistest.CheckTTLs(t, c, prefix, 3*cfg.Window+time.Second)
}

// TestBreakerHalfOpenCap: many trials race within OpenFor; exactly
// HalfOpenCalls are granted fleet-wide and their success closes the breaker
// on every replica.
func TestBreakerHalfOpenCap(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := addrOf(t, c)
	cfg := fleetConfig()
	cfg.OpenFor = 200 * time.Millisecond
	var rs [3]*distributed.Breaker
	for i := range rs {
		rs[i] = replica(t, addr, prefix, "cap", cfg, nil)
	}
	ctx := context.Background()
	if err := rs[0].ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "open everywhere", func() bool {
		return rs[1].State(ctx) == bulwark.Open && rs[2].State(ctx) == bulwark.Open
	})
	eventually(t, time.Second, "open period over", func() bool { return rs[0].State(ctx) == bulwark.HalfOpen })
	var admitted atomic.Int64
	var mu sync.Mutex
	var held []func(bool)
	var wg sync.WaitGroup
	for _, b := range rs {
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if done, err := b.Allow(ctx); err == nil {
						admitted.Add(1)
						mu.Lock()
						held = append(held, done)
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	if n := admitted.Load(); n != int64(cfg.HalfOpenCalls) {
		t.Fatalf("admitted %d trials fleet-wide, want %d", n, cfg.HalfOpenCalls)
	}
	for _, done := range held {
		done(true)
	}
	eventually(t, time.Second, "closed everywhere", func() bool {
		for _, b := range rs {
			if b.State(ctx) != bulwark.Closed {
				return false
			}
		}
		return true
	})
}

// TestBreakerNewReplicaSeesOpen: building a breaker never overwrites the
// shared state.
func TestBreakerNewReplicaSeesOpen(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := addrOf(t, c)
	cfg := fleetConfig()
	cfg.OpenFor = time.Minute
	a := replica(t, addr, prefix, "late", cfg, nil)
	ctx := context.Background()
	if err := a.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := a.Store().BreakerState(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	b := replica(t, addr, prefix, "late", cfg, nil)
	if _, err := b.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Errorf("new replica: Allow = %v, want ErrOpen", err)
	}
	if s := b.State(ctx); s != bulwark.Open {
		t.Errorf("new replica: state %v, want open", s)
	}
	after, err := b.Store().BreakerState(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	if after.State != bulwark.Open || after.Generation != before.Generation || !after.OpenedAt.Equal(before.OpenedAt) {
		t.Errorf("state changed by a new replica: before %+v, after %+v", before, after)
	}
}

// scriptsOnly hides the client's Subscribe method: replicas built on it
// learn of transitions only from their own replies.
type scriptsOnly struct{ distributed.Client }

// TestBreakerLateOutcomeIgnored: an outcome of a call admitted before a
// transition is dropped, by the replica when it knows of the transition
// and by the script when it does not.
func TestBreakerLateOutcomeIgnored(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	cfg := fleetConfig()
	ctx := context.Background()
	deaf, err := distributed.New(scriptsOnly{c}, distributed.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.Close()
	a, err := deaf.Breaker("gen", cfg, distributed.WithFlushInterval(time.Hour), distributed.WithRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other := replica(t, addrOf(t, c), prefix, "gen", cfg, nil)

	done, err := a.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	done(false) // a still caches the old generation: the script drops it
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := deaf.BreakerState(ctx, "gen")
	if err != nil {
		t.Fatal(err)
	}
	if info.Calls != 0 || info.Failures != 0 {
		t.Errorf("late outcome counted by the script: %+v", info)
	}

	// Now a knows the new generation (from the reply); a call admitted
	// before a second Reset is dropped locally.
	done, err = a.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	done(false)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err = deaf.BreakerState(ctx, "gen"); err != nil || info.Calls != 0 {
		t.Errorf("late outcome counted after a local reset: %+v, %v", info, err)
	}
	// A current outcome counts.
	done, _ = a.Allow(ctx)
	done(false)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err = deaf.BreakerState(ctx, "gen"); err != nil || info.Calls != 1 || info.Failures != 1 || info.ConsecutiveFailures != 1 {
		t.Errorf("current outcome: %+v, %v; want 1 call, 1 failure", info, err)
	}
}

// TestBreakerInspect: BreakerState and Breakers read names and state,
// hostile names included, without writing.
func TestBreakerInspect(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	ctx := context.Background()
	names := []string{"plain", "a:b", "{tag}", "line\nbreak", ""}
	for _, n := range names {
		b, err := s.Breaker(n, fleetConfig())
		if err != nil {
			t.Fatal(err)
		}
		if s := b.State(ctx); s != bulwark.Closed {
			t.Errorf("%q: state %v", n, s)
		}
	}
	info, err := s.BreakerState(ctx, "never-used")
	if err != nil || info.Exists || info.State != bulwark.Closed {
		t.Errorf("absent breaker: %+v, %v", info, err)
	}
	if keys := redistest.Keys(t, c, prefix); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "never-used") }) {
		t.Errorf("BreakerState wrote keys: %v", keys)
	}
	got, err := s.Breakers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Breakers() = %q, want %q", got, want)
	}
	for _, k := range redistest.Keys(t, c, prefix) {
		if n := slotTagCount(k); n != 1 {
			t.Errorf("key %q has %d hash tags", k, n)
		}
	}
	redistest.CheckTTLs(t, c, prefix, 3*fleetConfig().Window+time.Second)
}

// slotTagCount counts the "{...}" groups of a key.
func slotTagCount(k string) int {
	n := 0
	for i := 0; i < len(k); i++ {
		if k[i] == '{' {
			n++
		}
	}
	return n
}

// TestBreakerAllocs: a call on a closed breaker allocates nothing.
func TestBreakerAllocs(t *testing.T) {
	s, _, _ := testStore(t, nil)
	b, err := s.Breaker("allocs", fleetConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b.State(ctx) != bulwark.Closed {
		t.Fatal("not closed")
	}
	n := testing.AllocsPerRun(1000, func() {
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(true)
	})
	if n != 0 {
		t.Errorf("Allow+done allocates %v times, want 0", n)
	}
}

// TestBreakerEvents: transitions learned from Redis, rejections and
// outcomes reach the store's observer.
func TestBreakerEvents(t *testing.T) {
	var log eventLog
	s, _, _ := testStore(t, nil, distributed.WithObserver(&log))
	cfg := fleetConfig()
	cfg.OpenFor = time.Minute
	b, err := s.Breaker("events", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow after ForceOpen: %v", err)
	}
	is := func(k bulwark.EventKind) func(bulwark.Event) bool {
		return func(e bulwark.Event) bool {
			return e.Kind == k && e.Pattern == "breaker" && e.Name == "events" && !e.Degraded
		}
	}
	if log.count(is(bulwark.EventBreakerOutcome)) != 1 || log.count(is(bulwark.EventBreakerRejected)) != 1 {
		t.Errorf("events: %+v", log.events)
	}
	if log.count(func(e bulwark.Event) bool {
		return is(bulwark.EventBreakerTransition)(e) && e.From == bulwark.Closed && e.To == bulwark.Open
	}) != 1 {
		t.Errorf("no closed->open transition event: %+v", log.events)
	}
}

// callLoop runs Allow/done(true) on b from several goroutines until stop,
// failing the test on any error other than ErrOpen.
func callLoop(t *testing.T, b *distributed.Breaker, stop <-chan struct{}, calls *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				done, err := b.Allow(context.Background())
				if err != nil {
					if !errors.Is(err, bulwark.ErrOpen) {
						t.Errorf("Allow: %v", err)
						return
					}
				} else {
					done(true)
				}
				calls.Add(1)
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	return &wg
}

// TestBreakerFaults: Redis killed, frozen or cut off while callers run:
// they see no error, the breaker falls back to its local twin (events say
// Degraded), and it returns to Redis once Redis answers again.
func TestBreakerFaults(t *testing.T) {
	faults := []struct {
		name       string
		start, end func(srv *redistest.Server, p *redistest.Proxy)
	}{
		{"kill", func(srv *redistest.Server, _ *redistest.Proxy) { srv.Kill() }, func(srv *redistest.Server, _ *redistest.Proxy) { srv.Restart() }},
		{"freeze", func(srv *redistest.Server, _ *redistest.Proxy) { srv.Pause() }, func(srv *redistest.Server, _ *redistest.Proxy) { srv.Resume() }},
		{"partition", func(_ *redistest.Server, p *redistest.Proxy) { p.Blackhole(true) }, func(_ *redistest.Server, p *redistest.Proxy) { p.Blackhole(false) }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			proxy := redistest.NewProxy(t, srv.Addr())
			var log eventLog
			cfg := fleetConfig()
			cfg.OpenFor = time.Minute
			b := replica(t, proxy.Addr(), "bwfault", "dep", cfg, &log,
				distributed.WithRefreshInterval(100*time.Millisecond))
			ctx := context.Background()
			if s := b.State(ctx); s != bulwark.Closed || b.Degraded() {
				t.Fatalf("start: %v, degraded %v", s, b.Degraded())
			}
			stop := make(chan struct{})
			var calls atomic.Int64
			wg := callLoop(t, b, stop, &calls)
			defer func() { close(stop); wg.Wait() }()

			f.start(srv, proxy)
			d := eventually(t, 5*time.Second, "degraded", b.Degraded)
			t.Logf("degraded %v after the fault", d)
			n := calls.Load()
			eventually(t, 5*time.Second, "calls go on", func() bool { return calls.Load() > n+100 })
			if log.count(func(e bulwark.Event) bool { return e.Degraded && e.Pattern == "breaker" && e.Name == "dep" }) == 0 {
				t.Error("no degraded breaker events")
			}
			f.end(srv, proxy)
			d = eventually(t, 10*time.Second, "back on Redis", func() bool { return !b.Degraded() })
			t.Logf("back on Redis %v after the fault ended", d)
			if s := b.State(ctx); s != bulwark.Closed {
				t.Errorf("after the fault: %v, want closed", s)
			}
		})
	}
}

// TestBreakerRestartComesBackClosed: Redis restarts (losing its keys) while
// the breaker is open; the breaker falls back to a twin that stays open,
// then comes back closed, in a new generation, once Redis is up.
func TestBreakerRestartComesBackClosed(t *testing.T) {
	srv := redistest.StartServer(t)
	cfg := fleetConfig()
	cfg.OpenFor = time.Minute
	b := replica(t, srv.Addr(), "bwrestart", "dep", cfg, nil, distributed.WithRefreshInterval(100*time.Millisecond))
	other := replica(t, srv.Addr(), "bwrestart", "dep", cfg, nil)
	ctx := context.Background()
	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "open on both", func() bool { return other.State(ctx) == bulwark.Open })
	gen := b.Generation()
	srv.Kill()
	// While Redis is down, the twin keeps the breaker open.
	eventually(t, 5*time.Second, "degraded", func() bool {
		_, err := b.Allow(ctx)
		if err != nil && !errors.Is(err, bulwark.ErrOpen) {
			t.Fatalf("Allow while Redis is down: %v", err)
		}
		return b.Degraded()
	})
	if _, err := b.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Errorf("degraded twin of an open breaker admits: %v", err)
	}
	srv.Restart()
	eventually(t, 10*time.Second, "closed on Redis again", func() bool {
		return !b.Degraded() && b.State(ctx) == bulwark.Closed
	})
	if g := b.Generation(); g <= gen {
		t.Errorf("generation after restart %d, want above %d", g, gen)
	}
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatalf("Allow after restart: %v", err)
	}
	done(true)
	eventually(t, 5*time.Second, "other replica closed too", func() bool {
		_, err := other.Allow(ctx) // its cached open state ends by a refresh or its own probe
		return err == nil && other.State(ctx) == bulwark.Closed
	})
}

// Environment of a child replica of TestBreakerProcesses.
const (
	envChildAddr   = "BULWARK_TEST_BREAKER_ADDR"
	envChildPrefix = "BULWARK_TEST_BREAKER_PREFIX"
)

// TestBreakerProcesses: three replicas in three processes share a breaker.
// The two children report failures; every process sees it open; in
// half-open the three processes together get at most HalfOpenCalls trial
// calls; their success closes it in every process.
func TestBreakerProcesses(t *testing.T) {
	cfg := fleetConfig()
	if redistest.IsChild() {
		childReplica(t, cfg)
		return
	}
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := addrOf(t, c)
	self := replica(t, addr, prefix, "proc", cfg, nil)
	ctx := context.Background()
	var kids [2]*child
	for i := range kids {
		kids[i] = startChild(t, addr, prefix)
	}
	for _, k := range kids {
		k.send(t, "fail 5")
	}
	for _, k := range kids {
		k.expect(t, "failed")
	}
	d := eventually(t, time.Second, "open in this process", func() bool { return self.State(ctx) == bulwark.Open })
	t.Logf("open in the parent %v after both children reported", d)
	for _, k := range kids {
		k.send(t, "wait open")
		k.expect(t, "open")
	}
	eventually(t, 2*time.Second, "half-open", func() bool { return self.State(ctx) == bulwark.HalfOpen })
	for _, k := range kids {
		k.send(t, "race")
	}
	var mine []func(bool)
	deadline := time.Now().Add(cfg.OpenFor / 2)
	for time.Now().Before(deadline) {
		if done, err := self.Allow(ctx); err == nil {
			mine = append(mine, done)
		}
		time.Sleep(200 * time.Microsecond)
	}
	total := len(mine)
	for _, k := range kids {
		var n int
		if _, err := fmt.Sscanf(k.line(t), "admitted %d", &n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != cfg.HalfOpenCalls {
		t.Fatalf("three processes got %d trial calls, want %d", total, cfg.HalfOpenCalls)
	}
	for _, done := range mine {
		done(true)
	}
	for _, k := range kids {
		k.send(t, "finish")
	}
	for _, k := range kids {
		k.expect(t, "closed")
	}
	eventually(t, time.Second, "closed in this process", func() bool { return self.State(ctx) == bulwark.Closed })
	for _, k := range kids {
		k.send(t, "quit")
		if err := k.cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
}

// child is a replica process and the pipes to talk to it.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(t *testing.T, addr, prefix string) *child {
	t.Helper()
	cmd := redistest.Child(t, t.Name(), envChildAddr+"="+addr, envChildPrefix+"="+prefix)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	k.expect(t, "ready")
	return k
}

func (k *child) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(k.in, line); err != nil {
		t.Fatal(err)
	}
}

// line returns the child's next protocol line (lines starting with "> "),
// skipping the test framework's output.
func (k *child) line(t *testing.T) string {
	t.Helper()
	for k.out.Scan() {
		if l := k.out.Text(); strings.HasPrefix(l, "> ") {
			return l[2:]
		}
	}
	t.Fatalf("child ended: %v", k.out.Err())
	return ""
}

func (k *child) expect(t *testing.T, want string) {
	t.Helper()
	if got := k.line(t); got != want {
		t.Fatalf("child said %q, want %q", got, want)
	}
}

// childReplica is the child's side of TestBreakerProcesses: it obeys
// commands read from stdin.
func childReplica(t *testing.T, cfg bulwark.BreakerConfig) {
	b := replica(t, os.Getenv(envChildAddr), os.Getenv(envChildPrefix), "proc", cfg, nil)
	ctx := context.Background()
	say := func(s string) { fmt.Println("> " + s) }
	say("ready")
	var held []func(bool)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); {
		case strings.HasPrefix(cmd, "fail "):
			n, _ := strconv.Atoi(cmd[5:])
			for range n {
				done, err := b.Allow(ctx)
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				done(false)
			}
			say("failed")
		case cmd == "wait open":
			eventually(t, time.Second, "open", func() bool { return b.State(ctx) == bulwark.Open })
			say("open")
		case cmd == "race":
			deadline := time.Now().Add(cfg.OpenFor / 2)
			for time.Now().Before(deadline) {
				if done, err := b.Allow(ctx); err == nil {
					held = append(held, done)
				}
				time.Sleep(200 * time.Microsecond)
			}
			say(fmt.Sprintf("admitted %d", len(held)))
		case cmd == "finish":
			for _, done := range held {
				done(true)
			}
			eventually(t, time.Second, "closed", func() bool { return b.State(ctx) == bulwark.Closed })
			say("closed")
		case cmd == "quit":
			return
		}
	}
}

// TestBreakerIgnoresMalformedMessages: a message on the store's channel
// that is not a well-formed transition changes nothing.
func TestBreakerIgnoresMalformedMessages(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	b, err := s.Breaker("m", fleetConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b.State(ctx) != bulwark.Closed {
		t.Fatal("not closed")
	}
	gen := b.Generation()
	channel := prefix + ":br:events"
	// Pub/sub delivers at most once: publish only once the store listens.
	eventually(t, 5*time.Second, "the store subscribed", func() bool {
		n, err := c.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] > 0
	})
	hi := strconv.FormatUint(gen+5, 10)
	for _, m := range []string{"m", "m ", "m 1", "m x " + hi + " 0 0 0", "m 1 " + hi + " 0 0", "m 7 " + hi + " 0 0 0",
		"m 1 " + hi + " 0 0 0 extra", "m 1 " + hi + " -1 0 0", "m 1 99999999999999999999 0 0 0", "other 1 " + hi + " 0 0 0"} {
		if err := c.Publish(ctx, channel, m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Messages arrive in order: once this well-formed one (open for an
	// hour, generation gen+1) shows, every message before it was seen,
	// and none was applied, or gen+1 would count as older.
	valid := "m 1 " + strconv.FormatUint(gen+1, 10) + " 1 3600000001 1"
	if err := c.Publish(ctx, channel, valid).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the well-formed message applied", func() bool {
		return b.Generation() == gen+1 && b.State(ctx) == bulwark.Open
	})
}
