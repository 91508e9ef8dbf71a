package eventq

import (
	"sync"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
)

// Guard counts and reports the panics of user callbacks. The zero value
// counts and reports nowhere else; OnPanic, when set before first use, hears
// each recovered value. A Guard is safe for concurrent use.
type Guard struct {
	// OnPanic, when not nil, is told of each recovered panic (what
	// recover returned and what was running: "observer", "handler", ...).
	// It must not panic itself.
	OnPanic func(what string, recovered any)

	n atomic.Uint64
}

// Panics returns how many panics g recovered.
func (g *Guard) Panics() uint64 {
	if g == nil {
		return 0
	}
	return g.n.Load()
}

// Recover is deferred around a user callback: it recovers a panic, counts
// it and reports it. Deferred directly (defer g.Recover("observer")), it
// stops the panic; runtime.Goexit (t.Fatal in a test) is not a panic and
// goes on.
func (g *Guard) Recover(what string) {
	if v := recover(); v != nil {
		g.n.Add(1)
		if g.OnPanic != nil {
			g.OnPanic(what, v)
		}
	}
}

// Note counts and reports a panic the caller recovered itself (when it
// must also turn it into an error).
func (g *Guard) Note(what string, recovered any) {
	g.n.Add(1)
	if g.OnPanic != nil {
		g.OnPanic(what, recovered)
	}
}

// Call runs f, recovering a panic as Recover does. It reports whether f
// returned normally.
func (g *Guard) Call(what string, f func()) (ok bool) {
	defer g.Recover(what)
	f()
	return true
}

// Observe sends e to o (nil: nowhere), recovering a panic of o.
func (g *Guard) Observe(o bulwark.Observer, e bulwark.Event) {
	if o == nil {
		return
	}
	defer g.Recover("observer")
	o.Observe(e)
}

// Safe returns o wrapped so that a panic in its Observe is recovered by g;
// nil when o is nil. Wrapping an already safe observer of g returns it as
// is.
func Safe(o bulwark.Observer, g *Guard) bulwark.Observer {
	if o == nil {
		return nil
	}
	if s, ok := o.(safe); ok && s.g == g {
		return o
	}
	return safe{o: o, g: g}
}

type safe struct {
	o bulwark.Observer
	g *Guard
}

func (s safe) Observe(e bulwark.Event) { s.g.Observe(s.o, e) }

// Queue is an ordered, panic-safe queue of events for one observer. Events
// are pushed while the owner holds its lock and emitted by [Queue.UnlockAndEmit]
// after the lock is released, by one goroutine at a time, so the observer
// sees them in the order they were pushed, never with the lock held. An
// observer that calls back into the owner only adds to the queue the
// current drain is emptying. A panicking observer is recovered (see
// [Guard]), and every later event is still delivered.
//
// The zero value drops everything until [Queue.Init].
type Queue struct {
	obs   bulwark.Observer
	guard *Guard

	// Guarded by the owner's lock.
	pending  []bulwark.Event
	spare    []bulwark.Event
	draining bool
}

// Init sets the observer (nil: events are dropped) and the guard that
// recovers its panics (nil: a guard of the queue's own). Call it before
// the queue is shared.
func (q *Queue) Init(obs bulwark.Observer, g *Guard) {
	if g == nil {
		g = new(Guard)
	}
	q.obs, q.guard = obs, g
}

// Enabled reports whether the queue has an observer.
func (q *Queue) Enabled() bool { return q.obs != nil }

// Guard returns the guard counting the observer's panics.
func (q *Queue) Guard() *Guard { return q.guard }

// Emit sends e at once, on the caller's goroutine, outside the order of
// the queue; for events produced without the owner's lock.
func (q *Queue) Emit(e bulwark.Event) {
	if q.obs != nil {
		q.guard.Observe(q.obs, e)
	}
}

// PushLocked queues e. Requires the owner's lock held.
func (q *Queue) PushLocked(e bulwark.Event) {
	if q.obs != nil {
		q.pending = append(q.pending, e)
	}
}

// UnlockAndEmit releases mu, the owner's lock, and emits the queued events
// unless another goroutine is already emitting them. Requires mu held.
func (q *Queue) UnlockAndEmit(mu *sync.Mutex) {
	if q.draining || len(q.pending) == 0 {
		mu.Unlock()
		return
	}
	q.draining = true
	finished := false
	defer func() {
		if !finished {
			// The goroutine is exiting (runtime.Goexit) inside an
			// observer, with mu released: let the next push drain what is
			// left.
			mu.Lock()
			q.draining = false
			mu.Unlock()
		}
	}()
	for len(q.pending) > 0 {
		batch := q.pending
		q.pending, q.spare = q.spare[:0], nil
		mu.Unlock()
		for _, e := range batch {
			q.guard.Observe(q.obs, e)
		}
		mu.Lock()
		clear(batch) // drop references to names and errors
		q.spare = batch[:0]
	}
	q.draining = false
	finished = true
	mu.Unlock()
}
