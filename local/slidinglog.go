package local

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// SlidingLog is a keyed sliding-window-log rate limiter: exact, it admits at
// most Limit.Events tokens per key in any span of one Period. Limit.Burst is
// ignored.
//
// Model: every admitted token is logged with its admission time, and a token
// logged at t counts while now − t < Period, that is within the sliding
// window (now − Period, now]. A request for n tokens is admitted when the
// tokens still counted plus n are at most Events; then its n tokens are
// logged at now. When denied, RetryAfter is the time until enough of the
// oldest tokens have left the window: if k more tokens must go, the k-th
// oldest token's time plus Period.
//
// Worked example, Limit{Events: 3, Period: time.Second}: a key is admitted 2
// tokens at 0ms and 1 at 400ms. At 700ms a request for 2 is denied: 3 tokens
// count and 3 + 2 − 3 = 2 must leave; the 2nd oldest was logged at 0ms, so
// RetryAfter is 0ms + 1s − 700ms = 300ms, and at 1000ms both tokens of 0ms
// have left and the request is admitted. ResetAfter is the time until the
// newest token leaves.
//
// Memory: tokens admitted at the same microsecond share one log entry of 16
// bytes, and a key's log holds at most Events tokens, so at most Events
// entries; it grows as needed and is reused. Prefer SlidingWindow when
// Events is large and many keys are busy.
//
// The decisions are the ones docs/algorithms.md defines token by token,
// shared with the Redis-backed twin in package distributed. A key's time
// never goes backwards: if the clock does, the key is treated as still at
// its newest logged time. A key's state is dropped once its newest token has
// left the window.
//
// Idle keys are dropped and the number of keys is capped as TokenBucket
// describes (see WithMaxKeys).
//
// A SlidingLog is safe for concurrent use; calls on distinct keys rarely
// contend. The zero value is not usable: build one with NewSlidingLog.
type SlidingLog struct {
	keyedCore
	limit bulwark.Limit
	e     int64 // Events
	p     int64 // Period in µs
	store keyStore[logState]
}

var _ bulwark.Limiter = (*SlidingLog)(nil)

// logState is one key's log: a ring of marks in time order, oldest at head.
// The slot's reset time is the newest mark's time + P.
type logState struct {
	marks []logMark // the ring; len(marks) ≤ Events
	head  int       // position of the oldest mark
	count int       // marks in use
	sum   int64     // tokens in the marks in use
}

// logMark is n tokens logged at time t (µs).
type logMark struct {
	t int64
	n int64
}

// logInitialMarks is the ring size of a new key (or Events, if smaller).
const logInitialMarks = 4

// mark returns the i-th oldest mark in use.
func (st *logState) mark(i int) *logMark {
	j := st.head + i
	if j >= len(st.marks) {
		j -= len(st.marks)
	}
	return &st.marks[j]
}

// drop forgets the k oldest marks, holding tokens tokens.
func (st *logState) drop(k int, tokens int64) {
	st.head += k
	if st.head >= len(st.marks) {
		st.head -= len(st.marks)
	}
	st.count -= k
	st.sum -= tokens
	if st.count == 0 {
		st.head = 0
	}
}

// push logs n tokens at t, no earlier than the newest mark; the ring grows
// up to most marks.
func (st *logState) push(t, n int64, most int64) {
	if st.count > 0 {
		if last := st.mark(st.count - 1); last.t == t {
			last.n += n
			st.sum += n
			return
		}
	}
	if st.count == len(st.marks) {
		size := int(min(max(2*int64(len(st.marks)), logInitialMarks), most))
		grown := make([]logMark, size)
		for i := 0; i < st.count; i++ {
			grown[i] = *st.mark(i)
		}
		st.marks, st.head = grown, 0
	}
	*st.mark(st.count) = logMark{t: t, n: n}
	st.count++
	st.sum += n
}

// NewSlidingLog returns an exact sliding-window limiter admitting at most
// l.Events tokens per key in any span of l.Period. It returns an error
// wrapping bulwark.ErrInvalidConfig when l is invalid (see
// bulwark.Limit.Validate) or an option is.
//
// Options: WithClock, WithMaxKeys, WithObserver, WithName.
func NewSlidingLog(l bulwark.Limit, opts ...Option) (*SlidingLog, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &SlidingLog{
		keyedCore: keyedCore{clock: newFastClock(o.clock), observer: o.observer, name: o.name},
		limit:     l,
		e:         int64(l.Events),
		p:         l.PeriodMicros(),
		store:     newKeyStore[logState](o.maxKeys, l.PeriodMicros()),
	}, nil
}

// Limit returns the limit the log enforces.
func (s *SlidingLog) Limit() bulwark.Limit { return s.limit }

// Allow logs n tokens for key if the tokens of the last Period plus n are at
// most Events, else logs none. It returns an error wrapping
// bulwark.ErrInvalidArgument when n < 1 or n > Events, and ctx.Err() when
// ctx is done. Decision.Limit is Events.
//
// Allow on a key that already holds state allocates nothing, except when
// the key's log must grow to hold more distinct admission times than ever
// before.
func (s *SlidingLog) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
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
		s.observe("sliding_log", wall, d)
	}
	return d, nil
}

// decide logs n tokens for key at now (µs) if they fit. Requires sh.mu held.
func (s *SlidingLog) decide(sh *keyShard[logState], key string, now, n int64) bulwark.Decision {
	slot := sh.lookup(key)
	t := now
	var st *logState
	if slot != nil {
		st = &slot.s
		if st.count > 0 {
			t = max(t, st.mark(st.count-1).t)
		}
	}
	// Marks at or before cut have left the window (t − ti ≥ P). They are
	// only counted here: a denied request changes nothing, and forgetting
	// them before t is the key's newest time would be wrong if the clock
	// went back.
	cut := t - s.p
	var gone int
	var goneTokens, live int64
	if st != nil {
		for gone < st.count {
			m := st.mark(gone)
			if m.t > cut {
				break
			}
			goneTokens += m.n
			gone++
		}
		live = st.sum - goneTokens
	}
	d := bulwark.Decision{Limit: int(s.e)}
	if live+n <= s.e {
		if slot == nil {
			slot = sh.insert(key, now)
			st = &slot.s
		} else {
			st.drop(gone, goneTokens)
		}
		st.push(t, n, s.e)
		slot.reset = t + s.p
		d.Allowed = true
		d.Remaining = int(s.e - live - n)
		d.ResetAfter = micros(s.p)
		return d
	}
	// Denied: the k-th oldest live token must leave the window first.
	k := live + n - s.e
	var seen int64
	tk := t
	for i := gone; i < st.count; i++ {
		m := st.mark(i)
		if seen += m.n; seen >= k {
			tk = m.t
			break
		}
	}
	d.Remaining = int(s.e - live)
	d.RetryAfter = micros(tk + s.p - t)
	if live > 0 {
		d.ResetAfter = micros(st.mark(st.count-1).t + s.p - t)
	}
	return d
}

// keys returns how many keys hold state.
func (s *SlidingLog) keys() int { return s.store.len() }
