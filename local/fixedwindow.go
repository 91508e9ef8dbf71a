package local

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// FixedWindow is a keyed fixed-window rate limiter: each key may take at most
// Limit.Events tokens in each window [w×Period, (w+1)×Period), windows being
// aligned to multiples of Period since the Unix epoch. Limit.Burst is
// ignored.
//
// It is the cheapest limiter (one counter per key) and the easiest to explain
// to clients: the quota resets at a known instant. Its weakness is the
// boundary: a client may spend a full quota at the end of one window and
// another at the start of the next, so up to 2×Events in a span of one
// Period. SlidingWindow and SlidingLog avoid that.
//
// Worked example, Limit{Events: 3, Period: time.Minute}, a key asking at
// 12:00:50 for 2 tokens, then at 12:00:55 for 2:
//
//	12:00:50 Allow(2): allowed, Remaining 1, ResetAfter 10s
//	12:00:55 Allow(2): denied,  Remaining 1, RetryAfter 5s, ResetAfter 5s
//	12:01:00 Allow(2): allowed, Remaining 1, ResetAfter 60s (a new window)
//
// The arithmetic is the one of docs/algorithms.md, shared with the
// Redis-backed twin in package distributed. If the clock goes backwards
// into an earlier window, the key stays in its latest window, as if at its
// start. A key's state is dropped once its window is over.
//
// Idle keys are dropped and the number of keys is capped as TokenBucket
// describes (see WithMaxKeys).
//
// A FixedWindow is safe for concurrent use; calls on distinct keys rarely
// contend. The zero value is not usable: build one with NewFixedWindow.
type FixedWindow struct {
	keyedCore
	limit bulwark.Limit
	e     int64 // Events
	p     int64 // Period in µs
	store keyStore[fixedState]
}

var _ bulwark.Limiter = (*FixedWindow)(nil)

// fixedState is one key's window number w (its start is w×P µs) and the
// tokens cur taken in it. The slot's reset time is (w+1)×P.
type fixedState struct {
	w   int64
	cur int64
}

// NewFixedWindow returns a fixed-window limiter admitting at most l.Events
// tokens per key in each window of l.Period. It returns an error wrapping
// bulwark.ErrInvalidConfig when l is invalid (see bulwark.Limit.Validate) or
// an option is.
//
// Options: WithClock, WithMaxKeys, WithObserver, WithName.
func NewFixedWindow(l bulwark.Limit, opts ...Option) (*FixedWindow, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &FixedWindow{
		keyedCore: keyedCore{clock: newFastClock(o.clock), observer: o.observer, name: o.name},
		limit:     l,
		e:         int64(l.Events),
		p:         l.PeriodMicros(),
		store:     newKeyStore[fixedState](o.maxKeys, l.PeriodMicros()),
	}, nil
}

// Limit returns the limit the window enforces.
func (f *FixedWindow) Limit() bulwark.Limit { return f.limit }

// Allow takes n tokens from key's current window if they fit, else takes
// none. It returns an error wrapping bulwark.ErrInvalidArgument when n < 1 or
// n > Events, and ctx.Err() when ctx is done. Decision.Limit is Events;
// ResetAfter is the time left in the window.
//
// Allow on a key that already holds state allocates nothing.
func (f *FixedWindow) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || int64(n) > f.e {
		return bulwark.Decision{}, badTokens(n, int(f.e))
	}
	wall := f.clock.Now()
	now := core.Micros(wall)
	sh := f.store.shard(key)
	sh.mu.Lock()
	d := f.decide(sh, key, now, int64(n))
	sh.mu.Unlock()
	if f.observer != nil {
		f.observe("fixed_window", wall, d)
	}
	return d, nil
}

// decide counts n tokens for key at now (µs). Requires sh.mu held.
func (f *FixedWindow) decide(sh *keyShard[fixedState], key string, now, n int64) bulwark.Decision {
	wn := floorDiv64(now, f.p)
	e := now - wn*f.p // µs elapsed in the window
	slot := sh.lookup(key)
	var cur int64
	if slot != nil {
		switch {
		case slot.s.w > wn: // the clock went back: stay in the key's window
			wn, e, cur = slot.s.w, 0, slot.s.cur
		case slot.s.w == wn:
			cur = slot.s.cur
		}
	}
	left := f.p - e
	d := bulwark.Decision{Limit: int(f.e)}
	if cur+n <= f.e {
		cur += n
		if slot == nil {
			slot = sh.insert(key, now)
		}
		slot.s = fixedState{w: wn, cur: cur}
		slot.reset = (wn + 1) * f.p
		d.Allowed = true
	} else {
		d.RetryAfter = micros(left)
	}
	d.Remaining = int(max(0, f.e-cur)) // cur > e only after a Relimit shrank the limit
	if cur > 0 {
		d.ResetAfter = micros(left)
	}
	return d
}

// keys returns how many keys hold state.
func (f *FixedWindow) keys() int { return f.store.len() }
