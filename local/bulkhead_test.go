package local

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func newTestBulkhead(t *testing.T, c bulwark.BulkheadConfig) (*Bulkhead, *fakeclock.Clock, *eventTape) {
	t.Helper()
	clk := fakeclock.New(fakeclock.Epoch)
	log := &eventTape{}
	b, err := NewBulkhead(c, WithClock(clk), WithObserver(log), WithName("test"))
	if err != nil {
		t.Fatalf("NewBulkhead(%v): %v", c, err)
	}
	return b, clk, log
}

func bhMustAcquire(t *testing.T, b *Bulkhead) func() {
	t.Helper()
	release, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return release
}

// bhWaitFor spins (yielding, not sleeping) until cond holds.
func bhWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 10_000_000 {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.Gosched()
	}
}

type bhResult struct {
	release func()
	err     error
}

// bhAcquireAsync starts Acquire on its own goroutine and waits until it is
// queued (Waiting reaches queued).
func bhAcquireAsync(t *testing.T, ctx context.Context, b *Bulkhead, queued int) <-chan bhResult {
	t.Helper()
	ch := make(chan bhResult, 1)
	go func() {
		release, err := b.Acquire(ctx)
		ch <- bhResult{release, err}
	}()
	bhWaitFor(t, fmt.Sprintf("%d waiting", queued), func() bool { return b.Waiting() >= queued })
	return ch
}

func bhWantCounts(t *testing.T, b *Bulkhead, inUse, waiting int) {
	t.Helper()
	if got := b.InUse(); got != inUse {
		t.Fatalf("InUse = %d, want %d", got, inUse)
	}
	if got := b.Waiting(); got != waiting {
		t.Fatalf("Waiting = %d, want %d", got, waiting)
	}
}

func TestNewBulkheadRejectsBadConfig(t *testing.T) {
	for _, c := range []bulwark.BulkheadConfig{
		{MaxConcurrent: 0},
		{MaxConcurrent: 1, MaxWait: -1},
		{MaxConcurrent: 1, MaxWaiting: -1},
		{MaxConcurrent: 1, LeaseTTL: time.Millisecond},
	} {
		b, err := NewBulkhead(c)
		if !errors.Is(err, bulwark.ErrInvalidConfig) || b != nil {
			t.Errorf("NewBulkhead(%v) = (%v, %v), want ErrInvalidConfig", c, b != nil, err)
		}
	}
}

func TestBulkheadRejectsAtOnceWithoutMaxWait(t *testing.T) {
	b, _, log := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 2})
	r1 := bhMustAcquire(t, b)
	r2 := bhMustAcquire(t, b)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire on a full bulkhead: %v, want ErrBulkheadFull", err)
	}
	bhWantCounts(t, b, 2, 0)
	r1()
	r3 := bhMustAcquire(t, b)
	r2()
	r3()
	bhWantCounts(t, b, 0, 0)
	if n := len(log.of(bulwark.EventBulkheadRejected)); n != 1 {
		t.Errorf("%d rejected events, want 1", n)
	}
}

func TestBulkheadCancelledContext(t *testing.T) {
	b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	release, err := b.Acquire(ctx)
	if !errors.Is(err, context.Canceled) || release != nil {
		t.Fatalf("Acquire(cancelled) = (%v, %v), want (nil, context.Canceled)", release != nil, err)
	}
	bhWantCounts(t, b, 0, 0)
}

func TestBulkheadDoubleReleaseIsHarmless(t *testing.T) {
	b, _, log := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1})
	first := bhMustAcquire(t, b)
	first()
	first()
	bhWantCounts(t, b, 0, 0)

	second := bhMustAcquire(t, b) // gets the slot first held
	first()                       // a stale release must not free it
	bhWantCounts(t, b, 1, 0)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("Acquire while the slot is held: %v, want ErrBulkheadFull", err)
	}
	second()
	second()
	bhWantCounts(t, b, 0, 0)
	if n := len(log.of(bulwark.EventBulkheadReleased)); n != 2 {
		t.Errorf("%d released events, want 2", n)
	}

	// BulkheadSlot values too, and the zero BulkheadSlot.
	s, err := b.AcquireSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := s
	s.Release()
	c.Release()
	BulkheadSlot{}.Release()
	bhWantCounts(t, b, 0, 0)
}

func TestBulkheadMaxConcurrentUnderLoad(t *testing.T) {
	for _, maxWait := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("wait ", maxWait), func(t *testing.T) {
			const limit, goroutines, rounds = 4, 64, 200
			b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: limit, MaxWait: maxWait})
			var holders, maxSeen, got, full atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range rounds {
						release, err := b.Acquire(context.Background())
						if err != nil {
							if !errors.Is(err, bulwark.ErrBulkheadFull) {
								t.Errorf("Acquire: %v", err)
							}
							full.Add(1)
							runtime.Gosched()
							continue
						}
						got.Add(1)
						n := holders.Add(1)
						for {
							m := maxSeen.Load()
							if n <= m || maxSeen.CompareAndSwap(m, n) {
								break
							}
						}
						runtime.Gosched()
						holders.Add(-1)
						release()
					}
				})
			}
			wg.Wait()
			if m := maxSeen.Load(); m > limit || m < 1 {
				t.Errorf("max holders seen = %d, want 1..%d", m, limit)
			}
			if maxWait > 0 && got.Load() != goroutines*rounds {
				t.Errorf("%d acquired with an hour to wait, want all %d", got.Load(), goroutines*rounds)
			}
			if got.Load()+full.Load() != goroutines*rounds {
				t.Errorf("%d acquired + %d rejected, want %d", got.Load(), full.Load(), goroutines*rounds)
			}
			bhWantCounts(t, b, 0, 0)
		})
	}
}

func TestBulkheadServesWaitersInOrder(t *testing.T) {
	const waiters = 8
	b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	hold := bhMustAcquire(t, b)

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := b.Acquire(context.Background())
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			release()
		}()
		bhWaitFor(t, fmt.Sprintf("waiter %d queued", i), func() bool { return b.Waiting() == i+1 })
	}
	hold()
	wg.Wait()
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("served in order %v, want %v", order, want)
	}
	bhWantCounts(t, b, 0, 0)
}

func TestBulkheadMaxWaitExpires(t *testing.T) {
	b, clk, log := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: 5 * time.Second})
	hold := bhMustAcquire(t, b)
	res := bhAcquireAsync(t, context.Background(), b, 1)
	clk.Advance(5*time.Second - time.Nanosecond)
	select {
	case r := <-res:
		t.Fatalf("Acquire returned %v before MaxWait", r.err)
	default:
	}
	bhWantCounts(t, b, 1, 1)
	clk.Advance(time.Nanosecond)
	r := <-res
	if !errors.Is(r.err, bulwark.ErrBulkheadFull) || r.release != nil {
		t.Fatalf("Acquire after MaxWait = %v, want ErrBulkheadFull", r.err)
	}
	bhWantCounts(t, b, 1, 0)
	hold()
	bhWantCounts(t, b, 0, 0)

	rej := log.of(bulwark.EventBulkheadRejected)
	if len(rej) != 1 || rej[0].Duration != 5*time.Second || !errors.Is(rej[0].Err, bulwark.ErrBulkheadFull) {
		t.Fatalf("rejected events = %+v, want one after 5s with ErrBulkheadFull", rej)
	}
}

func TestBulkheadMaxWaitingOverflow(t *testing.T) {
	b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute, MaxWaiting: 2})
	hold := bhMustAcquire(t, b)
	w1 := bhAcquireAsync(t, context.Background(), b, 1)
	w2 := bhAcquireAsync(t, context.Background(), b, 2)
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("third waiter: %v, want ErrBulkheadFull at once", err)
	}
	bhWantCounts(t, b, 1, 2)
	hold()
	r1 := <-w1
	if r1.err != nil {
		t.Fatal(r1.err)
	}
	r1.release()
	r2 := <-w2
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	r2.release()
	bhWantCounts(t, b, 0, 0)
}

func TestBulkheadCancelWhileWaiting(t *testing.T) {
	b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	hold := bhMustAcquire(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	w := bhAcquireAsync(t, ctx, b, 1)
	next := bhAcquireAsync(t, context.Background(), b, 2)
	cancel()
	r := <-w
	if !errors.Is(r.err, context.Canceled) || r.release != nil {
		t.Fatalf("cancelled waiter = %v, want context.Canceled", r.err)
	}
	bhWantCounts(t, b, 1, 1)
	hold() // goes to the waiter still queued
	rn := <-next
	if rn.err != nil {
		t.Fatal(rn.err)
	}
	bhWantCounts(t, b, 1, 0)
	rn.release()
	bhWantCounts(t, b, 0, 0)
}

// A slot handed to a waiter as its ctx ends is passed on, never lost.
func TestBulkheadCancelRacesHandOff(t *testing.T) {
	b, _, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Hour})
	var granted, cancelled int
	for i := range 300 {
		hold := bhMustAcquire(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		w := bhAcquireAsync(t, ctx, b, 1)
		// Both happen before the waiter runs again, most of the time, so
		// its select finds a slot and a done ctx at once.
		if i%2 == 0 {
			cancel()
			hold()
		} else {
			hold()
			cancel()
		}
		r := <-w
		switch {
		case r.err == nil:
			granted++
			r.release()
		case errors.Is(r.err, context.Canceled):
			cancelled++
		default:
			t.Fatalf("waiter: %v", r.err)
		}
		bhWantCounts(t, b, 0, 0)
	}
	t.Logf("%d granted, %d cancelled", granted, cancelled)
}

// A slot handed to a waiter as its max wait runs out is kept, never lost.
func TestBulkheadTimeoutRacesHandOff(t *testing.T) {
	b, clk, _ := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Second})
	var granted, timedOut int
	for i := range 300 {
		hold := bhMustAcquire(t, b)
		w := bhAcquireAsync(t, context.Background(), b, 1)
		if i%2 == 0 {
			clk.Advance(time.Second)
			hold()
		} else {
			hold()
			clk.Advance(time.Second)
		}
		r := <-w
		switch {
		case r.err == nil:
			granted++
			bhWantCounts(t, b, 1, 0)
			r.release()
		case errors.Is(r.err, bulwark.ErrBulkheadFull):
			timedOut++
		default:
			t.Fatalf("waiter: %v", r.err)
		}
		bhWantCounts(t, b, 0, 0)
	}
	t.Logf("%d granted, %d timed out", granted, timedOut)
}

func TestBulkheadEvents(t *testing.T) {
	b, clk, log := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Minute})
	hold := bhMustAcquire(t, b)
	w := bhAcquireAsync(t, context.Background(), b, 1)
	clk.Advance(3 * time.Second)
	hold() // held 3s; the waiter waited 3s
	r := <-w
	clk.Advance(2 * time.Second)
	r.release() // held 2s

	acq := log.of(bulwark.EventBulkheadAcquired)
	rel := log.of(bulwark.EventBulkheadReleased)
	if len(acq) != 2 || acq[0].Duration != 0 || acq[1].Duration != 3*time.Second {
		t.Errorf("acquired events = %+v, want waits of 0 and 3s", acq)
	}
	if len(rel) != 2 || rel[0].Duration != 3*time.Second || rel[1].Duration != 2*time.Second {
		t.Errorf("released events = %+v, want holds of 3s and 2s", rel)
	}
	for _, e := range append(acq, rel...) {
		if e.Pattern != "bulkhead" || e.Name != "test" || e.Limit != 1 {
			t.Errorf("event %+v: want pattern bulkhead, name test, limit 1", e)
		}
	}
}

// A slot whose Acquired event panics in the observer is given back.
func TestBulkheadObserverPanicLeaksNoSlot(t *testing.T) {
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind == bulwark.EventBulkheadAcquired {
			panic("observer bug")
		}
	})
	b, err := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1}, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the observer's panic did not reach the caller")
			}
		}()
		_, _ = b.Acquire(context.Background())
	}()
	bhWantCounts(t, b, 0, 0)
}

func TestBulkheadAllocs(t *testing.T) {
	b, err := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 4, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		s, err := b.AcquireSlot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	})
	if allocs != 0 {
		t.Errorf("AcquireSlot+Release allocates %v times, want 0", allocs)
	}
	observed, err := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 4},
		WithObserver(bulwark.ObserverFunc(func(bulwark.Event) {})))
	if err != nil {
		t.Fatal(err)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		s, err := observed.AcquireSlot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	})
	if allocs != 0 {
		t.Errorf("AcquireSlot+Release with an observer allocates %v times, want 0", allocs)
	}
	// Acquire must return a fresh release func per grant (see Bulkhead):
	// one small allocation when the func escapes, as it does through the
	// interface.
	bi := benchOpaque[bulwark.Bulkhead](b)
	allocs = testing.AllocsPerRun(1000, func() {
		release, err := bi.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
	if allocs > 1 {
		t.Errorf("Acquire+release allocates %v times, want at most 1", allocs)
	}
	full, _ := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1})
	hold, _ := full.AcquireSlot(ctx)
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := full.AcquireSlot(ctx); err == nil {
			t.Fatal("acquired a held slot")
		}
	})
	if allocs != 0 {
		t.Errorf("rejected AcquireSlot allocates %v times, want 0", allocs)
	}
	hold.Release()
}

func ExampleBulkhead() {
	bh, err := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 2})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	r1, _ := bh.Acquire(ctx)
	r2, _ := bh.Acquire(ctx)
	_, err = bh.Acquire(ctx)
	fmt.Println(bh.InUse(), errors.Is(err, bulwark.ErrBulkheadFull))
	r1()
	r1() // a second release does nothing
	fmt.Println(bh.InUse())
	r2()
	// Output:
	// 2 true
	// 1
}

// Every caller that waits reports one EventBulkheadQueued and then one
// EventBulkheadDequeued, which says how the wait ended; callers served or
// rejected at once report neither.
func TestBulkheadQueuedDequeuedEvents(t *testing.T) {
	b, clk, log := newTestBulkhead(t, bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: 5 * time.Second, MaxWaiting: 2})
	hold := bhMustAcquire(t, b) // served at once

	// Granted after 2s.
	granted := bhAcquireAsync(t, context.Background(), b, 1)
	// Cancelled while waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := bhAcquireAsync(t, ctx, b, 2)
	// Rejected at once: the queue is full.
	if _, err := b.Acquire(context.Background()); !errors.Is(err, bulwark.ErrBulkheadFull) {
		t.Fatalf("third waiter: %v, want ErrBulkheadFull", err)
	}
	clk.Advance(2 * time.Second)
	hold()
	r := <-granted
	if r.err != nil {
		t.Fatal(r.err)
	}
	cancel()
	if rc := <-cancelled; !errors.Is(rc.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", rc.err)
	}
	// Times out after the full max wait.
	timedOut := bhAcquireAsync(t, context.Background(), b, 1)
	clk.Advance(5 * time.Second)
	if rt := <-timedOut; !errors.Is(rt.err, bulwark.ErrBulkheadFull) {
		t.Fatalf("timed-out waiter: %v", rt.err)
	}
	r.release()

	queued, dequeued := log.of(bulwark.EventBulkheadQueued), log.of(bulwark.EventBulkheadDequeued)
	if len(queued) != 3 || len(dequeued) != 3 {
		t.Fatalf("queued %d, dequeued %d events, want 3 and 3", len(queued), len(dequeued))
	}
	// One per outcome, in any order (the cancelled waiter may report late).
	var got, gaveUpCancel, gaveUpTimeout int
	for _, e := range dequeued {
		if e.Pattern != "bulkhead" || e.Name != "test" || e.Limit != 1 {
			t.Errorf("dequeued event %+v: want pattern bulkhead, name test, limit 1", e)
		}
		switch {
		case e.Allowed && e.Err == nil && e.Duration == 2*time.Second:
			got++
		case !e.Allowed && errors.Is(e.Err, context.Canceled):
			gaveUpCancel++
		case !e.Allowed && errors.Is(e.Err, bulwark.ErrBulkheadFull) && e.Duration == 5*time.Second:
			gaveUpTimeout++
		default:
			t.Errorf("unexpected dequeued event %+v", e)
		}
	}
	if got != 1 || gaveUpCancel != 1 || gaveUpTimeout != 1 {
		t.Errorf("dequeued: %d got a slot, %d cancelled, %d timed out; want 1 each", got, gaveUpCancel, gaveUpTimeout)
	}
	// Each waiter's queued event comes before its dequeued one, so the
	// running count of waiters never goes below zero.
	waiting := 0
	log.mu.Lock()
	for _, e := range log.events {
		switch e.Kind {
		case bulwark.EventBulkheadQueued:
			waiting++
		case bulwark.EventBulkheadDequeued:
			waiting--
		}
		if waiting < 0 {
			t.Errorf("more dequeued than queued events at %+v", e)
		}
	}
	log.mu.Unlock()
	if waiting != 0 {
		t.Errorf("waiting count ends at %d, want 0", waiting)
	}
}

// A waiter whose Queued event panics in the observer leaves the queue.
func TestBulkheadObserverPanicOnQueuedLeavesQueue(t *testing.T) {
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind == bulwark.EventBulkheadQueued {
			panic("observer bug")
		}
	})
	b, err := NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Hour}, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	hold := bhMustAcquire(t, b)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the observer's panic did not reach the caller")
			}
		}()
		_, _ = b.Acquire(context.Background())
	}()
	bhWantCounts(t, b, 1, 0)
	hold()
	bhWantCounts(t, b, 0, 0)
}

// benchOpaque hides v's concrete type from the compiler, so benchmarks
// measure calls through the interface as users make them.
//
//go:noinline
func benchOpaque[T any](v T) T { return v }
