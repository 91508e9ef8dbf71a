package integration_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// replica is one simulated service instance: its own Redis client (built as
// the README tells users to build it), its own store and, when asked for,
// its own membership in the replica group.
type replica struct {
	id      int
	client  *redis.Client
	store   *distributed.Store
	members *cluster.Membership // nil unless fleetConfig.membership
	rec     *recorder
}

// fleetConfig shapes the replicas of one test.
type fleetConfig struct {
	replicas   int
	timeout    time.Duration // the stores' call budget
	membership bool          // join a cluster.Membership and count replicas from it
	opts       []distributed.Option
}

// startFleet starts cfg.replicas replicas on the server at addr, all under
// prefix. Everything is closed at the test's cleanup: stores first, then
// memberships, then clients.
func startFleet(t *testing.T, addr, prefix string, cfg fleetConfig) []*replica {
	t.Helper()
	reps := make([]*replica, cfg.replicas)
	for i := range reps {
		r := &replica{id: i, rec: newRecorder()}
		r.client = redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: addr}, cfg.timeout))
		t.Cleanup(func() { _ = r.client.Close() })
		opts := []distributed.Option{
			distributed.WithPrefix(prefix),
			distributed.WithTimeout(cfg.timeout),
			distributed.WithObserver(r.rec),
			distributed.WithReplicas(cfg.replicas),
		}
		if cfg.membership {
			m, err := cluster.Join(r.client, cluster.WithPrefix(prefix), cluster.WithID("replica-"+strconv.Itoa(i)))
			if err != nil {
				t.Fatalf("cluster.Join: %v", err)
			}
			r.members = m
			t.Cleanup(func() { _ = m.Close() })
			opts = append(opts, distributed.WithReplicaCounter(m))
		}
		s, err := distributed.New(r.client, append(opts, cfg.opts...)...)
		if err != nil {
			t.Fatalf("distributed.New: %v", err)
		}
		r.store = s
		t.Cleanup(func() { _ = s.Close() })
		reps[i] = r
	}
	return reps
}

// testPrefix returns a key prefix of the test's own (without the trailing
// colon redistest adds), whose keys are deleted at cleanup.
func testPrefix(t *testing.T, admin redis.UniversalClient) string {
	t.Helper()
	return strings.TrimSuffix(redistest.Prefix(t, admin), ":")
}

// waitFor polls cond every 10ms until it holds or timeout passes, and
// reports how long it took and whether it held.
func waitFor(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allHealthy reports whether every replica's store sends its calls to Redis.
func allHealthy(reps []*replica) bool {
	for _, r := range reps {
		if !r.store.Healthy() {
			return false
		}
	}
	return true
}

// recorder is a store observer that counts what the tests check: limiter
// decisions (by outcome and by whether Redis made them), bulkhead grants,
// and health switches.
type recorder struct {
	allowed, allowedDegraded atomic.Int64
	denied, deniedDegraded   atomic.Int64
	bulkheadDegraded         atomic.Int64 // slots granted without Redis
	breakerDegraded          atomic.Int64 // breaker events of the local twin

	mu     sync.Mutex
	health []bulwark.Event
}

func newRecorder() *recorder { return &recorder{} }

// Observe is called by the store, its limiters, bulkheads and breakers.
func (r *recorder) Observe(e bulwark.Event) {
	switch e.Kind {
	case bulwark.EventDecision:
		switch {
		case e.Allowed && e.Degraded:
			r.allowedDegraded.Add(1)
		case e.Allowed:
			r.allowed.Add(1)
		case e.Degraded:
			r.deniedDegraded.Add(1)
		default:
			r.denied.Add(1)
		}
	case bulwark.EventBulkheadAcquired:
		if e.Degraded {
			r.bulkheadDegraded.Add(1)
		}
	case bulwark.EventBreakerOutcome, bulwark.EventBreakerRejected, bulwark.EventBreakerTransition:
		if e.Degraded {
			r.breakerDegraded.Add(1)
		}
	case bulwark.EventStoreHealth:
		r.mu.Lock()
		r.health = append(r.health, e)
		r.mu.Unlock()
	}
}

// healthEvents returns the health switches seen so far.
func (r *recorder) healthEvents() []bulwark.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.health)
}

// counts is a snapshot of a recorder's counters.
type counts struct {
	allowed, allowedDegraded, denied, deniedDegraded, bulkheadDegraded, breakerDegraded int64
}

func (r *recorder) snapshot() counts {
	return counts{
		allowed:          r.allowed.Load(),
		allowedDegraded:  r.allowedDegraded.Load(),
		denied:           r.denied.Load(),
		deniedDegraded:   r.deniedDegraded.Load(),
		bulkheadDegraded: r.bulkheadDegraded.Load(),
		breakerDegraded:  r.breakerDegraded.Load(),
	}
}

func (c counts) sub(o counts) counts {
	return counts{
		allowed:          c.allowed - o.allowed,
		allowedDegraded:  c.allowedDegraded - o.allowedDegraded,
		denied:           c.denied - o.denied,
		deniedDegraded:   c.deniedDegraded - o.deniedDegraded,
		bulkheadDegraded: c.bulkheadDegraded - o.bulkheadDegraded,
		breakerDegraded:  c.breakerDegraded - o.breakerDegraded,
	}
}

// snapshots takes one snapshot per replica.
func snapshots(reps []*replica) []counts {
	out := make([]counts, len(reps))
	for i, r := range reps {
		out[i] = r.rec.snapshot()
	}
	return out
}

// diff subtracts two lists of per-replica snapshots.
func diff(after, before []counts) []counts {
	out := make([]counts, len(after))
	for i := range after {
		out[i] = after[i].sub(before[i])
	}
	return out
}

// total sums per-replica counts.
func total(cs []counts) counts {
	var t counts
	for _, c := range cs {
		t.allowed += c.allowed
		t.allowedDegraded += c.allowedDegraded
		t.denied += c.denied
		t.deniedDegraded += c.deniedDegraded
		t.bulkheadDegraded += c.bulkheadDegraded
		t.breakerDegraded += c.breakerDegraded
	}
	return t
}

// bucketBound is the most a token bucket of limit l can admit over elapsed:
// its capacity plus what refills meanwhile, plus one for the refill in
// progress.
func bucketBound(l bulwark.Limit, elapsed time.Duration) int64 {
	return int64(l.Capacity()) + int64(float64(l.Events)*elapsed.Seconds()/l.Period.Seconds()) + 1
}

// loadRun runs workers goroutines per replica, each calling call(replica,
// worker) with pause in between, until stop is called.
type loadRun struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(reps int, workers int, pause time.Duration, call func(ctx context.Context, replica, worker int)) *loadRun {
	l := &loadRun{stop: make(chan struct{})}
	for r := range reps {
		for w := range workers {
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					call(context.Background(), r, w)
					if pause > 0 {
						time.Sleep(pause)
					}
				}
			})
		}
	}
	return l
}

// finish stops the load and waits for every worker.
func (l *loadRun) finish() {
	close(l.stop)
	l.wg.Wait()
}

// maxInt64 raises m to v when v is larger.
func maxInt64(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
