package local

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// SlidingWindow is a keyed sliding-window-counter rate limiter: it admits
// about Limit.Events tokens per key in any span of one Period, with two
// counters per key. Limit.Burst is ignored.
//
// Model: time is cut into fixed windows of one Period, aligned to multiples
// of Period since the Unix epoch, and each key counts the tokens it took in
// the current window (cur) and in the previous one (prev). The sliding
// window (now−Period, now] covers the end of the previous window and the
// start of the current one, so its count is estimated as cur plus prev
// weighted by the fraction of the previous window still inside it. A request
// for n tokens is admitted when that estimate plus n is at most Events. The
// estimate assumes the previous window's tokens were spread evenly; it never
// admits more than Events within one fixed window, and far fewer than the
// fixed window's 2×Events across a window boundary. SlidingLog is exact, at a
// memory cost of up to Events entries per key.
//
// Worked example, Limit{Events: 10, Period: time.Minute}: a key took 10
// tokens in the minute 12:00 and asks for 1 at 12:01:15. A quarter of the
// new minute has passed, so three quarters of the previous one still count:
// 10 × 3/4 = 7.5, plus 0 this minute, plus 1 asked, is at most 10: admitted,
// Remaining 10 − ⌈7.5⌉ − 1 = 1. Had it asked for 2 at 12:01:06 instead, it
// would have been denied (10 × 0.9 + 2 = 11) with RetryAfter 6s: at
// 12:01:12, 10 × 0.8 + 2 = 10 fits.
//
// All arithmetic is in integers (counts scaled by the period in µs), as in
// docs/algorithms.md, shared with the Redis-backed twin in package
// distributed. RetryAfter is exact: the earliest wait after which the same
// request, with no other traffic on the key, is admitted. If the clock goes
// backwards into an earlier window, the key stays in its latest window, as
// if at its start. A key's state is dropped once both windows have rolled
// off.
//
// Idle keys are dropped and the number of keys is capped as TokenBucket
// describes (see WithMaxKeys).
//
// A SlidingWindow is safe for concurrent use; calls on distinct keys rarely
// contend. The zero value is not usable: build one with NewSlidingWindow.
type SlidingWindow struct {
	keyedCore
	limit bulwark.Limit
	e     int64 // Events
	p     int64 // Period in µs
	store keyStore[slidingState]
}

var _ bulwark.Limiter = (*SlidingWindow)(nil)

// slidingState is one key's window number w, the tokens cur taken in it and
// prev taken in window w−1. The slot's reset time is (w+2)×P.
type slidingState struct {
	w    int64
	cur  int64
	prev int64
}

// NewSlidingWindow returns a sliding-window-counter limiter admitting about
// l.Events tokens per key in any span of l.Period. It returns an error
// wrapping bulwark.ErrInvalidConfig when l is invalid (see
// bulwark.Limit.Validate) or an option is.
//
// Options: WithClock, WithMaxKeys, WithObserver, WithName.
func NewSlidingWindow(l bulwark.Limit, opts ...Option) (*SlidingWindow, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &SlidingWindow{
		keyedCore: keyedCore{clock: newFastClock(o.clock), observer: o.observer, name: o.name},
		limit:     l,
		e:         int64(l.Events),
		p:         l.PeriodMicros(),
		store:     newKeyStore[slidingState](o.maxKeys, l.PeriodMicros()),
	}, nil
}

// Limit returns the limit the window enforces.
func (s *SlidingWindow) Limit() bulwark.Limit { return s.limit }

// Allow takes n tokens for key if the weighted count plus n is at most
// Events, else takes none. It returns an error wrapping
// bulwark.ErrInvalidArgument when n < 1 or n > Events, and ctx.Err() when
// ctx is done. Decision.Limit is Events.
//
// Allow on a key that already holds state allocates nothing.
func (s *SlidingWindow) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || int64(n) > s.e {
		return bulwark.Decision{}, badTokens(n, int(s.e))
	}
	wall := s.clock.Now()
	now := core.Micros(wall)
	sh := s.store.shard(key)
	sh.mu.Lock()
	d := s.decide(sh, key, now, int64(n))
	sh.mu.Unlock()
	if s.observer != nil {
		s.observe("sliding_window", wall, d)
	}
	return d, nil
}

// decide counts n tokens for key at now (µs). Requires sh.mu held.
func (s *SlidingWindow) decide(sh *keyShard[slidingState], key string, now, n int64) bulwark.Decision {
	p, ev := s.p, s.e
	wn := floorDiv64(now, p)
	e := now - wn*p // µs elapsed in the current window
	slot := sh.lookup(key)
	var cur, prev int64
	if slot != nil {
		switch w := slot.s.w; {
		case w > wn: // the clock went back: stay in the key's window
			wn, e = w, 0
			cur, prev = slot.s.cur, slot.s.prev
		case w == wn:
			cur, prev = slot.s.cur, slot.s.prev
		case w == wn-1:
			prev = slot.s.cur
		}
	}
	left := p - e
	weighted := prev * left // prev's overlapping share, scaled by p
	d := bulwark.Decision{Limit: int(ev)}
	if weighted+(cur+n)*p <= ev*p {
		cur += n
		if slot == nil {
			slot = sh.insert(key, now)
		}
		slot.s = slidingState{w: wn, cur: cur, prev: prev}
		slot.reset = (wn + 2) * p
		d.Allowed = true
	} else {
		d.RetryAfter = micros(s.retryAfter(e, cur, prev, n))
	}
	d.Remaining = int(max(0, ev-ceilDiv64(weighted, p)-cur))
	switch {
	case cur > 0:
		d.ResetAfter = micros(p + left)
	case prev > 0:
		d.ResetAfter = micros(left)
	}
	return d
}

// retryAfter is the earliest wait (µs) after which a denied request for n
// tokens is admitted, with no other traffic, from e µs into a window with
// counts cur and prev.
func (s *SlidingWindow) retryAfter(e, cur, prev, n int64) int64 {
	p, ev := s.p, s.e
	left := p - e
	// Still in this window, once prev's weight prev×(p−e′) has shrunk to
	// x×p, x being the room left beside cur and n.
	if x := ev - cur - n; x >= 0 && prev > 0 {
		if d1 := left - x*p/prev; d1 < left {
			return d1
		}
	}
	// In the next window, where cur becomes the previous count: it fits
	// once cur×(p−e2) ≤ (ev−n)×p.
	var e2 int64
	if cur > 0 {
		e2 = max(0, p-(ev-n)*p/cur)
	}
	return left + e2
}

// keys returns how many keys hold state.
func (s *SlidingWindow) keys() int { return s.store.len() }
