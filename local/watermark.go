package local

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// ErrBackpressure is returned by a [WaterMark] that could not admit work:
// backpressure stayed on for the whole wait, or the hard cap was reached.
// It also matches bulwark.ErrBulkheadFull.
var ErrBackpressure error = &rejection{msg: "bulwark: backpressure", also: bulwark.ErrBulkheadFull}

// WaterMarkConfig is the shape of a [WaterMark].
//
// Worked example: {High: 100, Low: 20, Max: 120, MaxWait: time.Second}: a
// pipeline stage takes work freely until 100 items are pending; then
// producers wait (up to a second each) until consumers have brought the
// backlog down to 20, so the stage drains in one stretch instead of
// flapping around 100. Critical work may still add up to 120 items.
type WaterMarkConfig struct {
	// High turns backpressure on when this many items are pending, at least 1.
	High int
	// Low turns it off once pending work has fallen to this many, in [0, High).
	Low int
	// Max is the hard cap on pending items, at least High (0 means High).
	// Only work that skips backpressure (critical priority, [WaterMark.Force])
	// can take pending work above High.
	Max int
	// MaxWait is how long Acquire waits while backpressure is on (0: not at
	// all, it fails at once).
	MaxWait time.Duration
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c WaterMarkConfig) Validate() error {
	switch {
	case c.High < 1:
		return core.ConfigError("water mark high must be at least 1, got %d", c.High)
	case c.Low < 0 || c.Low >= c.High:
		return core.ConfigError("water mark low must be in [0, high %d), got %d", c.High, c.Low)
	case c.Max != 0 && c.Max < c.High:
		return core.ConfigError("water mark max must be 0 or at least high %d, got %d", c.High, c.Max)
	case c.MaxWait < 0:
		return core.ConfigError("water mark max wait must not be negative, got %v", c.MaxWait)
	}
	return nil
}

// WaterMark is backpressure for a pipeline: it counts pending work (items
// admitted and not yet released) and, once the count reaches the high mark,
// holds producers back until it has fallen to the low mark. Between the
// marks the state depends on the way the count came: rising, work is
// admitted; falling after the high mark, it is not. That hysteresis lets a
// stage drain in one stretch.
//
// Acquire waits while backpressure is on, up to MaxWait or ctx's end, and
// fails with [ErrBackpressure]; waiters are woken together when it turns off
// (not in arrival order) and each takes a slot while the count is below the
// high mark. Critical work (ctx priority PriorityCritical) and [WaterMark.Force]
// skip backpressure but not the hard cap Max.
//
// Events: EventBulkheadAcquired (Duration: time waited), EventBulkheadRejected
// (Err), EventBulkheadQueued and EventBulkheadDequeued around a wait, and
// EventLimitChanged at each switch (Allowed: backpressure now off; Limit:
// pending work at the switch); a panicking observer is recovered and counted.
// Time (waits, event times) comes from the WithClock clock.
//
// Safe for concurrent use. The paths that do not wait allocate nothing.
type WaterMark struct {
	cfg     WaterMarkConfig
	clock   bulwark.Clock
	obs     bulwark.Observer
	name    string
	release func()

	mu      sync.Mutex
	pending int
	on      bool
	resume  chan struct{} // closed when backpressure turns off; replaced when it turns on

	observerPanics atomic.Uint64
}

var (
	_ bulwark.Bulkhead = (*WaterMark)(nil)
	_ bulwark.Policy   = (*WaterMark)(nil)
)

// NewWaterMark returns water-mark backpressure; options WithClock,
// WithObserver and WithName apply.
func NewWaterMark(cfg WaterMarkConfig, opts ...Option) (*WaterMark, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg.Max == 0 {
		cfg.Max = cfg.High
	}
	w := &WaterMark{cfg: cfg, clock: o.clock, obs: o.observer, name: o.name}
	w.release = w.done
	return w, nil
}

// Pending returns how many items are admitted and not yet released.
func (w *WaterMark) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

// On reports whether backpressure is on.
func (w *WaterMark) On() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.on
}

// ObserverPanics returns how many times the observer panicked.
func (w *WaterMark) ObserverPanics() uint64 { return w.observerPanics.Load() }

// take admits one item if the state allows, and says whether it did,
// whether backpressure turned on with it, and, when not admitted, the
// channel that closes when backpressure turns off (nil: the hard cap).
// Requires w.mu held.
func (w *WaterMark) take(force bool) (ok, switched bool, resume chan struct{}) {
	if w.on && !force {
		return false, false, w.resume
	}
	if w.pending >= w.cfg.Max {
		return false, false, nil
	}
	w.pending++
	if !w.on && w.pending >= w.cfg.High {
		w.on, w.resume, switched = true, make(chan struct{}), true
	}
	return true, switched, nil
}

// TryAcquire admits one item now, if backpressure is off and the cap not
// reached; ok is false otherwise.
func (w *WaterMark) TryAcquire() (release func(), ok bool) {
	return w.admitNow(false)
}

// Force admits one item whatever the backpressure, unless the hard cap is
// reached: for work that cannot wait (a message already received).
func (w *WaterMark) Force() (release func(), ok bool) {
	return w.admitNow(true)
}

func (w *WaterMark) admitNow(force bool) (func(), bool) {
	w.mu.Lock()
	ok, switched, _ := w.take(force)
	pending := w.pending
	w.mu.Unlock()
	if switched {
		w.emit(bulwark.Event{Kind: bulwark.EventLimitChanged, Allowed: false, Limit: pending})
	}
	if !ok {
		w.emit(bulwark.Event{Kind: bulwark.EventBulkheadRejected, Err: ErrBackpressure})
		return nil, false
	}
	w.emit(bulwark.Event{Kind: bulwark.EventBulkheadAcquired})
	return w.release, true
}

// Acquire admits one item, waiting while backpressure is on, up to MaxWait
// or ctx's end (critical work does not wait). Errors: ErrBackpressure
// (the wait ran out, MaxWait is 0, or the hard cap is reached), ctx.Err().
// Call release exactly once when the item is done.
func (w *WaterMark) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	force := PriorityFrom(ctx) >= PriorityCritical
	w.mu.Lock()
	ok, switched, resume := w.take(force)
	pending := w.pending
	w.mu.Unlock()
	if switched {
		w.emit(bulwark.Event{Kind: bulwark.EventLimitChanged, Allowed: false, Limit: pending})
	}
	if ok {
		w.emit(bulwark.Event{Kind: bulwark.EventBulkheadAcquired})
		return w.release, nil
	}
	if resume == nil || w.cfg.MaxWait <= 0 {
		w.emit(bulwark.Event{Kind: bulwark.EventBulkheadRejected, Err: ErrBackpressure})
		return nil, ErrBackpressure
	}
	return w.wait(ctx, resume)
}

// wait waits for backpressure to turn off, then tries again, until
// MaxWait has passed since the wait began.
func (w *WaterMark) wait(ctx context.Context, resume chan struct{}) (func(), error) {
	start := w.clock.Now()
	w.emit(bulwark.Event{Kind: bulwark.EventBulkheadQueued, Time: start})
	t := core.NewTimer(w.clock, w.cfg.MaxWait)
	defer t.Stop()
	fail := func(err error) (func(), error) {
		waited := w.clock.Now().Sub(start)
		w.emit(bulwark.Event{Kind: bulwark.EventBulkheadDequeued, Duration: waited, Err: err})
		w.emit(bulwark.Event{Kind: bulwark.EventBulkheadRejected, Duration: waited, Err: err})
		return nil, err
	}
	for {
		select {
		case <-resume:
		case <-t.C():
			return fail(ErrBackpressure)
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		w.mu.Lock()
		ok, switched, next := w.take(false)
		pending := w.pending
		w.mu.Unlock()
		if switched {
			w.emit(bulwark.Event{Kind: bulwark.EventLimitChanged, Allowed: false, Limit: pending})
		}
		if ok {
			waited := w.clock.Now().Sub(start)
			w.emit(bulwark.Event{Kind: bulwark.EventBulkheadDequeued, Allowed: true, Duration: waited})
			w.emit(bulwark.Event{Kind: bulwark.EventBulkheadAcquired, Duration: waited})
			return w.release, nil
		}
		if next == nil {
			return fail(ErrBackpressure) // the hard cap
		}
		resume = next
	}
}

// done releases one item and turns backpressure off at the low mark.
func (w *WaterMark) done() {
	w.mu.Lock()
	if w.pending == 0 {
		w.mu.Unlock()
		return
	}
	w.pending--
	switched := false
	if w.on && w.pending <= w.cfg.Low {
		w.on, switched = false, true
		close(w.resume)
	}
	pending := w.pending
	w.mu.Unlock()
	w.emit(bulwark.Event{Kind: bulwark.EventBulkheadReleased})
	if switched {
		w.emit(bulwark.Event{Kind: bulwark.EventLimitChanged, Allowed: true, Limit: pending})
	}
}

// Run admits next as one item (see Acquire) and releases it when next returns.
func (w *WaterMark) Run(ctx context.Context, next bulwark.Next) error {
	release, err := w.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return next.Run(ctx)
}

func (w *WaterMark) emit(e bulwark.Event) {
	if w.obs == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			w.observerPanics.Add(1)
		}
	}()
	e.Pattern, e.Name = "water_mark", w.name
	if e.Time.IsZero() {
		e.Time = w.clock.Now()
	}
	w.obs.Observe(e)
}
