package local

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// TestBreakerUntimedPathMatchesObserved drives two breakers through the same
// random script of outcomes, clock steps, late reports and resets: one
// without an observer or slow-call limit (its closed-state outcomes take the
// untimed path, counted from the clock's microseconds), one with an
// observer (every outcome timed from Allow, through the timed path). They
// must agree on every snapshot.
func TestBreakerUntimedPathMatchesObserved(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 5
	clk := fakeclock.New(fakeclock.Epoch.Add(123456789 * time.Nanosecond)) // not on a µs boundary
	fast, err := NewBreaker(c, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	tape := &eventTape{}
	observed, err := NewBreaker(c, WithClock(clk), WithObserver(tape))
	if err != nil {
		t.Fatal(err)
	}
	if fast.timeCalls || !observed.timeCalls {
		t.Fatalf("timeCalls = %v, %v: want the first breaker untimed and the second timed", fast.timeCalls, observed.timeCalls)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 2026))
	var late [2]func(bool)
	trips := 0
	for step := range 5000 {
		switch r := rng.IntN(100); {
		case r < 70: // one call each, failing with a drifting probability
			ok := rng.Float64() >= 0.2+0.4*float64(step%400)/400
			var errs [2]error
			for i, b := range []*Breaker{fast, observed} {
				var done func(bool)
				done, errs[i] = b.Allow(ctx)
				if done != nil {
					done(ok)
				}
			}
			if (errs[0] == nil) != (errs[1] == nil) {
				t.Fatalf("step %d: Allow errors %v and %v differ", step, errs[0], errs[1])
			}
		case r < 85: // time passes: within a bucket, across some, or past OpenFor
			clk.Advance([]time.Duration{time.Microsecond, 999 * time.Microsecond, 400 * time.Millisecond, time.Second, 7 * time.Second, 31 * time.Second}[rng.IntN(6)])
		case r < 90: // to just before (or onto) the next bucket's first µs
			width := c.Window / BreakerBuckets
			next := clk.Now().Truncate(width).Add(width)
			clk.Set(next.Add(-[]time.Duration{0, time.Nanosecond, 999 * time.Nanosecond, time.Microsecond}[rng.IntN(4)]))
		case r < 95: // a call that reports later, perhaps in another generation
			for i, b := range []*Breaker{fast, observed} {
				if late[i] != nil {
					late[i](false)
				}
				late[i], _ = b.Allow(ctx)
			}
		case r < 97:
			fast.Reset()
			observed.Reset()
		default: // a late report again: ignored, or counted once
			ok := rng.IntN(2) == 0
			for _, l := range late {
				if l != nil {
					l(ok)
				}
			}
		}
		mf, mo := fast.Metrics(), observed.Metrics()
		if mf != mo {
			t.Fatalf("step %d: untimed breaker %+v, observed breaker %+v", step, mf, mo)
		}
		if mf.State == bulwark.Open {
			trips++
		}
	}
	if trips == 0 {
		t.Fatal("the script never opened the breakers: it tests nothing of the trip rules")
	}
}

// TestBreakerTimedPathOnSystemClock trips breakers on the system clock
// through the timed closed-state path, with and without an observer, and
// checks the open period and the outcome events' times and durations.
func TestBreakerTimedPathOnSystemClock(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 3
	c.SlowCall = time.Hour
	c.SlowCallRate = 1
	ctx := context.Background()
	for _, observed := range []bool{false, true} {
		tape := &eventTape{}
		var opts []Option
		if observed {
			opts = append(opts, WithObserver(tape))
		}
		b, err := NewBreaker(c, opts...)
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		for range 3 {
			done, err := b.Allow(ctx)
			if err != nil {
				t.Fatalf("observed %v: Allow: %v", observed, err)
			}
			done(false)
		}
		after := time.Now()
		m := b.Metrics()
		if m.State != bulwark.Open {
			t.Fatalf("observed %v: metrics %+v, want open after 3 failures in a row", observed, m)
		}
		// Generous: the breaker's clock is anchored to the wall clock once.
		if lo, hi := before.Add(c.OpenFor-time.Second), after.Add(c.OpenFor+time.Second); m.OpenUntil.Before(lo) || m.OpenUntil.After(hi) {
			t.Fatalf("observed %v: OpenUntil %v, want within [%v, %v]", observed, m.OpenUntil, lo, hi)
		}
		if !observed {
			continue
		}
		var last time.Time
		outcomes := tape.of(bulwark.EventBreakerOutcome)
		for _, e := range outcomes {
			if e.Allowed || e.Duration < 0 || e.Duration > time.Minute || e.Time.Before(last) {
				t.Fatalf("outcome event %+v: want a failure with a sane duration, in time order", e)
			}
			last = e.Time
		}
		if len(outcomes) != 3 || outcomes[2].To != bulwark.Open {
			t.Fatalf("outcome events %+v, want 3, the last one seeing the breaker open", outcomes)
		}
		if tr := tape.transitions(); len(tr) != 1 || tr[0] != "closed>open" {
			t.Fatalf("transitions %v, want closed>open", tr)
		}
	}
}

// TestFastClockUnixMicro checks the microsecond reading against Now on the
// system clock (bracketed, as the clock moves) and on an injected one.
func TestFastClockUnixMicro(t *testing.T) {
	sys := newFastClock(bulwark.SystemClock)
	for range 1000 {
		a := sys.UnixMicro()
		n := sys.Now().UnixMicro()
		b := sys.UnixMicro()
		if a > n || n > b {
			t.Fatalf("UnixMicro %d, Now %d, UnixMicro %d: want them in order", a, n, b)
		}
	}
	if d := time.Now().UnixMicro() - sys.UnixMicro(); d < -1000 || d > 1000 {
		t.Fatalf("system UnixMicro is %dµs from time.Now", d)
	}
	clk := fakeclock.New(fakeclock.Epoch.Add(1999 * time.Nanosecond))
	f := newFastClock(clk)
	for _, step := range []time.Duration{0, time.Nanosecond, 999 * time.Nanosecond, time.Hour} {
		clk.Advance(step)
		if got, want := f.UnixMicro(), clk.Now().UnixMicro(); got != want {
			t.Fatalf("injected clock: UnixMicro = %d, want %d", got, want)
		}
	}
}
