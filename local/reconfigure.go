package local

import (
	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Reconfigure changes the bulkhead's slots and waiting rules in place:
// held slots stay held, queued callers stay queued. When MaxConcurrent
// grows, queued callers get the new slots at once (longest waiting first);
// when it shrinks below the slots held now, no new slot is granted (and a
// released one is not handed on) until fewer than the new MaxConcurrent
// are held. A queued caller keeps the MaxWait it started with. It returns
// an error wrapping bulwark.ErrInvalidConfig, changing nothing, when c is
// invalid. LeaseTTL has no meaning in one process and is ignored.
func (b *Bulkhead) Reconfigure(c bulwark.BulkheadConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var now = b.clock.Now()
	b.mu.Lock()
	b.max, b.maxWait, b.maxWaiting = c.MaxConcurrent, c.MaxWait, c.MaxWaiting
	b.limit.Store(int64(c.MaxConcurrent))
	for b.head != nil && b.inUse < b.max {
		w := b.head
		b.removeLocked(w)
		w.slot = b.grantLocked(now)
		w.granted = true
		w.ready <- struct{}{} // buffered, and sent to at most once
	}
	b.mu.Unlock()
	return nil
}

// Reconfigure changes the breaker's thresholds in place, keeping its state
// and its window's counts: MinimumCalls, FailureRate, ConsecutiveFailures,
// SlowCallRate and OpenFor. The new thresholds apply from the next
// outcome (an open breaker keeps the OpenFor it opened with). Window,
// SlowCall and HalfOpenCalls shape the state itself and cannot change in
// place: Reconfigure returns an error wrapping bulwark.ErrInvalidConfig,
// changing nothing, when c changes them or is invalid.
func (b *Breaker) Reconfigure(c bulwark.BreakerConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	old := b.Config()
	if c.Window != old.Window || c.SlowCall != old.SlowCall || c.HalfOpenCalls != old.HalfOpenCalls {
		return core.ConfigError("breaker %q: window, slow call and half-open calls cannot change in place: build a new breaker", b.name)
	}
	b.mu.Lock()
	b.cfg.MinimumCalls, b.cfg.FailureRate, b.cfg.ConsecutiveFailures = c.MinimumCalls, c.FailureRate, c.ConsecutiveFailures
	b.cfg.SlowCallRate, b.cfg.OpenFor = c.SlowCallRate, c.OpenFor
	b.mu.Unlock()
	return nil
}
