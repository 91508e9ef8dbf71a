package distributed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
)

// TestSentinel runs the Redis-backed limiters on a failover client of a
// Sentinel deployment (one master, two replicas, three sentinels):
// differential runs against the local twins before and after a failover,
// and a SENTINEL FAILOVER under load, where no error may reach a caller,
// no READONLY reply may reach the store, and decisions must come from the
// new master within a few seconds of the switch.
func TestSentinel(t *testing.T) {
	dep := redistest.StartSentinel(t, 2)
	fc := dep.Client(t, func(o *redis.FailoverOptions) { *o = *distributed.FailoverClientOptions(o, 2*time.Second) })

	differential := func(t *testing.T, salt uint64) {
		clk := fakeclock.New(fakeclock.Epoch)
		st, _, _ := testStore(t, fc, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
		for _, a := range algorithms {
			t.Run(a.name, func(t *testing.T) {
				var total counts
				for seed := range 3 {
					r := rand.New(rand.NewPCG(uint64(seed), salt))
					seq := randomSequence(r, a, hostileKeys()[:6], 120, seed == 2)
					total.add(runSequence(t, st, clk, a, fmt.Sprintf("sdiff-%d", seed), seq))
				}
				if total.allowed == 0 || total.denied == 0 {
					t.Errorf("sequences did not exercise both outcomes: %+v", total)
				}
			})
		}
	}

	t.Run("differential", func(t *testing.T) { differential(t, 0x5e1) })
	if t.Failed() {
		return
	}

	// The master crashes under load: the store decides locally while
	// no master answers, and goes back to Redis once the sentinels have
	// promoted a replica.
	t.Run("master crash under load", func(t *testing.T) {
		degraded := failoverUnderLoad(t, fc, "crash", func() (*redistest.Server, *redistest.Server) {
			old := dep.Master()
			old.Kill()
			return old, dep.WaitMaster(t, old.Addr(), 15*time.Second)
		})
		if degraded == 0 {
			t.Error("no decision was degraded while the master was dead: the fallback was not exercised")
		}
	})
	if t.Failed() {
		return
	}

	// SENTINEL FAILOVER under load: the old master stays up until the
	// client has switched, so decisions may or may not be degraded.
	t.Run("SENTINEL FAILOVER under load", func(t *testing.T) {
		failoverUnderLoad(t, fc, "manual", func() (*redistest.Server, *redistest.Server) {
			old := dep.Master()
			return old, dep.Failover(t)
		})
	})

	t.Run("differential after failover", func(t *testing.T) { differential(t, 0x5e2) })
}

// failoverUnderLoad builds the four limiters on a store over the failover
// client fc, runs a small load of goroutines calling Allow, calls
// failover (which returns the old and the new master once the deployment
// has settled) and checks that no error reached a caller, no READONLY reply
// reached the store, decisions come from the new master again (Degraded
// false) within a few seconds of the switch, and every key has a TTL. It
// returns the number of degraded decisions made during the failover.
func failoverUnderLoad(t *testing.T, fc *redis.Client, name string, failover func() (old, nm *redistest.Server)) int64 {
	t.Helper()
	var storeErrs, readOnly atomic.Int64
	var errMu sync.Mutex
	var errSamples []string
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind != bulwark.EventStoreCall || e.Err == nil {
			return
		}
		storeErrs.Add(1)
		if redis.IsReadOnlyError(e.Err) || strings.Contains(e.Err.Error(), "READONLY") {
			readOnly.Add(1)
		}
		errMu.Lock()
		if len(errSamples) < 5 {
			errSamples = append(errSamples, e.Err.Error())
		}
		errMu.Unlock()
	})
	st, _, prefix := testStore(t, fc, distributed.WithObserver(obs), distributed.WithTimeout(time.Second))
	l := bulwark.Limit{Events: 100, Period: time.Minute, Burst: 150}
	limiters := make([]bulwark.Limiter, len(algorithms))
	for i, a := range algorithms {
		lim, err := a.redis(st, name, l)
		if err != nil {
			t.Fatal(err)
		}
		limiters[i] = lim
	}

	// Load: two goroutines per limiter, each on a key of its own,
	// pacing its calls. The phase says where the failover is:
	// 0 before, 1 during, 2 after failover returned.
	const perLimiter = 2
	type tally struct {
		calls, degraded [3]atomic.Int64
		redisAfter      atomic.Int64 // non-degraded decisions in phase 2
	}
	var phase atomic.Int32
	workers := make([]*tally, perLimiter*len(limiters))
	var callerErrs atomic.Int64
	var callerErr error // the first; guarded by errMu
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		workers[w] = &tally{}
		lim, tl := limiters[w%len(limiters)], workers[w]
		key := "user-" + strconv.Itoa(w)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond): // pacing, not synchronization
				}
				p := phase.Load()
				d, err := lim.Allow(context.Background(), key, 1)
				if err != nil {
					if callerErrs.Add(1) == 1 {
						errMu.Lock()
						callerErr = err
						errMu.Unlock()
					}
					continue
				}
				tl.calls[p].Add(1)
				if d.Degraded {
					tl.degraded[p].Add(1)
				} else if p == 2 {
					tl.redisAfter.Add(1)
				}
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	// waitFor polls cond until it holds or timeout passes.
	waitFor := func(timeout time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	if !waitFor(10*time.Second, func() bool {
		for _, tl := range workers {
			if tl.calls[0].Load()-tl.degraded[0].Load() < 10 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the load did not get going: fewer than 10 decisions from Redis per worker")
	}

	phase.Store(1)
	start := time.Now()
	old, nm := failover()
	phase.Store(2)
	switched := time.Now()
	t.Logf("failover from %s to %s took %v", old.Addr(), nm.Addr(), switched.Sub(start).Round(time.Millisecond))
	base := scriptCalls(t, nm)

	// Decisions come from Redis again, and from the new master: each
	// worker gets decisions that are not degraded, and the new master
	// runs the scripts.
	recovered := waitFor(10*time.Second, func() bool {
		for _, tl := range workers {
			if tl.redisAfter.Load() < 5 {
				return false
			}
		}
		return scriptCalls(t, nm) >= base+int64(5*len(workers))
	})
	t.Logf("decisions from the new master %v after the switch", time.Since(switched).Round(time.Millisecond))
	stopLoad()
	var degradedSince int64 // from the start of the failover on
	for p, when := range []string{"before", "during", "after"} {
		var calls, degraded int64
		for _, tl := range workers {
			calls += tl.calls[p].Load()
			degraded += tl.degraded[p].Load()
		}
		if p > 0 {
			degradedSince += degraded
		}
		t.Logf("%s the failover: %d decisions, %d degraded", when, calls, degraded)
	}
	t.Logf("store calls that failed: %d %q", storeErrs.Load(), errSamples)
	if !recovered {
		t.Fatalf("decisions did not come from the new master %s within 10s of the switch (script calls there: %d more)",
			nm.Addr(), scriptCalls(t, nm)-base)
	}
	if n := callerErrs.Load(); n > 0 {
		errMu.Lock()
		t.Errorf("%d errors reached callers, first: %v", n, callerErr)
		errMu.Unlock()
	}
	if n := readOnly.Load(); n > 0 {
		t.Errorf("%d READONLY replies reached the store", n)
	}

	// Settled: every decision comes from the new master.
	before := scriptCalls(t, nm)
	for i, lim := range limiters {
		for range 10 {
			d, err := lim.Allow(context.Background(), "settled", 1)
			if err != nil || d.Degraded {
				t.Fatalf("%s after the failover: %+v, %v", algorithms[i].name, d, err)
			}
		}
	}
	if got := scriptCalls(t, nm) - before; got < int64(10*len(limiters)) {
		t.Errorf("the new master ran %d scripts for %d decisions", got, 10*len(limiters))
	}
	redistest.CheckTTLs(t, fc, prefix, 2*time.Minute)
	if len(redistest.Keys(t, fc, prefix)) == 0 {
		t.Error("no limiter keys on the new master")
	}
	return degradedSince
}

// scriptCalls returns how many EVALSHA and EVAL commands srv has run (INFO
// commandstats). A replica runs none: scripts reach it as their effects.
func scriptCalls(t *testing.T, srv *redistest.Server) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := srv.Exec(ctx, "INFO", "commandstats")
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", srv.Addr(), err)
	}
	text, ok := v.(string)
	if !ok {
		t.Fatalf("INFO commandstats on %s: reply %T", srv.Addr(), v)
	}
	var total int64
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("INFO commandstats on %s: %q: %v", srv.Addr(), line, err)
		}
		total += n
	}
	return total
}
