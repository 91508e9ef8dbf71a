package distributed_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

// Environment passed from a bulkhead test to its child processes.
const (
	envBulkheadAddr   = "BW_BH_ADDR"
	envBulkheadPrefix = "BW_BH_PREFIX"
)

// bhEventLog records events for assertions.
type bhEventLog struct {
	mu     sync.Mutex
	events []bulwark.Event
}

func (l *bhEventLog) Observe(e bulwark.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// of returns the recorded events of kind with Pattern "bulkhead".
func (l *bhEventLog) of(kind bulwark.EventKind) []bulwark.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []bulwark.Event
	for _, e := range l.events {
		if e.Kind == kind && e.Pattern == "bulkhead" {
			out = append(out, e)
		}
	}
	return out
}

// newBulkhead builds a bulkhead of s, closed at cleanup.
func newBulkhead(tb testing.TB, s *distributed.Store, name string, c bulwark.BulkheadConfig, opts ...distributed.BulkheadOption) *distributed.Bulkhead {
	tb.Helper()
	b, err := s.Bulkhead(name, c, opts...)
	if err != nil {
		tb.Fatalf("Bulkhead(%q, %v): %v", name, c, err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

func bhAcquire(tb testing.TB, b bulwark.Bulkhead) func() {
	tb.Helper()
	release, err := b.Acquire(context.Background())
	if err != nil {
		tb.Fatalf("Acquire: %v", err)
	}
	return release
}

// bhHolders returns how many leases the bulkhead has in Redis.
func bhHolders(tb testing.TB, s *distributed.Store, name string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := s.BulkheadHolders(ctx, name)
	if err != nil {
		tb.Fatalf("BulkheadHolders(%q): %v", name, err)
	}
	return len(h)
}

// bhEventually polls cond until it holds or timeout passes: for conditions
// that real time or another process makes true.
func bhEventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestBulkheadRejectsBadConfig(t *testing.T) {
	s, c, _ := testStore(t, nil)
	good := bulwark.BulkheadConfig{MaxConcurrent: 2}
	for _, tc := range []struct {
		name string
		bh   string
		c    bulwark.BulkheadConfig
		opts []distributed.BulkheadOption
	}{
		{"zero max", "b", bulwark.BulkheadConfig{}, nil},
		{"negative max wait", "b", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: -1}, nil},
		{"negative max waiting", "b", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWaiting: -1}, nil},
		{"lease TTL too short", "b", bulwark.BulkheadConfig{MaxConcurrent: 1, LeaseTTL: time.Millisecond}, nil},
		{"lease TTL too long", "b", bulwark.BulkheadConfig{MaxConcurrent: 1, LeaseTTL: semaphore.MaxLeaseTTL + time.Second}, nil},
		{"capacity too large", "b", bulwark.BulkheadConfig{MaxConcurrent: semaphore.MaxCapacity + 1}, nil},
		{"empty name", "", good, nil},
		{"unknown policy", "b", good, []distributed.BulkheadOption{distributed.WithBulkheadFailurePolicy(42)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s.Bulkhead(tc.bh, tc.c, tc.opts...)
			if !errors.Is(err, bulwark.ErrInvalidConfig) || b != nil {
				t.Errorf("got (%v, %v), want an error wrapping ErrInvalidConfig", b, err)
			}
		})
	}
	t.Run("closed store", func(t *testing.T) {
		ns, _, _ := testStore(t, c)
		_ = ns.Close()
		if _, err := ns.Bulkhead("b", good); !errors.Is(err, distributed.ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
		if _, err := ns.BulkheadHolders(context.Background(), "b"); !errors.Is(err, distributed.ErrClosed) {
			t.Errorf("BulkheadHolders: got %v, want ErrClosed", err)
		}
	})
	if _, err := s.BulkheadHolders(context.Background(), ""); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("BulkheadHolders with no name: got %v, want ErrInvalidArgument", err)
	}
	b := newBulkhead(t, s, "defaults", good)
	if got := b.Config().LeaseTTL; got != bulwark.DefaultLeaseTTL {
		t.Errorf("LeaseTTL 0 became %v, want %v", got, bulwark.DefaultLeaseTTL)
	}
}

// Acquire and release without waiting: capacity holds, each call is one
// lease of weight 1, a second release does nothing, keys expire.
func TestBulkheadAcquireRelease(t *testing.T) {
	log := &bhEventLog{}
	s, c, prefix := testStore(t, nil, distributed.WithObserver(log))
	b := newBulkhead(t, s, "basic", bulwark.BulkheadConfig{MaxConcurrent: 3, LeaseTTL: time.Minute})
	var rels []func()
	for range 3 {
		rels = append(rels, bhAcquire(t, b))
	}
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("fourth Acquire: got %v, want ErrBulkheadFull", err)
	}
	h, err := b.Holders(context.Background())
	if err != nil || len(h) != 3 {
		t.Fatalf("Holders: got (%d, %v), want 3 leases", len(h), err)
	}
	for _, l := range h {
		if l.Weight != 1 || l.ExpiresIn <= 0 || l.ExpiresIn > time.Minute {
			t.Errorf("lease %+v: want weight 1 expiring within a minute", l)
		}
	}
	redistest.CheckTTLs(t, c, prefix, semaphore.FenceTTL)

	rels[0]()
	rels[0]() // harmless
	if got := bhHolders(t, s, "basic"); got != 2 {
		t.Fatalf("after one release (twice): %d holders, want 2", got)
	}
	rels[0] = bhAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire at capacity after a double release: got %v, want ErrBulkheadFull", err)
	}
	for _, r := range rels {
		r()
	}
	if got := bhHolders(t, s, "basic"); got != 0 {
		t.Fatalf("after all releases: %d holders, want 0", got)
	}

	acq, rej, rel := log.of(bulwark.EventBulkheadAcquired), log.of(bulwark.EventBulkheadRejected), log.of(bulwark.EventBulkheadReleased)
	if len(acq) != 4 || len(rej) != 2 || len(rel) != 4 {
		t.Fatalf("events: %d acquired, %d rejected, %d released; want 4, 2, 4", len(acq), len(rej), len(rel))
	}
	for _, e := range slices.Concat(acq, rej, rel) {
		if e.Name != "basic" || e.Limit != 3 || e.Degraded {
			t.Errorf("event %+v: want Name basic, Limit 3, not degraded", e)
		}
	}
	for _, e := range rej {
		if !errors.Is(e.Err, bulwark.ErrBulkheadFull) {
			t.Errorf("rejection event Err %v, want ErrBulkheadFull", e.Err)
		}
	}
	for _, e := range rel {
		if e.Err != nil {
			t.Errorf("release event Err %v, want nil", e.Err)
		}
	}
}

// MaxWait bounds the wait with ErrBulkheadFull (not the caller's deadline
// error); a waiter is woken by a release, also from another store.
func TestBulkheadMaxWait(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	b := newBulkhead(t, s, "wait", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: 20 * time.Millisecond})
	rel := bhAcquire(t, b)
	_, err := b.Acquire(context.Background())
	if !errors.Is(err, bulwark.ErrBulkheadFull) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past MaxWait: got %v, want ErrBulkheadFull only", err)
	}
	// The caller's own deadline, shorter than MaxWait, gives the caller's error.
	long := newBulkhead(t, s, "wait", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = long.Acquire(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire past the caller's deadline: got %v, want context.DeadlineExceeded", err)
	}

	other, _, _ := testStore(t, c, distributed.WithPrefix(prefix))
	ob := newBulkhead(t, other, "wait", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	got := make(chan error, 1)
	go func() {
		r, err := ob.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	bhEventually(t, 10*time.Second, "the waiter to queue in Redis", func() bool {
		n, err := b.Waiting(context.Background())
		return err == nil && n == 1
	})
	rel()
	if err := <-got; err != nil {
		t.Fatalf("waiter after the release: %v", err)
	}
}

// MaxWaiting caps this replica's waiters: one more is rejected at once
// with ErrBulkheadFull; the waiters get the slot in turn.
func TestBulkheadMaxWaiting(t *testing.T) {
	s, _, _ := testStore(t, nil)
	b := newBulkhead(t, s, "queue", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute, MaxWaiting: 2})
	rel := bhAcquire(t, b)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			r, err := b.Acquire(context.Background())
			if err == nil {
				r()
			}
			results <- err
		}()
	}
	bhEventually(t, 10*time.Second, "two waiters in Redis", func() bool {
		n, err := b.Waiting(context.Background())
		return err == nil && n == 2
	})
	start := time.Now()
	_, err := b.Acquire(context.Background())
	if !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("third waiter: got %v, want ErrBulkheadFull", err)
	}
	t.Logf("third waiter rejected after %v", time.Since(start))
	rel()
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("waiter: %v", err)
		}
	}
	if got := bhHolders(t, s, "queue"); got != 0 {
		t.Errorf("%d holders after all released, want 0", got)
	}
}

// Cancelled and timed-out waiters leak no slot and no queue entry, even
// when they race with releases and grants, with a client honouring context
// deadlines (ClientOptions) or not (the store then detaches its calls).
func TestBulkheadCancellationLeaksNoSlot(t *testing.T) {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	for _, tc := range []struct {
		name string
		opts *redis.Options
	}{
		{"deadlines", distributed.ClientOptions(&redis.Options{Addr: addr}, 2*time.Second)},
		{"detached", &redis.Options{Addr: addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(tc.opts)
			t.Cleanup(func() { _ = c.Close() })
			s, _, _ := testStore(t, c)
			b := newBulkhead(t, s, "cancel", bulwark.BulkheadConfig{MaxConcurrent: 3, MaxWait: time.Minute})

			done, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := b.Acquire(done); !errors.Is(err, context.Canceled) {
				t.Fatalf("Acquire with a done ctx: got %v, want context.Canceled", err)
			}

			var wg sync.WaitGroup
			var admitted, cancelled atomic.Int64
			for i := range 48 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%8)*time.Millisecond)
					defer cancel()
					r, err := b.Acquire(ctx)
					switch {
					case err == nil:
						admitted.Add(1)
						time.Sleep(time.Millisecond) // work
						r()
					case errors.Is(err, context.DeadlineExceeded):
						cancelled.Add(1)
					default:
						t.Errorf("Acquire: %v", err)
					}
				}()
			}
			wg.Wait()
			t.Logf("%d admitted, %d gave up", admitted.Load(), cancelled.Load())
			bhEventually(t, 10*time.Second, "abandoned queue entries to go", func() bool {
				n, err := b.Waiting(context.Background())
				return err == nil && n == 0
			})
			if got := bhHolders(t, s, "cancel"); got != 0 {
				t.Fatalf("%d holders after every caller ended, want 0", got)
			}
			nowait := newBulkhead(t, s, "cancel", bulwark.BulkheadConfig{MaxConcurrent: 3})
			for range 3 {
				defer bhAcquire(t, nowait)()
			}
		})
	}
}

// Close: Acquire returns ErrClosed, a blocked waiter too; held slots can
// still be released. The store's Close closes its bulkheads.
func TestBulkheadClose(t *testing.T) {
	lost := make(chan error, 4)
	s, c, prefix := testStore(t, nil)
	b, err := s.Bulkhead("close", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute},
		distributed.WithOnLeaseLost(func(err error) { lost <- err }))
	if err != nil {
		t.Fatal(err)
	}
	rel := bhAcquire(t, b)
	waiter := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background())
		waiter <- err
	}()
	bhEventually(t, 10*time.Second, "the waiter to queue", func() bool {
		n, err := b.Waiting(context.Background())
		return err == nil && n == 1
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiter; !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("waiter at Close: got %v, want ErrClosed", err)
	}
	if _, err := b.Acquire(context.Background()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Acquire after Close: got %v, want ErrClosed", err)
	}
	if err := <-lost; !errors.Is(err, semaphore.ErrLeaseLost) {
		t.Errorf("lease lost callback at Close: got %v, want ErrLeaseLost", err)
	}
	rel() // still frees the lease
	if got := bhHolders(t, s, "close"); got != 0 {
		t.Errorf("%d holders after releasing past Close, want 0", got)
	}
	_ = b.Close()

	other, _, _ := testStore(t, c, distributed.WithPrefix(prefix))
	ob := newBulkhead(t, other, "close", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	orel := bhAcquire(t, ob)
	_ = other.Close()
	if _, err := ob.Acquire(context.Background()); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Acquire after the store's Close: got %v, want ErrClosed", err)
	}
	orel()
}

// Two stores (two replicas) share the slots; so does a sync/semaphore of
// the same name under "<prefix>:".
func TestBulkheadSharedAcrossReplicas(t *testing.T) {
	s1, c, prefix := testStore(t, nil)
	s2, _, _ := testStore(t, c, distributed.WithPrefix(prefix))
	cfg := bulwark.BulkheadConfig{MaxConcurrent: 2}
	b1, b2 := newBulkhead(t, s1, "shared", cfg), newBulkhead(t, s2, "shared", cfg)
	r1 := bhAcquire(t, b1)
	r2 := bhAcquire(t, b2)
	if _, err := b1.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("third slot across replicas: got %v, want ErrBulkheadFull", err)
	}
	r1()
	sem, err := semaphore.New(c, "shared", 2, semaphore.WithPrefix(prefix+":"))
	if err != nil {
		t.Fatal(err)
	}
	defer sem.Close()
	l, ok, err := sem.TryAcquire(context.Background(), 1)
	if err != nil || !ok {
		t.Fatalf("semaphore of the same name: got (%v, %v), want the freed slot", ok, err)
	}
	if _, err := b2.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("slot taken through the semaphore: got %v, want ErrBulkheadFull", err)
	}
	_ = l.Release(context.Background())
	r2()
	if got := bhHolders(t, s1, "shared"); got != 0 {
		t.Errorf("%d holders, want 0", got)
	}
}

// A call held past LeaseTTL keeps its slot through keepalive.
func TestBulkheadKeepAlivePastTTL(t *testing.T) {
	const ttl = 60 * time.Millisecond
	log := &bhEventLog{}
	s, _, _ := testStore(t, nil, distributed.WithObserver(log))
	b := newBulkhead(t, s, "keep", bulwark.BulkheadConfig{MaxConcurrent: 1, LeaseTTL: ttl})
	rel := bhAcquire(t, b)
	time.Sleep(8 * ttl) // real time: the lease must outlive its TTL
	if got := bhHolders(t, s, "keep"); got != 1 {
		t.Fatalf("after 8 TTLs: %d holders, want the kept lease", got)
	}
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire while the kept lease lives: got %v, want ErrBulkheadFull", err)
	}
	rel()
	if lost := log.of(bulwark.EventLeaseLost); len(lost) != 0 {
		t.Errorf("lease lost events %+v, want none", lost)
	}
	if got := bhHolders(t, s, "keep"); got != 0 {
		t.Errorf("%d holders after release, want 0", got)
	}
}

// TestBulkheadAllocations guards the allocations of one uncontended
// acquire and release (two round trips; most allocations are go-redis's).
func TestBulkheadAllocations(t *testing.T) {
	s, _, _ := testStore(t, nil)
	b := newBulkhead(t, s, "allocs", bulwark.BulkheadConfig{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		r, err := b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r()
	})
	t.Logf("%.0f allocations per Acquire and release", allocs)
	if allocs > 120 {
		t.Errorf("%.0f allocations per Acquire and release, want at most 120", allocs)
	}
}

// Multi-process test parameters: 4 processes × 16 goroutines on 10 slots.
const (
	mpProcs    = 4
	mpWorkers  = 16
	mpCapacity = 10
	mpRounds   = 10
)

// enterScript counts a holder in (KEYS[1]) and keeps the most seen at once
// (KEYS[2]); leaveScript counts it out.
var (
	enterScript = redis.NewScript(`
local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 120000)
if v > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], v, 'PX', 120000)
end
return v`)
	leaveScript = redis.NewScript(`return redis.call('DECR', KEYS[1])`)
)

// 4 processes × 16 goroutines on a bulkhead of 10: a counter kept in Redis
// beside the critical section never sees more than 10 holders.
func TestBulkheadMultiProcess(t *testing.T) {
	if redistest.IsChild() {
		multiProcessChild(t)
		return
	}
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := c.(*redis.Client).Options().Addr
	outs := make([]*bytes.Buffer, mpProcs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range mpProcs {
		cmd := redistest.Child(t, t.Name(), envBulkheadAddr+"="+addr, envBulkheadPrefix+"="+prefix)
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %d: %v\n%s", i, err, outs[i])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		return
	}
	var calls int
	var work time.Duration
	for _, out := range outs {
		var n int
		var d int64
		if _, err := fmt.Sscanf(lastLine(out.String(), "CALLS "), "CALLS %d %d", &n, &d); err != nil {
			t.Fatalf("child output without its count: %v\n%s", err, out)
		}
		calls += n
		work = max(work, time.Duration(d))
	}
	if want := mpProcs * mpWorkers * mpRounds; calls != want {
		t.Fatalf("calls: %d, want %d", calls, want)
	}
	ctx := context.Background()
	maxSeen, err := c.Get(ctx, prefix+"max").Int64()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := c.Get(ctx, prefix+"cur").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if maxSeen > mpCapacity || maxSeen < 2 || cur != 0 {
		t.Fatalf("holders at once: max %d (want 2..%d), at the end %d (want 0)", maxSeen, mpCapacity, cur)
	}
	t.Logf("%d processes × %d goroutines, capacity %d: %d calls in %v (%.0f acquire+release/s), most holders at once %d; whole test %v",
		mpProcs, mpWorkers, mpCapacity, calls, work.Round(time.Millisecond), float64(calls)/work.Seconds(), maxSeen, elapsed.Round(time.Millisecond))
	s, _, _ := testStore(t, c, distributed.WithPrefix(prefix))
	if got := bhHolders(t, s, "mp"); got != 0 {
		t.Errorf("%d holders after every process ended, want 0", got)
	}
	redistest.CheckTTLs(t, c, prefix, semaphore.FenceTTL)
}

// lastLine returns the last line of out starting with prefix.
func lastLine(out, prefix string) string {
	var found string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = l
		}
	}
	return found
}

// multiProcessChild is one process of TestBulkheadMultiProcess: 16
// goroutines, each entering the critical section mpRounds times; it prints
// "CALLS <n> <ns of the run>".
func multiProcessChild(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: os.Getenv(envBulkheadAddr), PoolSize: 2 * mpWorkers})
	defer c.Close()
	prefix := os.Getenv(envBulkheadPrefix)
	log := &bhEventLog{}
	s, err := distributed.New(c, distributed.WithPrefix(prefix), distributed.WithTimeout(5*time.Second), distributed.WithObserver(log))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Bulkhead("mp", bulwark.BulkheadConfig{MaxConcurrent: mpCapacity, MaxWait: time.Minute, LeaseTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{prefix + "cur", prefix + "max"}
	var calls atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range mpWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range mpRounds {
				release, err := b.Acquire(ctx)
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if n, err := enterScript.Run(ctx, c, keys).Int64(); err != nil || n > mpCapacity {
					t.Errorf("enter: %d holders, %v", n, err)
				}
				time.Sleep(time.Millisecond) // the protected work
				if err := leaveScript.Run(ctx, c, keys[:1]).Err(); err != nil {
					t.Errorf("leave: %v", err)
				}
				release()
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	for _, k := range []bulwark.EventKind{bulwark.EventBulkheadAcquired, bulwark.EventBulkheadRejected, bulwark.EventBulkheadReleased, bulwark.EventLeaseLost} {
		for _, e := range log.of(k) {
			if e.Degraded || e.Kind == bulwark.EventBulkheadRejected || e.Kind == bulwark.EventLeaseLost {
				t.Errorf("unexpected event %+v", e)
			}
		}
	}
	fmt.Printf("CALLS %d %d\n", calls.Load(), time.Since(start).Nanoseconds())
}

// A holder process SIGKILLed while holding slots gives them back within
// one lease TTL; while it lives, keepalive holds them past the TTL.
func TestBulkheadKilledHolder(t *testing.T) {
	const ttl = 600 * time.Millisecond
	cfg := bulwark.BulkheadConfig{MaxConcurrent: 4, MaxWait: time.Minute, LeaseTTL: ttl}
	if redistest.IsChild() {
		c := redis.NewClient(&redis.Options{Addr: os.Getenv(envBulkheadAddr)})
		defer c.Close()
		s, err := distributed.New(c, distributed.WithPrefix(os.Getenv(envBulkheadPrefix)), distributed.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b, err := s.Bulkhead("kill", cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			bhAcquire(t, b)
		}
		fmt.Println("HELD")
		time.Sleep(time.Minute) // until killed
		return
	}
	s, c, prefix := testStore(t, nil)
	b := newBulkhead(t, s, "kill", cfg)
	cmd := redistest.Child(t, t.Name(), envBulkheadAddr+"="+c.(*redis.Client).Options().Addr, envBulkheadPrefix+"="+prefix)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := readLine(stdout, "HELD"); err != nil {
		t.Fatalf("child: %v", err)
	}
	time.Sleep(3 * ttl) // real time: the child's keepalive must hold its leases past the TTL
	if got := bhHolders(t, s, "kill"); got != 3 {
		t.Fatalf("after 3 TTLs: %d holders, want the child's 3", got)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = cmd.Wait()
	var rels []func()
	for range 4 { // needs the child's 3 slots
		rels = append(rels, bhAcquire(t, b))
	}
	took := time.Since(killed)
	t.Logf("capacity back %v after SIGKILL (lease TTL %v)", took, ttl)
	if took > ttl+2*time.Second {
		t.Errorf("capacity came back after %v, want within about the lease TTL %v", took, ttl)
	}
	for _, r := range rels {
		r()
	}
	if got := bhHolders(t, s, "kill"); got != 0 {
		t.Errorf("%d holders after all released, want 0", got)
	}
}

// readLine reads r until a line equal to want, then drains r in the
// background.
func readLine(r io.Reader, want string) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == want {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return nil
		}
	}
	return fmt.Errorf("exited without printing %q", want)
}

// wakeUps measures n hand-overs of the only slot from one replica to a
// waiter on another (each with its own client and subscription): the time
// from the holder's release returning to the waiter's Acquire returning.
func wakeUps(tb testing.TB, n int) []time.Duration {
	tb.Helper()
	s1, c, prefix := testStore(tb, nil)
	c2 := redis.NewClient(&redis.Options{Addr: c.(*redis.Client).Options().Addr})
	tb.Cleanup(func() { _ = c2.Close() })
	s2, _, _ := testStore(tb, c2, distributed.WithPrefix(prefix))
	cfg := bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute}
	holder, waiter := newBulkhead(tb, s1, "wake", cfg), newBulkhead(tb, s2, "wake", cfg)
	out := make([]time.Duration, 0, n)
	type result struct {
		at      time.Time
		release func()
		err     error
	}
	for range n {
		rel := bhAcquire(tb, holder)
		got := make(chan result, 1)
		go func() {
			r, err := waiter.Acquire(context.Background())
			got <- result{time.Now(), r, err}
		}()
		for {
			w, err := holder.Waiting(context.Background())
			if err != nil {
				tb.Fatal(err)
			}
			if w == 1 {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		rel()
		released := time.Now()
		r := <-got
		if r.err != nil {
			tb.Fatalf("waiter: %v", r.err)
		}
		out = append(out, r.at.Sub(released))
		r.release()
	}
	slices.Sort(out)
	return out
}

func bhPercentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// Waiters are woken by a release, not by polling: the hand-over takes a
// round trip or two, far below the one-second poll interval.
func TestBulkheadWakeUpLatency(t *testing.T) {
	lat := wakeUps(t, 100)
	p50, p99 := bhPercentile(lat, 0.5), bhPercentile(lat, 0.99)
	t.Logf("hand-over after release: p50 %v, p99 %v, max %v (poll interval %v)", p50, p99, lat[len(lat)-1], semaphore.DefaultPollInterval)
	if p50 >= semaphore.DefaultPollInterval/2 {
		t.Errorf("median hand-over %v: waiters are not woken by releases", p50)
	}
}

// BenchmarkBulkheadWakeUp reports the hand-over latency after a release
// (p50-ms, p99-ms): waiter woken through pub/sub, then one acquire round trip.
func BenchmarkBulkheadWakeUp(b *testing.B) {
	lat := wakeUps(b, max(b.N, 20))
	b.ReportMetric(float64(bhPercentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(bhPercentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkRedisBulkheadAcquireRelease is one uncontended Acquire and its
// release: two round trips.
func BenchmarkRedisBulkheadAcquireRelease(b *testing.B) {
	s, _, _ := testStore(b, nil)
	bh := newBulkhead(b, s, "bench", bulwark.BulkheadConfig{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := bh.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r()
	}
}

// A caller that waits in Redis reports EventBulkheadQueued, then one
// EventBulkheadDequeued saying how the wait ended; a caller served at once
// reports neither.
func TestBulkheadQueuedDequeuedEvents(t *testing.T) {
	log := &bhEventLog{}
	s, _, _ := testStore(t, nil, distributed.WithObserver(log))
	b := newBulkhead(t, s, "wait", bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: 10 * time.Second})
	hold := bhAcquire(t, b) // free: no wait
	if n := len(log.of(bulwark.EventBulkheadQueued)); n != 0 {
		t.Fatalf("%d queued events after an uncontended acquire, want 0", n)
	}
	got := make(chan error, 1)
	var release func()
	go func() {
		var err error
		release, err = b.Acquire(context.Background())
		got <- err
	}()
	bhEventually(t, 5*time.Second, "a queued event", func() bool { return len(log.of(bulwark.EventBulkheadQueued)) == 1 })
	hold()
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	release()

	// A waiter whose ctx ends.
	hold = bhAcquire(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := b.Acquire(ctx)
		got <- err
	}()
	bhEventually(t, 5*time.Second, "a second queued event", func() bool { return len(log.of(bulwark.EventBulkheadQueued)) == 2 })
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	hold()

	queued, dequeued := log.of(bulwark.EventBulkheadQueued), log.of(bulwark.EventBulkheadDequeued)
	if len(queued) != 2 || len(dequeued) != 2 {
		t.Fatalf("%d queued and %d dequeued events, want 2 and 2", len(queued), len(dequeued))
	}
	for _, e := range append(queued, dequeued...) {
		if e.Name != "wait" || e.Degraded || e.Limit != 1 {
			t.Errorf("wait event %+v: want name wait, not degraded, Limit 1", e)
		}
	}
	if d := dequeued[0]; !d.Allowed || d.Err != nil || d.Duration <= 0 {
		t.Errorf("first dequeued event %+v: want a slot after a positive wait", d)
	}
	if d := dequeued[1]; d.Allowed || !errors.Is(d.Err, context.Canceled) {
		t.Errorf("second dequeued event %+v: want no slot, context.Canceled", d)
	}
}
