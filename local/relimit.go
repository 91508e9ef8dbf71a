package local

import (
	"math/bits"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Live reconfiguration of the keyed limiters.
//
// A limiter's limit is fixed for its lifetime, which keeps its hot path free
// of any synchronisation beyond the shard lock. To change the limit of a
// running limiter without losing its keys' state, Relimit returns a new
// limiter that shares the old one's key state: callers swap the limiter
// they use (package policy swaps whole configurations with one atomic
// store), and both limiters keep deciding consistently under the same shard
// locks while calls that started on the old one finish.
//
// Only the number of events and the burst may change: the state is
// meaningful for one period, so a new period needs a new limiter (fresh
// state). A window limiter's counts carry over as they are (tokens taken
// in the current window still count, against the new limit). A token
// bucket keeps each key's theoretical arrival time, as the Redis-backed
// bucket does (lua.TokenBucket stores that time and reads it with the
// limit of each call): a key that had spent its whole bucket still has,
// under any new limit, a full bucket's worth of time to wait, and a key
// that had spent part of it has spent the same share of time at the new
// rate.

// Relimit returns a token bucket enforcing l that shares b's buckets. l must
// have b's Period; it returns an error wrapping bulwark.ErrInvalidConfig
// when l is invalid or its period differs. b must not be used afterwards:
// the two share state, which Relimit converts to l's units.
//
// Each key keeps its theoretical arrival time (rounded up to l's units),
// so its debt, as time, carries over and refills at l's rate, capped by
// l's capacity: the arithmetic of the Redis-backed bucket after a limit
// change. Relimit walks every key once, under each shard's lock.
func (b *TokenBucket) Relimit(l bulwark.Limit) (*TokenBucket, error) {
	if err := relimitCheck(b.limit, l); err != nil {
		return nil, err
	}
	c := l.Capacity()
	nb := &TokenBucket{keyedCore: b.keyedCore, limit: l, e: int64(l.Events), p: b.p, c: c, tau: int64(c) * b.p, store: b.store}
	for i := range nb.store.shards {
		sh := &nb.store.shards[i]
		sh.mu.Lock()
		for j := range sh.slots {
			s := &sh.slots[j]
			s.s.ahead = rescaleUp(s.s.ahead, nb.e, b.e)
			s.reset = s.s.at + ceilDiv64(s.s.ahead, nb.e)
		}
		sh.mu.Unlock()
	}
	return nb, nil
}

// rescaleUp returns ⌈x × num / den⌉ for x ≥ 0 and positive num and den,
// without overflowing the intermediate product, capped at
// core.MaxSafeInteger (a debt that large only means "denied for a very long
// time", and keeps the bucket's arithmetic within int64).
func rescaleUp(x, num, den int64) int64 {
	hi, lo := bits.Mul64(uint64(x), uint64(num))
	if hi >= uint64(den) {
		return core.MaxSafeInteger
	}
	q, r := bits.Div64(hi, lo, uint64(den))
	if r != 0 {
		q++
	}
	return int64(min(q, core.MaxSafeInteger))
}

// Relimit returns a sliding-window limiter enforcing l that shares w's
// counts. l must have w's Period; it returns an error wrapping
// bulwark.ErrInvalidConfig otherwise or when l is invalid. The tokens each
// key took in the current and previous windows carry over and count
// against the new limit.
func (w *SlidingWindow) Relimit(l bulwark.Limit) (*SlidingWindow, error) {
	if err := relimitCheck(w.limit, l); err != nil {
		return nil, err
	}
	return &SlidingWindow{keyedCore: w.keyedCore, limit: l, e: int64(l.Events), p: w.p, store: w.store}, nil
}

// Relimit returns a fixed-window limiter enforcing l that shares w's
// counts. l must have w's Period; it returns an error wrapping
// bulwark.ErrInvalidConfig otherwise or when l is invalid. The tokens each
// key took in the current window carry over and count against the new
// limit.
func (w *FixedWindow) Relimit(l bulwark.Limit) (*FixedWindow, error) {
	if err := relimitCheck(w.limit, l); err != nil {
		return nil, err
	}
	return &FixedWindow{keyedCore: w.keyedCore, limit: l, e: int64(l.Events), p: w.p, store: w.store}, nil
}

func relimitCheck(old, l bulwark.Limit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if l.Period != old.Period {
		return core.ConfigError("relimit: the period cannot change in place (%v -> %v): build a new limiter", old.Period, l.Period)
	}
	return nil
}
