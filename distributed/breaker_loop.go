package distributed

import (
	"context"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// wake kicks the loop: an urgent batch or a resync is waiting.
func (b *Breaker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// loop is the breaker's goroutine: it sends batches, trial outcomes and
// refreshes, and probes Redis while degraded. Its timers run on the store's
// clock (real timers without one, or when the clock is not a
// bulwark.TimerClock), so a test driving a fake clock drives them too.
func (b *Breaker) loop() {
	defer close(b.done)
	tickEvery := max(b.refreshEvery/4, time.Millisecond)
	flushT := core.NewTimer(b.s.clock, b.flushEvery)
	tickT := core.NewTimer(b.s.clock, tickEvery)
	defer func() {
		flushT.Stop()
		tickT.Stop()
	}()
	ctx := context.Background()
	for {
		select {
		case <-b.stop:
			if !b.degraded.Load() {
				_ = b.flush(ctx)
			}
			return
		case <-flushT.C():
			_ = b.flush(ctx)
			flushT = core.NewTimer(b.s.clock, b.flushEvery)
		case <-b.kick:
			if b.needSync.Swap(false) && !b.degraded.Load() {
				b.sync(ctx)
			}
			_ = b.flush(ctx)
		case <-tickT.C():
			b.tick(ctx)
			tickT = core.NewTimer(b.s.clock, tickEvery)
		}
	}
}

// tick probes Redis while degraded, and reads the state again when no reply
// came for a refresh interval.
func (b *Breaker) tick(ctx context.Context) {
	b.mu.Lock()
	stale := b.now().Sub(b.lastReply) >= b.refreshEvery
	b.mu.Unlock()
	if !stale && !b.degraded.Load() {
		return
	}
	// A successful read also marks the store healthy again.
	if b.sync(ctx) {
		b.degraded.Store(false)
	}
}

// sync reads the state (creating it closed if absent) into the cache. It
// reports whether Redis answered; a failure turns the breaker degraded.
func (b *Breaker) sync(ctx context.Context) bool {
	if _, err := b.exec(ctx, "get"); err != nil {
		b.enterDegraded()
		return false
	}
	return true
}

// flush sends the waiting trial outcomes, then the batch. One flush runs
// at a time, so a Flush returns only after what was recorded before it
// has been sent, by it or by the flush in progress.
func (b *Breaker) flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if b.degraded.Load() {
		b.trials = b.trials[:0]
		b.batch = outcomeBatch{}
		b.mu.Unlock()
		return nil
	}
	trials := b.trials
	b.trials = nil
	bt := b.batch
	b.batch = outcomeBatch{}
	b.mu.Unlock()
	for _, t := range trials {
		ok := "0"
		if t.ok {
			ok = "1"
		}
		if _, err := b.exec(ctx, "trial", strconv.FormatUint(t.gen, 10), strconv.FormatInt(t.index, 10), ok); err != nil {
			b.enterDegraded()
			return err
		}
	}
	if bt.calls == 0 {
		return nil
	}
	_, err := b.exec(ctx, "report",
		strconv.FormatUint(bt.gen, 10), strconv.FormatInt(bt.calls, 10), strconv.FormatInt(bt.failures, 10),
		strconv.FormatInt(bt.slow, 10), strconv.FormatInt(bt.lead, 10), strconv.FormatInt(bt.maxrun, 10),
		strconv.FormatInt(bt.run, 10))
	if err != nil {
		b.enterDegraded()
	}
	return err
}

// enterDegraded switches to the local twin, seeded with the last known
// state, unless already degraded.
func (b *Breaker) enterDegraded() {
	if b.degraded.Swap(true) {
		return
	}
	b.mu.Lock()
	open := b.known && b.state == bulwark.Open && b.now().Before(b.openUntil)
	b.batch = outcomeBatch{}
	b.trials = b.trials[:0]
	b.mu.Unlock()
	if open {
		b.twin.ForceOpen()
	} else {
		b.twin.Reset()
	}
}
