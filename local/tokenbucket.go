package local

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// TokenBucket is a keyed token-bucket rate limiter, computed as GCRA (the
// generic cell rate algorithm).
//
// Model: each key owns a bucket of Capacity tokens (Limit.Burst, or
// Limit.Events when Burst is 0) that refills continuously at Events per
// Period. A request for n tokens is admitted when n tokens are in the bucket,
// and then takes them; otherwise it takes nothing. A key nobody used for a
// while has a full bucket, so it may burst up to Capacity at once; a key that
// keeps asking settles at Events per Period.
//
// GCRA keeps no token count. It stores, per key, how far ahead of the key's
// last admitted request its "theoretical arrival time" runs: every admitted
// token pushes it Period/Events further ahead, time catches up with it, and
// a request is denied when admitting it would push it beyond Capacity tokens'
// worth of time ahead. To stay exact when Period/Events is not a whole number
// of microseconds, the distance is counted in units of 1/Events µs, where a
// token costs exactly Period (in µs) units. The arithmetic is the one of
// docs/algorithms.md, shared with the Redis-backed twin in package
// distributed, so both return identical decisions.
//
// Worked example, Limit{Events: 10, Period: time.Second, Burst: 3}: one
// token every 100ms, at most 3 at once. An idle key asks four times at the
// same instant:
//
//	Allow(1): allowed, Remaining 2, ResetAfter 100ms
//	Allow(1): allowed, Remaining 1, ResetAfter 200ms
//	Allow(1): allowed, Remaining 0, ResetAfter 300ms
//	Allow(1): denied,  Remaining 0, RetryAfter 100ms, ResetAfter 300ms
//
// 100ms later one token has come back, so Allow(1) is admitted again;
// 300ms after the burst the bucket is full again and the key's state is
// dropped, because a full bucket and no bucket at all behave the same.
//
// Durations in a Decision are whole microseconds, rounded up, so a client
// that waits RetryAfter and asks again for the same n, with no other traffic
// on the key, is admitted (unless the clock went backwards meanwhile: a
// clock that goes back finds the bucket as empty as it was at that earlier
// time plus what was taken since, so it never admits more than a clock that
// did not).
//
// Memory and the key cap (the same for every keyed limiter of this
// package): a key costs a few dozen bytes plus its key string. A key whose
// state is back at full capacity behaves exactly like a key never seen, so
// it is dropped once it has stayed so for one Period (a key that calls at
// least once per period is never dropped and created again); the drop
// happens lazily, as new keys are inserted. WithMaxKeys caps the number of
// keys (default DefaultMaxKeys), split evenly between the limiter's shards.
// A new key arriving at a full shard replaces a key already back at full
// capacity if one is found among the next 32 keys of the shard; otherwise it
// replaces, among those, the key with the earliest ResetAfter, whose state
// matters least. That key then starts again from full capacity: beyond the
// cap a limiter errs toward admitting; it never grows past the cap and never
// fails.
//
// A TokenBucket is safe for concurrent use; calls on distinct keys rarely
// contend. The zero value is not usable: build one with NewTokenBucket.
type TokenBucket struct {
	keyedCore
	limit bulwark.Limit
	e     int64 // Events
	p     int64 // Period in µs: the cost of one token in scaled units
	c     int   // Capacity
	tau   int64 // tolerance: Capacity × P scaled units
	store keyStore[bucketState]
}

var _ bulwark.Limiter = (*TokenBucket)(nil)

// bucketState is one key's GCRA state: the time at (µs) of its last admitted
// request, and ahead, how far its theoretical arrival time was then ahead of
// at, in units of 1/Events µs. The slot's reset time is at + ⌈ahead/E⌉.
type bucketState struct {
	at    int64
	ahead int64
}

// NewTokenBucket returns a token bucket enforcing l on every key: l.Events
// per l.Period, with bursts up to l.Capacity(). It returns an error wrapping
// bulwark.ErrInvalidConfig when l is invalid (see bulwark.Limit.Validate) or
// an option is.
//
// Options: WithClock, WithMaxKeys, WithObserver, WithName.
func NewTokenBucket(l bulwark.Limit, opts ...Option) (*TokenBucket, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	c := l.Capacity()
	p := l.PeriodMicros()
	return &TokenBucket{
		keyedCore: keyedCore{clock: newFastClock(o.clock), observer: o.observer, name: o.name},
		limit:     l,
		e:         int64(l.Events),
		p:         p,
		c:         c,
		tau:       int64(c) * p,
		store:     newKeyStore[bucketState](o.maxKeys, l.PeriodMicros()),
	}, nil
}

// Limit returns the limit the bucket enforces.
func (b *TokenBucket) Limit() bulwark.Limit { return b.limit }

// Allow takes n tokens from key's bucket if they are all there now, else
// takes none. It returns an error wrapping bulwark.ErrInvalidArgument when n
// < 1 or n > Capacity (such a request could never be admitted), and ctx.Err()
// when ctx is done; otherwise the error is nil and the Decision says what
// happened. Decision.Limit is the capacity.
//
// Allow on a key that already holds state allocates nothing.
func (b *TokenBucket) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || n > b.c {
		return bulwark.Decision{}, badTokens(n, b.c)
	}
	wall := b.clock.Now()
	now := core.Micros(wall)
	sh := b.store.shard(key)
	sh.mu.Lock()
	d := b.decide(sh, key, now, int64(n))
	sh.mu.Unlock()
	if b.observer != nil {
		b.observe("token_bucket", wall, d)
	}
	return d, nil
}

// decide applies GCRA to key at now (µs) for n tokens. Requires sh.mu held.
func (b *TokenBucket) decide(sh *keyShard[bucketState], key string, now, n int64) bulwark.Decision {
	slot := sh.lookup(key)
	t := now
	var debt int64 // how far the arrival time is ahead of t, in scaled units
	if slot != nil {
		// The debt is gone once t reaches the reset time at + ⌈ahead/E⌉;
		// before it, (t − at) × E < ahead, so nothing overflows. A clock
		// that went back (t < at) sees the debt not yet repaid at t.
		if t < slot.reset {
			debt = slot.s.ahead - (t-slot.s.at)*b.e
		}
	}
	need := debt + n*b.p
	if need > b.tau {
		return bulwark.Decision{
			Limit:      b.c,
			Remaining:  int(max(b.tau-debt, 0) / b.p),
			RetryAfter: micros(ceilDiv64(need-b.tau, b.e)),
			ResetAfter: micros(ceilDiv64(debt, b.e)),
		}
	}
	if slot == nil {
		slot = sh.insert(key, now)
	}
	reset := ceilDiv64(need, b.e)
	slot.s = bucketState{at: t, ahead: need}
	slot.reset = t + reset
	return bulwark.Decision{
		Allowed:    true,
		Limit:      b.c,
		Remaining:  int((b.tau - need) / b.p),
		ResetAfter: micros(reset),
	}
}

// keys returns how many keys hold state.
func (b *TokenBucket) keys() int { return b.store.len() }
