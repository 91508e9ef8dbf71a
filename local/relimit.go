package local

import (
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
// state). The state carries over as tokens: a key that had spent 7 tokens
// of a bucket still has 7 tokens spent, now refilling at the new rate, so
// a shrunken limit denies at once what the new limit does not allow.

// Relimit returns a token bucket enforcing l that shares b's buckets. l must
// have b's Period; it returns an error wrapping bulwark.ErrInvalidConfig
// when l is invalid or its period differs. b stays usable; the two share
// state, so use the new one from now on.
//
// Each key's debt (tokens spent and not yet refilled) carries over; it then
// refills at l's rate and is capped by l's capacity, so a key holding more
// debt than the new capacity is denied until enough has refilled. Relimit
// walks every key once, under each shard's lock, to move its reset time to
// the new rate.
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
			s.reset = s.s.at + ceilDiv64(s.s.ahead, nb.e)
		}
		sh.mu.Unlock()
	}
	return nb, nil
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
