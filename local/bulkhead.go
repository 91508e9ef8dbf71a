package local

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

var _ bulwark.Bulkhead = (*Bulkhead)(nil)

// Errors returned by [Bulkhead.Acquire]; all match bulwark.ErrBulkheadFull.
var (
	errBulkheadNoWait    = fmt.Errorf("%w: every slot is taken and the bulkhead does not wait", bulwark.ErrBulkheadFull)
	errBulkheadQueueFull = fmt.Errorf("%w: every slot is taken and the waiting queue is full", bulwark.ErrBulkheadFull)
	errBulkheadTimeout   = fmt.Errorf("%w: no slot came within the max wait", bulwark.ErrBulkheadFull)
)

// Bulkhead caps how many calls run at once in this process. It is the
// in-memory twin of the Redis-backed bulkhead of package distributed and
// implements [bulwark.Bulkhead].
//
// A Bulkhead has MaxConcurrent slots. Acquire takes a free slot at once when
// one is free and nobody is waiting. Otherwise, when MaxWait > 0, the caller
// joins a FIFO queue and waits up to MaxWait (or until its ctx is done) for a
// slot; when MaxWait is 0 it is rejected at once. At most MaxWaiting callers
// wait at a time (0: no cap other than MaxWait); more are rejected at once.
// A released slot goes straight to the longest waiter, so waiters are served
// strictly in arrival order and a newcomer never overtakes them.
//
// Every slot is handed out with an identity (a slot number and a unique
// grant number), so releasing is exact: a second release of the same grant
// is ignored, even when the slot has since gone to someone else, and a
// waiter whose ctx ends at the moment a slot is handed to it passes the slot
// on instead of leaking it.
//
// Allocation: [Bulkhead.AcquireSlot] and [BulkheadSlot.Release] allocate
// nothing on the path without waiting. [Bulkhead.Acquire], which must return
// a func, allocates one small closure (32 bytes) per grant when that func
// escapes, as it does through the bulwark.Bulkhead interface: a release
// function that stays a no-op when called again after its slot went to
// another caller has to be a fresh value, and a recycled one could not tell
// the two callers apart. Waiting allocates a timer and a channel.
//
// The clock is read only when an observer is set (for event times and
// durations); the wait itself uses a timer from the clock given with
// WithClock when it implements bulwark.TimerClock, so tests drive it with a
// fake clock.
//
// Events (Pattern "bulkhead"): EventBulkheadAcquired with the time waited,
// EventBulkheadRejected with the time waited and the reason in Err, and
// EventBulkheadReleased with the time the slot was held. A caller that
// joins the queue reports EventBulkheadQueued when it starts waiting and
// exactly one EventBulkheadDequeued when it stops (Allowed when it got a
// slot, else Err says why), before its acquired or rejected event; a
// caller served or rejected at once reports neither. Limit is
// MaxConcurrent.
//
// A Bulkhead is safe for concurrent use and starts no goroutine. One mutex
// guards the slots and the queue; it is held for a few instructions, never
// while waiting or while an observer runs. Create a Bulkhead with
// [NewBulkhead]; the zero value is not usable.
type Bulkhead struct {
	max        int
	maxWait    time.Duration
	maxWaiting int
	clock      bulwark.Clock
	obs        bulwark.Observer
	name       string

	limit atomic.Int64 // max, for events read without mu (Reconfigure changes it)

	mu      sync.Mutex
	slots   []bulkheadSlotState // grows up to max entries, as concurrency requires
	free    []int32             // indices of free entries of slots
	inUse   int
	grants  uint64 // grant numbers handed out so far; 0 is never a grant
	head    *bulkheadWaiter
	tail    *bulkheadWaiter
	waiting int
}

// bulkheadSlotState is who holds a slot: grant 0 means nobody.
type bulkheadSlotState struct {
	grant uint64
	since time.Time // when the holder got it; set only when an observer listens
}

// bulkheadWaiter is one caller queued for a slot. Fields other than ready
// are guarded by Bulkhead.mu.
type bulkheadWaiter struct {
	prev, next *bulkheadWaiter
	ready      chan struct{} // receives once when a slot is handed over
	slot       BulkheadSlot
	granted    bool
}

// BulkheadSlot is one slot of a [Bulkhead], as returned by
// [Bulkhead.AcquireSlot]. Release it exactly once; further calls, from the
// same value or a copy, are no-ops. The zero BulkheadSlot holds nothing and
// its Release does nothing.
type BulkheadSlot struct {
	b     *Bulkhead
	index int32
	grant uint64
}

// Release gives the slot back: to the longest waiter if any, else to the
// pool of free slots. Releasing a slot that was already released does
// nothing.
func (s BulkheadSlot) Release() {
	if s.b != nil {
		s.b.release(s, true)
	}
}

// NewBulkhead returns a bulkhead shaped by c. It returns an error wrapping
// bulwark.ErrInvalidConfig when c is invalid (see
// bulwark.BulkheadConfig.Validate). c.LeaseTTL has no meaning in one process
// and is ignored.
//
// Options: WithClock (time and the max-wait timer), WithObserver, WithName.
func NewBulkhead(c bulwark.BulkheadConfig, opts ...Option) (*Bulkhead, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Bulkhead{
		max:        c.MaxConcurrent,
		maxWait:    c.MaxWait,
		maxWaiting: c.MaxWaiting,
		clock:      o.clock,
		obs:        o.observer,
		name:       o.name,
	}
	b.limit.Store(int64(c.MaxConcurrent))
	return b, nil
}

// Acquire takes a slot, waiting for one as the configuration allows, and
// returns the function that gives it back. release must be called once the
// call is over; calling it again does nothing.
//
// Errors: ctx's error when ctx is done before a slot came (also when it is
// already done on entry, even if a slot is free), or an error matching
// bulwark.ErrBulkheadFull when no slot came within MaxWait or the waiting
// queue was full.
//
// Acquire allocates one small closure per grant (see [Bulkhead]); use
// [Bulkhead.AcquireSlot] where that matters.
func (b *Bulkhead) Acquire(ctx context.Context) (release func(), err error) {
	s, err := b.AcquireSlot(ctx)
	if err != nil {
		return nil, err
	}
	return s.Release, nil
}

// AcquireSlot is Acquire returning the slot as a value, which allocates
// nothing when a slot is free. Call [BulkheadSlot.Release] exactly once
// when done.
func (b *Bulkhead) AcquireSlot(ctx context.Context) (BulkheadSlot, error) {
	if err := ctx.Err(); err != nil {
		b.emitRejected(0, err)
		return BulkheadSlot{}, err
	}
	var now time.Time
	if b.obs != nil {
		now = b.clock.Now()
	}
	b.mu.Lock()
	if b.waiting == 0 && b.inUse < b.max {
		s := b.grantLocked(now)
		b.mu.Unlock()
		b.emitAcquired(s, now, 0)
		return s, nil
	}
	switch {
	case b.maxWait <= 0:
		b.mu.Unlock()
		b.emitRejected(0, errBulkheadNoWait)
		return BulkheadSlot{}, errBulkheadNoWait
	case b.maxWaiting > 0 && b.waiting >= b.maxWaiting:
		b.mu.Unlock()
		b.emitRejected(0, errBulkheadQueueFull)
		return BulkheadSlot{}, errBulkheadQueueFull
	}
	maxWait := b.maxWait
	b.mu.Unlock()
	return b.wait(ctx, now, maxWait)
}

// wait queues the caller and blocks until a slot is handed to it, MaxWait
// passes or ctx is done. start is when Acquire began (zero without an
// observer).
func (b *Bulkhead) wait(ctx context.Context, start time.Time, maxWait time.Duration) (BulkheadSlot, error) {
	// Arm the timer before joining the queue, so that a waiter counted by
	// Waiting always has its timer running.
	timer := core.NewTimer(b.clock, maxWait)
	w := &bulkheadWaiter{ready: make(chan struct{}, 1)}

	b.mu.Lock()
	switch {
	case b.waiting == 0 && b.inUse < b.max:
		// A slot came free while the timer was being armed.
		s := b.grantLocked(start)
		b.mu.Unlock()
		timer.Stop()
		b.emitAcquired(s, start, 0)
		return s, nil
	case b.maxWaiting > 0 && b.waiting >= b.maxWaiting:
		b.mu.Unlock()
		timer.Stop()
		b.emitRejected(0, errBulkheadQueueFull)
		return BulkheadSlot{}, errBulkheadQueueFull
	}
	b.enqueueLocked(w)
	b.mu.Unlock()
	b.emitQueued(w, timer, start)

	select {
	case <-w.ready:
		timer.Stop()
		b.emitGot(w.slot, start)
		return w.slot, nil

	case <-timer.C():
		b.mu.Lock()
		if w.granted {
			// The slot arrived as the wait ran out: keep it.
			b.mu.Unlock()
			b.emitGot(w.slot, start)
			return w.slot, nil
		}
		b.removeLocked(w)
		b.mu.Unlock()
		b.emitGaveUp(start, errBulkheadTimeout)
		return BulkheadSlot{}, errBulkheadTimeout

	case <-ctx.Done():
		timer.Stop()
		err := ctx.Err()
		b.mu.Lock()
		if w.granted {
			// A slot was handed over as ctx ended: pass it on.
			b.mu.Unlock()
			b.release(w.slot, false)
		} else {
			b.removeLocked(w)
			b.mu.Unlock()
		}
		b.emitGaveUp(start, err)
		return BulkheadSlot{}, err
	}
}

// withdraw takes w out of the queue, passing on a slot handed to it.
func (b *Bulkhead) withdraw(w *bulkheadWaiter) {
	b.mu.Lock()
	if w.granted {
		b.mu.Unlock()
		b.release(w.slot, false)
		return
	}
	b.removeLocked(w)
	b.mu.Unlock()
}

// grantLocked takes a free slot for a new holder. Requires b.mu held and
// b.inUse < b.max.
func (b *Bulkhead) grantLocked(now time.Time) BulkheadSlot {
	var i int32
	if n := len(b.free); n > 0 {
		i = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		i = int32(len(b.slots))
		b.slots = append(b.slots, bulkheadSlotState{})
	}
	b.grants++
	b.slots[i] = bulkheadSlotState{grant: b.grants, since: now}
	b.inUse++
	return BulkheadSlot{b: b, index: i, grant: b.grants}
}

// release frees s if it is still held by that grant: the slot goes to the
// longest waiter, or back to the free list. emit says whether to report
// EventBulkheadReleased (not for slots their waiter never saw).
func (b *Bulkhead) release(s BulkheadSlot, emit bool) {
	var now time.Time
	if b.obs != nil {
		now = b.clock.Now()
	}
	b.mu.Lock()
	if s.index < 0 || int(s.index) >= len(b.slots) || b.slots[s.index].grant != s.grant {
		b.mu.Unlock() // released already
		return
	}
	since := b.slots[s.index].since
	if w := b.head; w != nil && b.inUse <= b.max { // above max after a Reconfigure: the slot retires
		b.removeLocked(w)
		b.grants++
		b.slots[s.index] = bulkheadSlotState{grant: b.grants, since: now}
		w.slot = BulkheadSlot{b: b, index: s.index, grant: b.grants}
		w.granted = true
		w.ready <- struct{}{} // buffered, and sent to at most once
	} else {
		b.slots[s.index] = bulkheadSlotState{}
		b.free = append(b.free, s.index)
		b.inUse--
	}
	b.mu.Unlock()
	if emit && b.obs != nil {
		b.emit(bulwark.EventBulkheadReleased, now, now.Sub(since), nil)
	}
}

// enqueueLocked appends w to the waiting queue. Requires b.mu held.
func (b *Bulkhead) enqueueLocked(w *bulkheadWaiter) {
	w.prev = b.tail
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
	b.waiting++
}

// removeLocked takes w out of the waiting queue. Requires b.mu held and w
// queued.
func (b *Bulkhead) removeLocked(w *bulkheadWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next = nil, nil
	b.waiting--
}

// InUse returns how many slots are held now.
func (b *Bulkhead) InUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}

// Waiting returns how many callers are queued for a slot now.
func (b *Bulkhead) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

// MaxConcurrent returns the number of slots.
func (b *Bulkhead) MaxConcurrent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max
}

func (b *Bulkhead) emit(kind bulwark.EventKind, now time.Time, d time.Duration, err error) {
	if b.obs == nil {
		return
	}
	b.obs.Observe(bulwark.Event{
		Kind:     kind,
		Pattern:  "bulkhead",
		Name:     b.name,
		Time:     now,
		Limit:    int(b.limit.Load()),
		Duration: d,
		Err:      err,
	})
}

// emitAcquired reports that s was taken after waiting d. Should the
// observer panic, s is given back: the caller never sees it.
func (b *Bulkhead) emitAcquired(s BulkheadSlot, now time.Time, d time.Duration) {
	if b.obs == nil {
		return
	}
	finished := false
	defer func() {
		if !finished {
			b.release(s, false)
		}
	}()
	b.emit(bulwark.EventBulkheadAcquired, now, d, nil)
	finished = true
}

// emitQueued reports that the caller queued as w started waiting. Should
// the observer panic, w leaves the queue (passing on a slot it was handed)
// and its timer stops: the caller never waits.
func (b *Bulkhead) emitQueued(w *bulkheadWaiter, timer bulwark.Timer, start time.Time) {
	if b.obs == nil {
		return
	}
	finished := false
	defer func() {
		if !finished {
			timer.Stop()
			b.withdraw(w)
		}
	}()
	b.emit(bulwark.EventBulkheadQueued, start, 0, nil)
	finished = true
}

// emitGot reports the end of a wait that got s: EventBulkheadDequeued then
// EventBulkheadAcquired, both with the time waited since start. Should the
// observer panic, s is given back: the caller never sees it.
func (b *Bulkhead) emitGot(s BulkheadSlot, start time.Time) {
	if b.obs == nil {
		return
	}
	now := b.clock.Now()
	finished := false
	defer func() {
		if !finished {
			b.release(s, false)
		}
	}()
	b.obs.Observe(bulwark.Event{
		Kind:     bulwark.EventBulkheadDequeued,
		Pattern:  "bulkhead",
		Name:     b.name,
		Time:     now,
		Allowed:  true,
		Limit:    int(b.limit.Load()),
		Duration: now.Sub(start),
	})
	b.emit(bulwark.EventBulkheadAcquired, now, now.Sub(start), nil)
	finished = true
}

// emitGaveUp reports the end of a wait that got no slot:
// EventBulkheadDequeued then EventBulkheadRejected, both with the time
// waited since start and err.
func (b *Bulkhead) emitGaveUp(start time.Time, err error) {
	if b.obs == nil {
		return
	}
	now := b.clock.Now()
	d := now.Sub(start)
	b.emit(bulwark.EventBulkheadDequeued, now, d, err)
	b.emit(bulwark.EventBulkheadRejected, now, d, err)
}

func (b *Bulkhead) emitRejected(d time.Duration, err error) {
	if b.obs == nil {
		return
	}
	b.emit(bulwark.EventBulkheadRejected, b.clock.Now(), d, err)
}
