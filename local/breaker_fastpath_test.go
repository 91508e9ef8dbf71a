package local

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// TestBreakerUntimedSharedDone: on the untimed path every call of a closed
// generation shares one done, and the breaker never counts more outcomes
// than it admitted calls: extra reports are ignored, reports from before a
// transition are ignored, and concurrent double reports count each call
// once.
func TestBreakerUntimedSharedDone(t *testing.T) {
	c := testBreakerConfig()
	c.MinimumCalls = 1 << 30 // never trips on rates
	clk := fakeclock.New(fakeclock.Epoch)
	b, err := NewBreaker(c, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	if b.timeCalls {
		t.Fatal("breaker without observer or SlowCall is timed: the test needs the untimed path")
	}
	ctx := context.Background()
	var dones []func(bool)
	for range 3 {
		d, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, d)
	}
	for range 5 {
		dones[0](false)
	}
	if m := b.Metrics(); m.Calls != 3 || m.Failures != 3 {
		t.Fatalf("3 calls, one done reported 5 times: %+v, want 3 calls and 3 failures counted", m)
	}
	dones[1](true)
	dones[2](true)
	if m := b.Metrics(); m.Calls != 3 {
		t.Fatalf("reports after every call was counted: %+v, want still 3 calls", m)
	}

	// A call admitted before Reset reports into a generation that is gone.
	old, _ := b.Allow(ctx)
	b.Reset()
	old(false)
	if m := b.Metrics(); m.Calls != 0 {
		t.Fatalf("report from before Reset: %+v, want it ignored", m)
	}

	// Concurrent calls, each reporting twice: each counted exactly once.
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 500 {
				d, err := b.Allow(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				admitted.Add(1)
				d(true)
				d(true)
			}
		})
	}
	wg.Wait()
	if m := b.Metrics(); int64(m.Calls) != admitted.Load() {
		t.Fatalf("%d calls admitted, each reported twice: %d counted, want each once", admitted.Load(), m.Calls)
	}

	// Open, then closed again: the new closed generation has a done of its
	// own, and the open state's rejections take none.
	b.ForceOpen()
	if _, err := b.Allow(ctx); err == nil {
		t.Fatal("Allow on an open breaker succeeded")
	}
	clk.Advance(c.OpenFor)
	for range c.HalfOpenCalls {
		d, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("trial: %v", err)
		}
		d(true)
	}
	if m := b.Metrics(); m.State != bulwark.Closed || m.Calls != 0 {
		t.Fatalf("after the trials: %+v, want closed with an empty window", m)
	}
	d, _ := b.Allow(ctx)
	d(false)
	if m := b.Metrics(); m.Calls != 1 || m.Failures != 1 {
		t.Fatalf("first call of the new generation: %+v, want 1 failure counted", m)
	}
}

// TestBreakerUntimedSystemClockSlides: on the system clock untimed
// outcomes read no clock while the newest bucket is current; the timer set
// to its end makes the next outcome slide the window, so failures that
// left the window no longer count (three failures, then past the window
// one more: 1 call in the window, below MinimumCalls, the breaker stays
// closed). With the timer stopped, every breakerClockEvery-th outcome
// still reads the clock.
func TestBreakerUntimedSystemClockSlides(t *testing.T) {
	c := bulwark.BreakerConfig{Window: 100 * time.Millisecond, MinimumCalls: 4, FailureRate: 0.5, OpenFor: time.Hour, HalfOpenCalls: 1}
	b, err := NewBreaker(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(ok bool) {
		t.Helper()
		d, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow: %v (metrics %+v)", err, b.Metrics())
		}
		d(ok)
	}
	for range 3 {
		call(false)
	}
	if b.stale.Load() {
		t.Fatal("stale after outcomes in the current bucket: the timer was not set")
	}
	waitStale := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !b.stale.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the bucket's timer never ran")
			}
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(c.Window + c.Window/2)
	waitStale()
	call(false)
	if m := b.Metrics(); m.State != bulwark.Closed || m.Calls != 1 {
		t.Fatalf("one failure after the window: %+v, want closed with 1 call in the window", m)
	}

	// The timer stopped (as if starved): the outcomes still slide the
	// window within breakerClockEvery of them.
	b.mu.Lock()
	b.tick.Stop()
	b.stale.Store(false)
	b.mu.Unlock()
	time.Sleep(c.Window + c.Window/2)
	for range breakerClockEvery {
		call(true)
	}
	b.mu.Lock()
	head, unread := b.headStart, b.unread
	b.mu.Unlock()
	if now := time.Now().UnixMicro(); now-head > c.Window.Microseconds() || unread != 0 {
		t.Fatalf("after %d outcomes with the timer stopped: newest bucket from %dµs ago, %d unread; want the window slid by a clock read", breakerClockEvery, now-head, unread)
	}
}
