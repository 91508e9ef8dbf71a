package integration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarktest"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

// The full stack of the recommended order (bulwark.Compose), on three
// replicas sharing one redis-server.
const (
	stackReplicas    = 3
	stackTimeout     = 100 * time.Millisecond // the stores' call budget
	stackWork        = 40 * time.Millisecond  // one healthy dependency call
	stackCallTimeout = 150 * time.Millisecond // the per-attempt timeout policy
)

var (
	// stackLimit is the fleet-wide rate of calls to the dependency.
	stackLimit = bulwark.Limit{Events: 100, Period: time.Second, Burst: 20}
	// stackShare is one replica's fair share of stackLimit while Redis is
	// away: Events and Burst divided by three, rounded up.
	stackShare = bulwark.Limit{Events: 34, Period: time.Second, Burst: 7}
	// stackBulkhead caps the calls in flight fleet-wide; at 100 calls/s of
	// 40ms each the load asks for about four at once, so the cap binds.
	stackBulkhead = bulwark.BulkheadConfig{MaxConcurrent: 4, MaxWait: 30 * time.Millisecond, LeaseTTL: 3 * time.Second}
	// stackBulkheadShare is one replica's share of it while Redis is away.
	stackBulkheadShare = int64(2)
	stackBreaker       = bulwark.BreakerConfig{
		Window: 2 * time.Second, MinimumCalls: 6, FailureRate: 0.5, ConsecutiveFailures: 4,
		OpenFor: time.Second, HalfOpenCalls: 1,
	}
)

// maxTTL is the longest TTL a key of these tests may have: the fencing
// counter of the bulkhead's semaphore, which must outlive every lease it
// numbered, lives semaphore.FenceTTL; every other key lives seconds.
const maxTTL = semaphore.FenceTTL

// errDependency is what the fake dependency returns when it fails fast.
var errDependency = errors.New("dependency failed")

// dependency is the downstream service every replica calls. It counts the
// calls in flight with atomics of its own, independent of the bulkhead that
// is supposed to cap them.
type dependency struct {
	failing atomic.Bool
	n       atomic.Int64 // failing calls so far: odd ones fail fast, even ones hang

	inflight        atomic.Int64
	peak            atomic.Int64
	replicaInflight [stackReplicas]atomic.Int64
	replicaPeak     [stackReplicas]atomic.Int64
	replicaCalls    [stackReplicas]atomic.Int64
}

// call is one call from replica. A healthy call takes stackWork; a failing
// one returns errDependency at once or hangs until its ctx ends (the
// timeout policy then reports bulwark.ErrTimeout).
func (d *dependency) call(ctx context.Context, replica int) (string, error) {
	d.replicaCalls[replica].Add(1)
	maxInt64(&d.peak, d.inflight.Add(1))
	maxInt64(&d.replicaPeak[replica], d.replicaInflight[replica].Add(1))
	defer func() {
		d.inflight.Add(-1)
		d.replicaInflight[replica].Add(-1)
	}()
	wait := stackWork
	if d.failing.Load() {
		if d.n.Add(1)%2 == 1 {
			return "", errDependency
		}
		wait = 20 * stackCallTimeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		if d.failing.Load() {
			return "", errDependency
		}
		return "fresh", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// resetPeaks starts measuring peaks afresh from the calls in flight now.
func (d *dependency) resetPeaks() {
	d.peak.Store(d.inflight.Load())
	for i := range d.replicaPeak {
		d.replicaPeak[i].Store(d.replicaInflight[i].Load())
	}
}

// isDependencyFailure is when the fallback answers: a failure of the
// dependency itself (possibly after retries), never a rejection by a
// protective policy, so that rejections stay visible to the test.
func isDependencyFailure(err error) bool {
	return errors.Is(err, errDependency) || errors.Is(err, bulwark.ErrTimeout)
}

// outcomes tallies what callers got back.
type outcomes struct {
	fresh, fallback, rateLimited, open, bulkheadFull, unexpected atomic.Int64
	// degradedDenials are rate-limit rejections whose decision says it was
	// made without Redis (RateLimitedError.Decision.Degraded).
	degradedDenials atomic.Int64

	mu      sync.Mutex
	samples []string
}

func (o *outcomes) record(v string, err error) {
	switch {
	case err == nil && v == "fresh":
		o.fresh.Add(1)
	case err == nil && v == "stale":
		o.fallback.Add(1)
	case errors.Is(err, bulwark.ErrRateLimited):
		o.rateLimited.Add(1)
		var rl *bulwark.RateLimitedError
		if errors.As(err, &rl) && rl.Decision.Degraded {
			o.degradedDenials.Add(1)
		}
	case errors.Is(err, bulwark.ErrOpen):
		o.open.Add(1)
	case errors.Is(err, bulwark.ErrBulkheadFull):
		o.bulkheadFull.Add(1)
	default:
		o.unexpected.Add(1)
		o.mu.Lock()
		if len(o.samples) < 5 {
			o.samples = append(o.samples, fmt.Sprintf("value %q, error %v", v, err))
		}
		o.mu.Unlock()
	}
}

func (o *outcomes) String() string {
	return fmt.Sprintf("fresh %d, fallback %d, rate-limited %d (%d decided without Redis), open %d, bulkhead-full %d, unexpected %d",
		o.fresh.Load(), o.fallback.Load(), o.rateLimited.Load(), o.degradedDenials.Load(), o.open.Load(), o.bulkheadFull.Load(), o.unexpected.Load())
}

// check fails the test when a caller got anything but a value or a typed
// rejection.
func (o *outcomes) check(t *testing.T, phase string) {
	t.Helper()
	t.Logf("%s: %v", phase, o)
	if n := o.unexpected.Load(); n > 0 {
		o.mu.Lock()
		defer o.mu.Unlock()
		t.Errorf("%s: %d calls got something other than a value or ErrRateLimited/ErrOpen/ErrBulkheadFull; first: %q", phase, n, o.samples)
	}
}

// stackReplica is one replica's composed stack.
type stackReplica struct {
	*replica
	ex       *bulwark.Executor[string]
	breaker  *distributed.Breaker
	bulkhead *distributed.Bulkhead
}

func (r *stackReplica) run(ctx context.Context, dep *dependency) (string, error) {
	return r.ex.Run(ctx, func(ctx context.Context) (string, error) { return dep.call(ctx, r.id) })
}

// buildStack composes, on r, the recommended order for a call to a
// dependency: fallback, retry with a budget, the fleet-wide token bucket,
// the fleet-wide bulkhead, the fleet-wide breaker, the per-attempt timeout.
func buildStack(t *testing.T, r *replica) *stackReplica {
	t.Helper()
	budget, err := local.NewRetryBudget(local.BudgetConfig{Ratio: 0.5, MinPerSecond: 20, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := local.NewRetry(local.RetryConfig[string]{
		MaxAttempts: 3, Backoff: local.BackoffExponential, Delay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		Jitter: local.JitterFull, Budget: budget,
	})
	if err != nil {
		t.Fatal(err)
	}
	fallback, err := local.NewFallback([]local.FallbackStep[string]{{When: isDependencyFailure, Value: "stale"}})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := r.store.TokenBucket("dependency", stackLimit)
	if err != nil {
		t.Fatal(err)
	}
	bh, err := r.store.Bulkhead("dependency", stackBulkhead)
	if err != nil {
		t.Fatal(err)
	}
	br, err := r.store.Breaker("dependency", stackBreaker, distributed.WithRefreshInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	tmo, err := local.NewTimeout(stackCallTimeout)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := bulwark.Compose[string](
		fallback,
		retry,
		bulwark.LimiterPolicy(lim, bulwark.FixedKey("dependency"), 1),
		bulwark.BulkheadPolicy(bh),
		bulwark.BreakerPolicy(br, nil),
		tmo,
	)
	if err != nil {
		t.Fatal(err)
	}
	return &stackReplica{replica: r, ex: ex, breaker: br, bulkhead: bh}
}

// TestStackAcrossRedisOutage runs the full stack on three replicas while
// Redis is healthy, while the dependency fails, while Redis is killed
// mid-load, and after Redis is restarted on the same port.
func TestStackAcrossRedisOutage(t *testing.T) {
	t.Parallel()
	eachBackend(t, testStackAcrossRedisOutage)
}

func testStackAcrossRedisOutage(t *testing.T, b bulwarktest.Backend) {
	srv := bulwarktest.StartRedis(t, bulwarktest.WithBackend(b))
	admin := srv.Client(t)
	prefix := testPrefix(t, admin)
	fleet := startFleet(t, srv.Addr(), prefix, fleetConfig{
		replicas: stackReplicas, timeout: stackTimeout, membership: true,
		opts: []distributed.Option{
			distributed.WithProbeInterval(50 * time.Millisecond),
			distributed.WithMinDegraded(300 * time.Millisecond),
		},
	})
	reps := make([]*stackReplica, len(fleet))
	for i, r := range fleet {
		reps[i] = buildStack(t, r)
	}
	dep := &dependency{}
	ctx := context.Background()

	// Every replica learns that there are three of them.
	if _, ok := waitFor(3*time.Second, func() bool {
		for _, r := range fleet {
			if n, err := r.members.Heartbeat(ctx); err != nil || n != stackReplicas {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatalf("membership did not count %d replicas", stackReplicas)
	}

	// Phase 1: healthy. (Phases are blocks of this test rather than subtests:
	// the server's Kill and Restart must run on the goroutine of the test that
	// started it.)
	{
		var got outcomes
		before := snapshots(fleet)
		dep.resetPeaks()
		start := time.Now()
		load := startLoad(stackReplicas, 4, time.Millisecond, func(ctx context.Context, r, _ int) {
			got.record(reps[r].run(ctx, dep))
		})
		time.Sleep(1500 * time.Millisecond)
		load.finish()
		elapsed := time.Since(start)
		d := total(diff(snapshots(fleet), before))
		got.check(t, "healthy")

		// The fleet-wide limit: what Redis admitted over all replicas stays
		// within one bucket's capacity plus its refill over the phase.
		bound := bucketBound(stackLimit, elapsed+stackTimeout)
		t.Logf("limiter over %v: admitted by Redis %d (bound %d), denied %d, decided locally %d",
			elapsed.Round(time.Millisecond), d.allowed, bound, d.denied, d.allowedDegraded+d.deniedDegraded)
		if d.allowed > bound {
			t.Errorf("fleet admitted %d calls through Redis in %v, above the limit's bound %d", d.allowed, elapsed, bound)
		}
		if d.denied == 0 {
			t.Errorf("no call was rate limited: the load did not reach the fleet-wide limit")
		}

		// The fleet-wide bulkhead, measured inside the dependency.
		peak := dep.peak.Load()
		t.Logf("bulkhead: peak calls in flight fleet-wide %d (cap %d), rejections %d, slots granted locally %d",
			peak, stackBulkhead.MaxConcurrent, got.bulkheadFull.Load(), d.bulkheadDegraded)
		if d.bulkheadDegraded == 0 && peak > int64(stackBulkhead.MaxConcurrent) {
			t.Errorf("%d calls ran at once across the fleet, above the bulkhead's cap %d", peak, stackBulkhead.MaxConcurrent)
		}
		if got.bulkheadFull.Load() == 0 {
			t.Errorf("no call was turned away by the bulkhead: the load did not reach its cap")
		}
		redistest.CheckTTLs(t, admin, prefix, maxTTL)
	}

	// Phase 2: dependency failures on one replica open the breaker for all.
	{
		var got outcomes
		dep.failing.Store(true)
		// Failures on replica 0 alone trip the fleet's breaker.
		if _, ok := waitFor(5*time.Second, func() bool {
			v, err := reps[0].run(ctx, dep)
			got.record(v, err)
			return errors.Is(err, bulwark.ErrOpen)
		}); !ok {
			t.Fatalf("replica 0's failing calls did not open the breaker: %v", &got)
		}
		// The other replicas refuse at once, without calling the dependency.
		for _, r := range reps[1:] {
			if took, ok := waitFor(time.Second, func() bool { return r.breaker.State(ctx) == bulwark.Open }); !ok {
				t.Errorf("replica %d: breaker %v, want open after replica 0 tripped it", r.id, r.breaker.State(ctx))
			} else {
				t.Logf("replica %d learned the breaker opened within %v", r.id, took.Round(time.Millisecond))
			}
			calls := dep.replicaCalls[r.id].Load()
			v, err := r.run(ctx, dep)
			got.record(v, err)
			if !errors.Is(err, bulwark.ErrOpen) {
				t.Errorf("replica %d: call returned (%q, %v), want ErrOpen", r.id, v, err)
			}
			if n := dep.replicaCalls[r.id].Load() - calls; n != 0 {
				t.Errorf("replica %d called the dependency %d times while the breaker was open", r.id, n)
			}
		}
		// The dependency heals; after OpenFor one trial call, made on
		// replica 2, closes the breaker for every replica.
		dep.failing.Store(false)
		if _, ok := waitFor(5*time.Second, func() bool {
			v, err := reps[2].run(ctx, dep)
			got.record(v, err)
			return err == nil && v == "fresh"
		}); !ok {
			t.Fatalf("no call succeeded on replica 2 after the dependency healed: %v", &got)
		}
		for _, r := range reps {
			if _, ok := waitFor(2*time.Second, func() bool { return r.breaker.State(ctx) == bulwark.Closed }); !ok {
				t.Errorf("replica %d: breaker %v, want closed after a successful trial", r.id, r.breaker.State(ctx))
			}
		}
		got.check(t, "breaker")
	}
	if t.Failed() {
		return
	}

	// Phase 3: Redis killed mid-load, then restarted on the same port.
	func() {
		var got outcomes
		dep.resetPeaks()
		load := startLoad(stackReplicas, 4, time.Millisecond, func(ctx context.Context, r, _ int) {
			got.record(reps[r].run(ctx, dep))
		})
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				load.finish()
			}
		}
		defer stop()
		time.Sleep(300 * time.Millisecond)

		// SIGKILL mid-load.
		atKill := snapshots(fleet)
		killedAt := time.Now()
		srv.Kill()
		if took, ok := waitFor(3*time.Second, func() bool {
			for _, r := range fleet {
				if r.store.Healthy() {
					return false
				}
			}
			return true
		}); !ok {
			t.Fatalf("stores still healthy %v after Redis was killed", took)
		} else {
			t.Logf("every store degraded within %v of the kill", took.Round(time.Millisecond))
		}
		// Calls admitted before the outage end within a call's time; from
		// then on each replica runs at most its share of the bulkhead.
		time.Sleep(3 * stackWork)
		dep.resetPeaks()
		time.Sleep(time.Second)
		beforeRestart := snapshots(fleet)
		outage := time.Since(killedAt)
		for i, r := range fleet {
			d := beforeRestart[i].sub(atKill[i])
			bound := bucketBound(stackShare, outage+stackTimeout)
			peak := dep.replicaPeak[i].Load()
			t.Logf("replica %d during %v of outage: admitted locally %d (share bound %d), denied locally %d, breaker twin events %d, peak in flight %d (share %d), replicas known %d",
				i, outage.Round(time.Millisecond), d.allowedDegraded, bound, d.deniedDegraded, d.breakerDegraded, peak, stackBulkheadShare, r.members.Replicas())
			if d.allowedDegraded+d.deniedDegraded == 0 {
				t.Errorf("replica %d made no degraded decision while Redis was down", i)
			}
			if d.breakerDegraded == 0 {
				t.Errorf("replica %d: no breaker event flagged Degraded while Redis was down", i)
			}
			if d.allowedDegraded > bound {
				t.Errorf("replica %d admitted %d calls locally in %v, above its fair share's bound %d", i, d.allowedDegraded, outage, bound)
			}
			if peak > stackBulkheadShare {
				t.Errorf("replica %d ran %d calls at once while Redis was down, above its bulkhead share %d", i, peak, stackBulkheadShare)
			}
			if n := r.members.Replicas(); n != stackReplicas {
				t.Errorf("replica %d: membership counts %d replicas during the outage, want the last known %d", i, n, stackReplicas)
			}
			if !hasHealthEvent(r.rec, true) {
				t.Errorf("replica %d: no EventStoreHealth with Degraded set", i)
			}
		}

		// Restart on the same port: the replicas return by themselves.
		srv.Restart()
		took, ok := waitFor(5*time.Second, func() bool {
			for _, r := range reps {
				if !r.store.Healthy() || r.breaker.Degraded() || r.bulkhead.Degraded() {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("replicas not back on Redis %v after the restart", took)
		}
		t.Logf("every replica back on Redis within %v of the restart", took.Round(time.Millisecond))
		for i, r := range fleet {
			if !hasHealthEvent(r.rec, false) {
				t.Errorf("replica %d: no EventStoreHealth announcing recovery", i)
			}
		}
		// Calls admitted by the twins end within a call's time; from then
		// on the limits are fleet-wide again.
		time.Sleep(3 * stackWork)
		dep.resetPeaks()
		afterRecovery := snapshots(fleet)
		start := time.Now()
		time.Sleep(time.Second)
		stop()
		elapsed := time.Since(start)
		per := diff(snapshots(fleet), afterRecovery)
		d := total(per)
		bound := bucketBound(stackLimit, elapsed+stackTimeout)
		peak := dep.peak.Load()
		t.Logf("after recovery, over %v: admitted by Redis %d (bound %d), denied %d, decided locally %d; peak in flight %d (cap %d)",
			elapsed.Round(time.Millisecond), d.allowed, bound, d.denied, d.allowedDegraded+d.deniedDegraded, peak, stackBulkhead.MaxConcurrent)
		if d.allowed > bound {
			t.Errorf("after recovery the fleet admitted %d calls through Redis in %v, above the limit's bound %d", d.allowed, elapsed, bound)
		}
		for i, c := range per {
			if c.allowed+c.denied == 0 {
				t.Errorf("replica %d made no decision through Redis after recovery", i)
			}
		}
		if d.bulkheadDegraded == 0 && peak > int64(stackBulkhead.MaxConcurrent) {
			t.Errorf("after recovery %d calls ran at once across the fleet, above the bulkhead's cap %d", peak, stackBulkhead.MaxConcurrent)
		}
		got.check(t, "outage")
		if got.degradedDenials.Load() == 0 {
			t.Errorf("no caller saw a rate-limit rejection flagged Degraded while Redis was down")
		}
		redistest.CheckTTLs(t, admin, prefix, maxTTL)
	}()
}

// hasHealthEvent reports whether r saw a health switch to degraded (or, with
// degraded false, back to healthy).
func hasHealthEvent(r *recorder, degraded bool) bool {
	for _, e := range r.healthEvents() {
		if e.Degraded == degraded {
			return true
		}
	}
	return false
}
