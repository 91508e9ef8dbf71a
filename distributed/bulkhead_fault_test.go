package distributed_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

// bhFault is a store on a Redis of the test's own, reached through a proxy,
// for fault injection.
type bhFault struct {
	srv    *redistest.Server
	proxy  *redistest.Proxy
	client *redis.Client
	prefix string
	log    *bhEventLog
	store  *distributed.Store
}

// newBHFault starts the server, the proxy and a client built with
// distributed.ClientOptions, and a store on it with a fast prober.
func newBHFault(t *testing.T, serverArgs []string, opts ...distributed.Option) *bhFault {
	t.Helper()
	f := &bhFault{srv: redistest.StartServer(t, serverArgs...), log: &bhEventLog{}}
	f.proxy = redistest.NewProxy(t, f.srv.Addr())
	f.client = redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: f.proxy.Addr()}, 0))
	t.Cleanup(func() { _ = f.client.Close() })
	f.prefix = redistest.Prefix(t, f.client)
	f.store = f.newStore(t, opts...)
	return f
}

// newStore opens another store (another replica) on the fault's client.
func (f *bhFault) newStore(t *testing.T, opts ...distributed.Option) *distributed.Store {
	t.Helper()
	s, err := distributed.New(f.client, append([]distributed.Option{
		distributed.WithPrefix(f.prefix),
		distributed.WithObserver(f.log),
		distributed.WithProbeInterval(20 * time.Millisecond),
		distributed.WithMinDegraded(0),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// degradedNow kills the server and makes one call fail, which turns a
// store with failure threshold 1 degraded.
func degradedNow(t *testing.T, f *bhFault, b *distributed.Bulkhead) (release func()) {
	t.Helper()
	f.srv.Kill()
	r, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire with Redis just killed: %v", err)
	}
	if f.store.Healthy() {
		t.Fatal("store still healthy after a failed call with failure threshold 1")
	}
	return r
}

// While degraded, FailLocal answers from a twin holding this replica's fair
// share, counting the calls that still hold Redis leases; FailOpen admits
// all; FailClosed rejects all. Every answer is flagged Degraded.
func TestBulkheadDegradedPolicies(t *testing.T) {
	f := newBHFault(t, nil, distributed.WithFailureThreshold(1), distributed.WithMinDegraded(time.Hour), distributed.WithMaxDegraded(time.Hour), distributed.WithReplicas(2))
	cfg := bulwark.BulkheadConfig{MaxConcurrent: 5} // share: ceil(5/2) = 3
	b := newBulkhead(t, f.store, "twin", cfg)
	open := newBulkhead(t, f.store, "open", bulwark.BulkheadConfig{MaxConcurrent: 1}, distributed.WithBulkheadFailurePolicy(distributed.FailOpen))
	closed := newBulkhead(t, f.store, "closed", cfg, distributed.WithBulkheadFailurePolicy(distributed.FailClosed))
	inRedis := bhAcquire(t, b) // a call running when Redis goes away

	first := degradedNow(t, f, b) // the twin: share 3, one slot carried for inRedis
	second := bhAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("fourth call in the outage (share 3, one held in Redis): got %v, want ErrBulkheadFull", err)
	}
	inRedis() // its release cannot reach Redis; the carried slot is freed
	third := bhAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("call beyond the share: got %v, want ErrBulkheadFull", err)
	}
	for _, r := range []func(){first, second, third} {
		r()
		r() // harmless
	}
	var rels []func()
	for range 3 {
		rels = append(rels, bhAcquire(t, b))
	}
	for _, r := range rels {
		r()
	}

	for range 5 {
		defer bhAcquire(t, open)()
	}
	if _, err := closed.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("FailClosed while degraded: got %v, want ErrBulkheadFull", err)
	}

	for _, e := range f.log.of(bulwark.EventBulkheadAcquired) {
		switch {
		case e.Name == "twin" && e.Degraded && e.Limit != 3:
			t.Errorf("twin event %+v: want Limit 3 (the share)", e)
		case e.Name == "twin" && !e.Degraded && e.Limit != 5:
			t.Errorf("redis event %+v: want Limit 5", e)
		case e.Name == "open" && !e.Degraded:
			t.Errorf("FailOpen event %+v: want Degraded", e)
		}
	}
	var degraded, redisReleased int
	for _, e := range f.log.of(bulwark.EventBulkheadReleased) {
		if e.Name == "twin" && e.Degraded {
			degraded++
		}
		if e.Name == "twin" && !e.Degraded {
			redisReleased++
			if !errors.Is(e.Err, distributed.ErrUnavailable) {
				t.Errorf("release of a lease during the outage: event Err %v, want ErrUnavailable", e.Err)
			}
		}
	}
	if degraded != 6 || redisReleased != 1 {
		t.Errorf("release events: %d degraded, %d from Redis; want 6 and 1 (one per grant)", degraded, redisReleased)
	}
	rej := f.log.of(bulwark.EventBulkheadRejected)
	if len(rej) != 3 {
		t.Errorf("%d rejection events, want 3", len(rej))
	}
	for _, e := range rej {
		if !e.Degraded || !errors.Is(e.Err, bulwark.ErrBulkheadFull) {
			t.Errorf("rejection event %+v: want Degraded and ErrBulkheadFull", e)
		}
	}
}

// The twin's MaxWait runs on the store's clock: a fake clock drives it; a
// cancelled waiter leaks no slot.
func TestBulkheadDegradedWaitsOnStoreClock(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	f := newBHFault(t, nil, distributed.WithFailureThreshold(1), distributed.WithMinDegraded(time.Hour), distributed.WithMaxDegraded(time.Hour), distributed.WithClock(clk))
	b := newBulkhead(t, f.store, "clock", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Second})
	rel := degradedNow(t, f, b)

	// Armed timers: the store's prober (it stays degraded) and the waiter's.
	got := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background())
		got <- err
	}()
	clk.WaitTimers(2)
	clk.Advance(time.Second)
	if err := <-got; !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("waiter past MaxWait on the fake clock: got %v, want ErrBulkheadFull", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := b.Acquire(ctx)
		got <- err
	}()
	clk.WaitTimers(2) // the prober's next probe and the waiter's
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: got %v, want context.Canceled", err)
	}
	rel()
	bhAcquire(t, b)() // the slot is free: neither waiter kept it

	// Each twin wait reported its start and its end, as the bulkhead's own
	// events, flagged Degraded.
	queued, dequeued := f.log.of(bulwark.EventBulkheadQueued), f.log.of(bulwark.EventBulkheadDequeued)
	if len(queued) != 2 || len(dequeued) != 2 {
		t.Fatalf("%d queued and %d dequeued events, want 2 and 2", len(queued), len(dequeued))
	}
	for _, e := range append(queued, dequeued...) {
		if e.Name != "clock" || !e.Degraded || e.Limit != 1 || e.Allowed {
			t.Errorf("wait event %+v: want name clock, Degraded, Limit 1, no slot", e)
		}
	}
	if !errors.Is(dequeued[0].Err, bulwark.ErrBulkheadFull) || dequeued[0].Duration != time.Second {
		t.Errorf("first dequeued event %+v: want ErrBulkheadFull after 1s", dequeued[0])
	}
	if !errors.Is(dequeued[1].Err, context.Canceled) {
		t.Errorf("second dequeued event %+v: want context.Canceled", dequeued[1])
	}
}

// faultCallers runs goroutines × rounds calls against b while a fault is
// on: every call must be admitted or rejected with ErrBulkheadFull.
func faultCallers(t *testing.T, b *distributed.Bulkhead, goroutines, rounds int) (admitted int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r, err := b.Acquire(ctx)
				cancel()
				switch {
				case err == nil:
					time.Sleep(2 * time.Millisecond) // the protected work
					r()
					mu.Lock()
					admitted++
					mu.Unlock()
				case !errors.Is(err, bulwark.ErrBulkheadFull):
					t.Errorf("Acquire during the fault: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	return admitted
}

// The fault suite: Redis killed, frozen (SIGSTOP) or partitioned away.
// Callers see no error beyond ErrBulkheadFull, answers are flagged
// Degraded, the store returns to Redis after the fault, slots held across
// it go back where they came from, and no lease outlives its TTL.
func TestBulkheadFaults(t *testing.T) {
	const ttl = time.Second
	faults := []struct {
		name         string
		inject, heal func(f *bhFault)
	}{
		{"kill", func(f *bhFault) { f.srv.Kill() }, func(f *bhFault) { f.srv.Restart() }},
		{"freeze", func(f *bhFault) { f.srv.Pause() }, func(f *bhFault) { f.srv.Resume() }},
		{"partition", func(f *bhFault) { f.proxy.Blackhole(true) }, func(f *bhFault) { f.proxy.Blackhole(false) }},
	}
	for _, fc := range faults {
		t.Run(fc.name, func(t *testing.T) {
			f := newBHFault(t, nil, distributed.WithReplicas(2))
			b := newBulkhead(t, f.store, "fault", bulwark.BulkheadConfig{MaxConcurrent: 4, MaxWait: 100 * time.Millisecond, LeaseTTL: ttl})
			held := bhAcquire(t, b) // held in Redis across the fault
			if got := bhHolders(t, f.store, "fault"); got != 1 {
				t.Fatalf("%d holders before the fault, want 1", got)
			}

			fc.inject(f)
			start := time.Now()
			admitted := faultCallers(t, b, 4, 10)
			if f.store.Healthy() {
				t.Fatalf("store healthy after 40 calls during the fault")
			}
			twinSlot := bhAcquire(t, b) // held across the recovery
			held()                      // cannot reach Redis: its lease expires instead
			t.Logf("%s: %d of 40 calls admitted in %v", fc.name, admitted, time.Since(start).Round(time.Millisecond))

			var degraded int
			for _, e := range f.log.of(bulwark.EventBulkheadAcquired) {
				if e.Degraded {
					degraded++
					if e.Limit != 2 {
						t.Errorf("degraded event %+v: want Limit 2 (the share of 4 over 2 replicas)", e)
					}
				}
			}
			if degraded == 0 {
				t.Errorf("no degraded acquisition during the fault")
			}

			fc.heal(f)
			waitHealthy(t, f.store, 10*time.Second)
			r := bhAcquire(t, b)
			evs := f.log.of(bulwark.EventBulkheadAcquired)
			if last := evs[len(evs)-1]; last.Degraded {
				t.Errorf("acquisition after recovery %+v: want it from Redis", last)
			}
			twinSlot() // back to the twin it came from
			if rel := f.log.of(bulwark.EventBulkheadReleased); !rel[len(rel)-1].Degraded {
				t.Errorf("release of the twin's slot after recovery %+v: want it flagged Degraded", rel[len(rel)-1])
			}
			r()
			healed := time.Now()
			bhEventually(t, ttl+3*time.Second, "every lease to go", func() bool {
				h, err := f.store.BulkheadHolders(context.Background(), "fault")
				return err == nil && len(h) == 0
			})
			t.Logf("%s: no lease left %v after recovery (lease TTL %v)", fc.name, time.Since(healed).Round(time.Millisecond), ttl)
			var rels []func()
			for range 4 {
				rels = append(rels, bhAcquire(t, b))
			}
			for _, r := range rels {
				r()
			}
		})
	}
}

// Redis restarted empty while leases are held: the holders are told they
// lost them, no slot stays taken, and their late releases free nothing
// twice.
func TestBulkheadRedisRestartEmpty(t *testing.T) {
	f := newBHFault(t, nil)
	lost := make(chan error, 4)
	b := newBulkhead(t, f.store, "restart", bulwark.BulkheadConfig{MaxConcurrent: 3, LeaseTTL: 300 * time.Millisecond},
		distributed.WithOnLeaseLost(func(err error) { lost <- err }))
	old := []func(){bhAcquire(t, b), bhAcquire(t, b)}
	f.srv.Kill()
	f.srv.Restart()
	for range 2 {
		select {
		case err := <-lost:
			if !errors.Is(err, semaphore.ErrLeaseLost) {
				t.Errorf("lease lost callback: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no lease lost callback after Redis restarted empty")
		}
	}
	waitHealthy(t, f.store, 10*time.Second)
	var rels []func()
	for range 3 {
		rels = append(rels, bhAcquire(t, b))
	}
	for _, r := range old {
		r()
	}
	if got := bhHolders(t, f.store, "restart"); got != 3 {
		t.Fatalf("after releasing the lost leases: %d holders, want the 3 new ones", got)
	}
	for _, r := range rels {
		r()
	}
	if got := bhHolders(t, f.store, "restart"); got != 0 {
		t.Fatalf("%d holders after all released, want 0", got)
	}
	if n := len(f.log.of(bulwark.EventLeaseLost)); n != 2 {
		t.Errorf("%d lease lost events, want 2", n)
	}
}

// Redis restarted with its data: a live holder keeps its lease through
// keepalive, and the lease of a holder that died meanwhile is gone within
// one TTL of the restart.
func TestBulkheadRedisRestartPersistent(t *testing.T) {
	const ttl = 3 * time.Second
	f := newBHFault(t, []string{"--appendonly", "yes", "--appendfsync", "always"})
	cfg := bulwark.BulkheadConfig{MaxConcurrent: 3, LeaseTTL: ttl}
	live := newBulkhead(t, f.store, "persist", cfg)
	deadStore := f.newStore(t)
	dead := newBulkhead(t, deadStore, "persist", cfg)
	kept := bhAcquire(t, live)
	bhAcquire(t, dead)
	bhAcquire(t, dead)
	_ = deadStore.Close() // stops renewing: a replica that died

	f.srv.Kill()
	f.srv.Restart()
	restarted := time.Now()
	waitHealthy(t, f.store, 10*time.Second)
	bhEventually(t, ttl+3*time.Second, "the dead replica's leases to expire", func() bool {
		h, err := f.store.BulkheadHolders(context.Background(), "persist")
		return err == nil && len(h) == 1
	})
	t.Logf("dead replica's slots back %v after the restart (lease TTL %v)", time.Since(restarted).Round(time.Millisecond), ttl)
	time.Sleep(ttl) // real time: the live lease must outlive its TTL
	if got := bhHolders(t, f.store, "persist"); got != 1 {
		t.Fatalf("%d holders a TTL later, want the live one", got)
	}
	for _, e := range f.log.of(bulwark.EventLeaseLost) {
		if e.Name == "persist" && e.Time.After(restarted) {
			t.Errorf("lease lost after the restart: %+v", e)
		}
	}
	kept()
	if got := bhHolders(t, f.store, "persist"); got != 0 {
		t.Errorf("%d holders after release, want 0", got)
	}
}

// On a server that has not cached the semaphore's scripts (fresh, or after
// SCRIPT FLUSH) the store sends their source: calls are answered by Redis,
// not by the twin.
func TestBulkheadScriptFlush(t *testing.T) {
	f := newBHFault(t, nil)
	b := newBulkhead(t, f.store, "flush", bulwark.BulkheadConfig{MaxConcurrent: 2})
	for range 2 {
		f.srv.Do(t, "SCRIPT", "FLUSH")
		r := bhAcquire(t, b)
		if got := bhHolders(t, f.store, "flush"); got != 1 {
			t.Fatalf("%d holders after SCRIPT FLUSH and Acquire, want 1", got)
		}
		f.srv.Do(t, "SCRIPT", "FLUSH")
		r()
		if got := bhHolders(t, f.store, "flush"); got != 0 {
			t.Fatalf("%d holders after SCRIPT FLUSH and release, want 0", got)
		}
	}
	for _, k := range []bulwark.EventKind{bulwark.EventBulkheadAcquired, bulwark.EventBulkheadReleased} {
		for _, e := range f.log.of(k) {
			if e.Degraded || e.Err != nil {
				t.Errorf("event %+v: want a Redis answer", e)
			}
		}
	}
}

// Slots a twin handed out stay counted when the store switches again and a
// new twin is built: a replica whose calls still hold an earlier outage's
// slots never runs more than its share.
func TestBulkheadTwinCarriesEarlierTwinSlots(t *testing.T) {
	f := newBHFault(t, nil, distributed.WithFailureThreshold(1), distributed.WithReplicas(2))
	b := newBulkhead(t, f.store, "carry", bulwark.BulkheadConfig{MaxConcurrent: 4}) // share: 2
	first := degradedNow(t, f, b)                                                   // outage 1: twin 1
	second := bhAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("third call on a share of 2: got %v, want ErrBulkheadFull", err)
	}

	f.srv.Restart() // Redis back: the store recovers while both calls run on
	deadline := time.Now().Add(5 * time.Second)
	for !f.store.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", f.store.HealthError())
		}
		time.Sleep(5 * time.Millisecond)
	}

	f.srv.Kill() // outage 2: the next call degrades the store and builds twin 2
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("call in a second outage while twin 1's two slots are held: got %v, want ErrBulkheadFull", err)
	}
	if f.store.Healthy() {
		t.Fatal("store healthy with Redis killed")
	}
	first() // one of twin 1's slots comes back: twin 2 has room for one call
	third := bhAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("call beyond the share: got %v, want ErrBulkheadFull", err)
	}
	second()
	fourth := bhAcquire(t, b)
	third()
	fourth()
}
