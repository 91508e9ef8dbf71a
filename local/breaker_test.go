package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// eventTape is an observer that keeps every event.
type eventTape struct {
	mu     sync.Mutex
	events []bulwark.Event
}

func (l *eventTape) Observe(e bulwark.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// of returns the events of kind k, in order.
func (l *eventTape) of(k bulwark.EventKind) []bulwark.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []bulwark.Event
	for _, e := range l.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// transitions returns the breaker transitions seen, as "from>to" strings.
func (l *eventTape) transitions() []string {
	var out []string
	for _, e := range l.of(bulwark.EventBreakerTransition) {
		out = append(out, e.From.String()+">"+e.To.String())
	}
	return out
}

func testBreakerConfig() bulwark.BreakerConfig {
	return bulwark.BreakerConfig{
		Window:        10 * time.Second,
		MinimumCalls:  4,
		FailureRate:   0.5,
		OpenFor:       30 * time.Second,
		HalfOpenCalls: 2,
	}
}

func newTestBreaker(t *testing.T, c bulwark.BreakerConfig) (*Breaker, *fakeclock.Clock, *eventTape) {
	t.Helper()
	clk := fakeclock.New(fakeclock.Epoch)
	log := &eventTape{}
	b, err := NewBreaker(c, WithClock(clk), WithObserver(log), WithName("test"))
	if err != nil {
		t.Fatalf("NewBreaker(%v): %v", c, err)
	}
	return b, clk, log
}

// brCall makes one call through b that takes d on clk and reports ok. It
// fails the test when the breaker rejects it.
func brCall(t *testing.T, b *Breaker, clk *fakeclock.Clock, d time.Duration, ok bool) {
	t.Helper()
	done, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("Allow: %v, want a call let through (state %v)", err, b.State(context.Background()))
	}
	clk.Advance(d)
	done(ok)
}

func brWantState(t *testing.T, b *Breaker, want bulwark.State) {
	t.Helper()
	if got := b.State(context.Background()); got != want {
		t.Fatalf("state = %v, want %v", got, want)
	}
}

func brWantRejected(t *testing.T, b *Breaker) {
	t.Helper()
	done, err := b.Allow(context.Background())
	if !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow error = %v, want ErrOpen", err)
	}
	if done != nil {
		t.Fatalf("Allow returned a done func with error %v", err)
	}
}

// brTrip opens b with failed calls.
func brTrip(t *testing.T, b *Breaker, clk *fakeclock.Clock) {
	t.Helper()
	for b.State(context.Background()) == bulwark.Closed {
		brCall(t, b, clk, 0, false)
	}
	brWantState(t, b, bulwark.Open)
}

func TestNewBreakerRejectsBadConfig(t *testing.T) {
	bad := []func(*bulwark.BreakerConfig){
		func(c *bulwark.BreakerConfig) { c.Window = 0 },
		func(c *bulwark.BreakerConfig) { c.MinimumCalls = 0 },
		func(c *bulwark.BreakerConfig) { c.FailureRate = 0 },
		func(c *bulwark.BreakerConfig) { c.FailureRate = 1.5 },
		func(c *bulwark.BreakerConfig) { c.ConsecutiveFailures = -1 },
		func(c *bulwark.BreakerConfig) { c.SlowCall = time.Second; c.SlowCallRate = 0 },
		func(c *bulwark.BreakerConfig) { c.OpenFor = 0 },
		func(c *bulwark.BreakerConfig) { c.HalfOpenCalls = 0 },
	}
	for i, mutate := range bad {
		c := testBreakerConfig()
		mutate(&c)
		b, err := NewBreaker(c)
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("case %d: NewBreaker(%v) error = %v, want ErrInvalidConfig", i, c, err)
		}
		if b != nil {
			t.Errorf("case %d: NewBreaker returned a breaker with an error", i)
		}
	}
	if _, err := NewBreaker(bulwark.DefaultBreakerConfig()); err != nil {
		t.Errorf("NewBreaker(default): %v", err)
	}
}

func TestBreakerCancelledContext(t *testing.T) {
	b, _, _ := newTestBreaker(t, testBreakerConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done, err := b.Allow(ctx)
	if !errors.Is(err, context.Canceled) || done != nil {
		t.Fatalf("Allow(cancelled) = (%v, %v), want (nil, context.Canceled)", done != nil, err)
	}
	if m := b.Metrics(); m.Calls != 0 {
		t.Fatalf("calls = %d after a refused call, want 0", m.Calls)
	}
}

// brStep is one call in a transition table: its outcome, how long it takes,
// and the state expected after it reported.
type brStep struct {
	ok    bool
	took  time.Duration
	after bulwark.State
}

func runBrSteps(t *testing.T, c bulwark.BreakerConfig, steps []brStep) {
	t.Helper()
	b, clk, _ := newTestBreaker(t, c)
	for i, s := range steps {
		brCall(t, b, clk, s.took, s.ok)
		if got := b.State(context.Background()); got != s.after {
			t.Fatalf("after step %d (ok=%v took=%v): state = %v, want %v; metrics %+v", i, s.ok, s.took, got, s.after, b.Metrics())
		}
	}
}

const (
	stClosed   = bulwark.Closed
	stOpen     = bulwark.Open
	stHalfOpen = bulwark.HalfOpen
)

func TestBreakerTripsOnFailureRate(t *testing.T) {
	c := testBreakerConfig() // at least 4 calls, 50% failures
	t.Run("minimum calls", func(t *testing.T) {
		runBrSteps(t, c, []brStep{
			{false, 0, stClosed}, {false, 0, stClosed}, {false, 0, stClosed}, // 3/3 failed, but fewer than 4 calls
			{true, 0, stOpen}, // 3/4 failed
		})
	})
	t.Run("exactly at the rate", func(t *testing.T) {
		runBrSteps(t, c, []brStep{
			{true, 0, stClosed}, {true, 0, stClosed}, {false, 0, stClosed}, {false, 0, stOpen}, // 2/4
		})
	})
	t.Run("below the rate", func(t *testing.T) {
		runBrSteps(t, c, []brStep{
			{true, 0, stClosed}, {true, 0, stClosed}, {true, 0, stClosed}, {false, 0, stClosed}, // 1/4
			{true, 0, stClosed}, {false, 0, stClosed}, // 2/6
		})
	})
	t.Run("rate rounding", func(t *testing.T) {
		c := c
		c.FailureRate = 0.1
		c.MinimumCalls = 30
		steps := make([]brStep, 0, 30)
		for range 27 {
			steps = append(steps, brStep{true, 0, stClosed})
		}
		steps = append(steps, brStep{false, 0, stClosed}, brStep{false, 0, stClosed}, brStep{false, 0, stOpen}) // 3/30
		runBrSteps(t, c, steps)
	})
}

func TestBreakerTripsOnConsecutiveFailures(t *testing.T) {
	c := testBreakerConfig()
	c.MinimumCalls = 1000 // the rate rule never applies
	c.ConsecutiveFailures = 3
	runBrSteps(t, c, []brStep{
		{false, 0, stClosed}, {false, 0, stClosed}, {true, 0, stClosed}, // a success resets the run
		{false, 0, stClosed}, {false, 0, stClosed}, {false, 0, stOpen},
	})
}

func TestBreakerTripsOnSlowCallRate(t *testing.T) {
	c := testBreakerConfig()
	c.FailureRate = 1
	c.SlowCall = 100 * time.Millisecond
	c.SlowCallRate = 0.5
	runBrSteps(t, c, []brStep{
		{true, 100 * time.Millisecond, stClosed}, // exactly SlowCall is not slower than it
		{true, 101 * time.Millisecond, stClosed},
		{true, 0, stClosed},
		{true, time.Second, stOpen}, // 2 slow of 4
	})
}

func TestBreakerSlowCallMetrics(t *testing.T) {
	c := testBreakerConfig()
	c.SlowCall = time.Second
	c.SlowCallRate = 1
	b, clk, log := newTestBreaker(t, c)
	brCall(t, b, clk, 2*time.Second, true)
	brCall(t, b, clk, time.Second, false)
	m := b.Metrics()
	if m.Calls != 2 || m.Failures != 1 || m.SlowCalls != 1 {
		t.Fatalf("metrics = %+v, want 2 calls, 1 failure, 1 slow", m)
	}
	outs := log.of(bulwark.EventBreakerOutcome)
	if len(outs) != 2 {
		t.Fatalf("got %d outcome events, want 2", len(outs))
	}
	if outs[0].Duration != 2*time.Second || !outs[0].Allowed || outs[1].Duration != time.Second || outs[1].Allowed {
		t.Fatalf("outcome events = %+v, want (2s, success) then (1s, failure)", outs)
	}
}

func TestBreakerWindowSlides(t *testing.T) {
	// Window 10s in 10 buckets of 1s aligned on whole seconds; the fake
	// clock starts on a whole second.
	b, clk, _ := newTestBreaker(t, testBreakerConfig())
	steps := []struct {
		advance time.Duration
		ok      bool
		calls   int // in the window after the call
		fails   int
		state   bulwark.State
	}{
		{0, false, 1, 1, stClosed},                                  // t=0
		{0, false, 2, 2, stClosed},                                  // t=0
		{0, false, 3, 3, stClosed},                                  // t=0
		{10 * time.Second, true, 1, 0, stClosed},                    // t=10s: bucket 0 left the window
		{0, true, 2, 0, stClosed},                                   // t=10s
		{0, false, 3, 1, stClosed},                                  // t=10s
		{9*time.Second + 999*time.Millisecond, false, 4, 2, stOpen}, // t=19.999s: still in the window, 2/4
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		brCall(t, b, clk, 0, s.ok)
		m := b.Metrics()
		if m.State != s.state || (s.state == stClosed && (m.Calls != s.calls || m.Failures != s.fails)) {
			t.Fatalf("brStep %d: metrics %+v, want state %v, %d calls, %d failures", i, m, s.state, s.calls, s.fails)
		}
	}
}

func TestBreakerWindowExpiresBucketByBucket(t *testing.T) {
	b, clk, _ := newTestBreaker(t, testBreakerConfig())
	// One success per second for 5 seconds: buckets 0..4.
	for range 5 {
		brCall(t, b, clk, 0, true)
		clk.Advance(time.Second)
	}
	// Now t=5s. The window covers buckets 0..5 until t=10s.
	for i, want := range []int{5, 5, 5, 5, 5, 4, 3, 2, 1, 0, 0} {
		if got := b.Metrics().Calls; got != want {
			t.Fatalf("at t=%ds: %d calls in the window, want %d", 5+i, got, want)
		}
		clk.Advance(time.Second)
	}
}

func TestBreakerOpenThenHalfOpenAfterOpenFor(t *testing.T) {
	b, clk, _ := newTestBreaker(t, testBreakerConfig())
	brTrip(t, b, clk)
	brWantRejected(t, b)
	if got, want := b.Metrics().OpenUntil, clk.Now().Add(30*time.Second); !got.Equal(want) {
		t.Fatalf("OpenUntil = %v, want %v", got, want)
	}
	clk.Advance(30*time.Second - time.Nanosecond)
	brWantRejected(t, b)
	brWantState(t, b, stOpen)
	clk.Advance(time.Nanosecond)
	brWantState(t, b, stHalfOpen)
}

func TestBreakerHalfOpenAllowsOnlyTrialCalls(t *testing.T) {
	b, clk, log := newTestBreaker(t, testBreakerConfig()) // 2 trial calls
	brTrip(t, b, clk)
	brWantRejected(t, b)
	brWantRejected(t, b)
	clk.Advance(30 * time.Second)
	// The move to half-open happens in Allow itself.
	d1, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("first trial: %v", err)
	}
	d2, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("second trial: %v", err)
	}
	brWantRejected(t, b)
	brWantRejected(t, b)
	if m := b.Metrics(); m.State != stHalfOpen || m.TrialsStarted != 2 || m.TrialsSucceeded != 0 {
		t.Fatalf("metrics = %+v, want half-open with 2 trials started", m)
	}
	rej := log.of(bulwark.EventBreakerRejected)
	if len(rej) != 4 || rej[2].To != stHalfOpen || rej[0].To != stOpen {
		t.Fatalf("rejected events = %+v, want 2 while open then 2 while half-open", rej)
	}
	d1(true)
	brWantState(t, b, stHalfOpen)
	brWantRejected(t, b) // a reported trial does not free a trial slot
	d2(true)
	brWantState(t, b, stClosed)
	if m := b.Metrics(); m.Calls != 0 || m.Failures != 0 || m.ConsecutiveFailures != 0 {
		t.Fatalf("metrics after closing = %+v, want an empty window", m)
	}
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*bulwark.BreakerConfig)
		took time.Duration
		ok   bool
	}{
		{"failure", func(*bulwark.BreakerConfig) {}, 0, false},
		{"slow success", func(c *bulwark.BreakerConfig) { c.SlowCall = time.Second; c.SlowCallRate = 1 }, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testBreakerConfig()
			tc.cfg(&c)
			b, clk, _ := newTestBreaker(t, c)
			brTrip(t, b, clk)
			clk.Advance(30 * time.Second)
			brWantState(t, b, stHalfOpen)
			brCall(t, b, clk, 0, true) // one good trial
			brCall(t, b, clk, tc.took, tc.ok)
			brWantState(t, b, stOpen)
			if got, want := b.Metrics().OpenUntil, clk.Now().Add(30*time.Second); !got.Equal(want) {
				t.Fatalf("OpenUntil = %v, want %v", got, want)
			}
			brWantRejected(t, b)
		})
	}
}

func TestBreakerHalfOpenTrialThatNeverReports(t *testing.T) {
	c := testBreakerConfig()
	c.HalfOpenCalls = 1
	b, clk, log := newTestBreaker(t, c)
	brTrip(t, b, clk)
	clk.Advance(30 * time.Second)
	lost, err := b.Allow(context.Background()) // never reports in time
	if err != nil {
		t.Fatalf("trial: %v", err)
	}
	clk.Advance(30*time.Second - time.Nanosecond)
	brWantRejected(t, b) // still half-open, the one trial is out
	brWantState(t, b, stHalfOpen)
	clk.Advance(time.Nanosecond)
	brWantState(t, b, stOpen) // the trial counts as failed
	lost(true)                // too late: ignored
	brWantState(t, b, stOpen)
	clk.Advance(30 * time.Second)
	brCall(t, b, clk, 0, true)
	brWantState(t, b, stClosed)
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if got := log.transitions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
}

func TestBreakerIgnoresLateDoneFromEarlierGeneration(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 1
	b, clk, _ := newTestBreaker(t, c)

	late, err := b.Allow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	brCall(t, b, clk, 0, false) // trips
	clk.Advance(30 * time.Second)
	brCall(t, b, clk, 0, true)
	brCall(t, b, clk, 0, true) // closed again, new generation
	brWantState(t, b, stClosed)
	late(false) // from the first closed generation: must not trip
	brWantState(t, b, stClosed)
	if m := b.Metrics(); m.Calls != 0 || m.Failures != 0 {
		t.Fatalf("metrics = %+v, want the late outcome ignored", m)
	}

	// The same across Reset.
	late, _ = b.Allow(context.Background())
	b.Reset()
	late(false)
	if m := b.Metrics(); m.State != stClosed || m.Calls != 0 {
		t.Fatalf("metrics = %+v, want an outcome from before Reset ignored", m)
	}
}

func TestBreakerDoneTwiceCountsOnce(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 2
	b, _, _ := newTestBreaker(t, c)
	done, err := b.Allow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done(false)
	done(false)
	done(true)
	m := b.Metrics()
	if m.Calls != 1 || m.Failures != 1 || m.ConsecutiveFailures != 1 || m.State != stClosed {
		t.Fatalf("metrics = %+v, want one failure counted", m)
	}

	// Concurrent double reports of many calls still count once each.
	var wg sync.WaitGroup
	for range 100 {
		done, err := b.Allow(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			wg.Go(func() { done(true) })
		}
		wg.Wait()
	}
	if m := b.Metrics(); m.Calls != 101 {
		t.Fatalf("calls = %d, want 101", m.Calls)
	}
}

func TestBreakerResetForceOpenIsolate(t *testing.T) {
	b, clk, log := newTestBreaker(t, testBreakerConfig())
	brCall(t, b, clk, 0, false)

	b.ForceOpen()
	brWantState(t, b, stOpen)
	brWantRejected(t, b)
	clk.Advance(20 * time.Second)
	b.ForceOpen() // restarts OpenFor
	clk.Advance(20 * time.Second)
	brWantState(t, b, stOpen)
	clk.Advance(10 * time.Second)
	brWantState(t, b, stHalfOpen)

	b.Reset()
	brWantState(t, b, stClosed)
	if m := b.Metrics(); m.Calls != 0 || m.Failures != 0 {
		t.Fatalf("metrics after Reset = %+v, want empty", m)
	}

	b.Isolate()
	clk.Advance(time.Hour)
	brWantState(t, b, stOpen)
	brWantRejected(t, b)
	if m := b.Metrics(); !m.Isolated || !m.OpenUntil.IsZero() {
		t.Fatalf("metrics = %+v, want isolated with no OpenUntil", m)
	}
	b.ForceOpen() // ends the isolation: open for OpenFor from now
	clk.Advance(30 * time.Second)
	brWantState(t, b, stHalfOpen)
	b.Isolate()
	b.Reset()
	brWantState(t, b, stClosed)
	brCall(t, b, clk, 0, true)

	want := []string{
		"closed>open", "open>half-open", "half-open>closed",
		"closed>open", "open>half-open", "half-open>open", "open>closed",
	}
	if got := log.transitions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
}

func TestBreakerTransitionEvents(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 1
	b, clk, log := newTestBreaker(t, c)
	brCall(t, b, clk, 0, false)
	t1 := clk.Now()
	clk.Advance(30 * time.Second)
	brCall(t, b, clk, 0, false)
	t2 := clk.Now()
	clk.Advance(30 * time.Second)
	brCall(t, b, clk, 0, true)
	brCall(t, b, clk, 0, true)

	got := log.of(bulwark.EventBreakerTransition)
	want := []struct {
		from, to bulwark.State
		at       time.Time
	}{
		{stClosed, stOpen, t1}, {stOpen, stHalfOpen, t2}, {stHalfOpen, stOpen, t2},
		{stOpen, stHalfOpen, t2.Add(30 * time.Second)}, {stHalfOpen, stClosed, t2.Add(30 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d transitions %v, want %d", len(got), log.transitions(), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.From != w.from || e.To != w.to || !e.Time.Equal(w.at) || e.Pattern != "breaker" || e.Name != "test" {
			t.Errorf("transition %d = %+v, want %v>%v at %v", i, e, w.from, w.to, w.at)
		}
	}
}

// An observer may call back into the breaker: it runs with no lock held,
// and transitions it causes are delivered after the current one.
func TestBreakerObserverCallsBack(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 1
	clk := fakeclock.New(fakeclock.Epoch)
	var b *Breaker
	var seen []string
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind != bulwark.EventBreakerTransition {
			return
		}
		seen = append(seen, e.From.String()+">"+e.To.String())
		if e.To == stOpen {
			b.State(context.Background())
			b.Reset() // a transition from inside the observer
		}
	})
	b, err := NewBreaker(c, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	brCall(t, b, clk, 0, false)
	if want := []string{"closed>open", "open>closed"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("transitions = %v, want %v", seen, want)
	}
	brWantState(t, b, stClosed)
}

func TestBreakerConcurrentExactCounts(t *testing.T) {
	c := testBreakerConfig()
	c.FailureRate = 1 // never trips on successes
	b, _, _ := newTestBreaker(t, c)
	const goroutines, calls = 16, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls {
				done, err := b.Allow(context.Background())
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				done(true)
			}
		})
	}
	wg.Wait()
	if m := b.Metrics(); m.Calls != goroutines*calls || m.State != stClosed {
		t.Fatalf("metrics = %+v, want %d calls", m, goroutines*calls)
	}
}

// Many goroutines drive the breaker through every state while the clock
// moves; transitions must form one chain and half-open must never admit
// more than HalfOpenCalls trials.
func TestBreakerConcurrentTransitions(t *testing.T) {
	c := bulwark.BreakerConfig{
		Window:              time.Second,
		MinimumCalls:        5,
		FailureRate:         0.3,
		ConsecutiveFailures: 4,
		SlowCall:            20 * time.Millisecond,
		SlowCallRate:        0.8,
		OpenFor:             50 * time.Millisecond,
		HalfOpenCalls:       3,
	}
	b, clk, log := newTestBreaker(t, c)
	stop := make(chan struct{})
	var clockDone sync.WaitGroup
	clockDone.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				clk.Advance(time.Millisecond)
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				done, err := b.Allow(context.Background())
				if err != nil {
					if !errors.Is(err, bulwark.ErrOpen) {
						t.Errorf("Allow: %v", err)
					}
					continue
				}
				switch r.IntN(10) {
				case 0: // never reports
				case 1:
					done(true)
					done(false) // ignored
				default:
					done(r.IntN(3) != 0)
				}
				if m := b.Metrics(); m.TrialsStarted > c.HalfOpenCalls {
					t.Errorf("half-open admitted %d trials, want at most %d", m.TrialsStarted, c.HalfOpenCalls)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	clockDone.Wait()

	final := b.Metrics().State // may itself move the breaker on: read it first
	trans := log.of(bulwark.EventBreakerTransition)
	if len(trans) < 3 {
		t.Fatalf("only %d transitions; the test did not exercise the breaker", len(trans))
	}
	prev := stClosed
	for i, e := range trans {
		if e.From != prev || e.From == e.To {
			t.Fatalf("transition %d is %v>%v after a move to %v", i, e.From, e.To, prev)
		}
		prev = e.To
	}
	if final != prev {
		t.Fatalf("final state %v, last transition to %v", final, prev)
	}
}

func TestBreakerAllocs(t *testing.T) {
	ctx := context.Background()
	slow := testBreakerConfig()
	slow.SlowCall = time.Second
	slow.SlowCallRate = 1
	slow.FailureRate = 1
	plain := testBreakerConfig()
	plain.FailureRate = 1
	obs := bulwark.ObserverFunc(func(bulwark.Event) {})
	for _, tc := range []struct {
		name string
		cfg  bulwark.BreakerConfig
		opts []Option
	}{
		{"plain", plain, nil},
		{"slow calls", slow, nil},
		{"observer", slow, []Option{WithObserver(obs)}},
	} {
		b, err := NewBreaker(tc.cfg, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			done, err := b.Allow(ctx)
			if err != nil {
				t.Fatal(err)
			}
			done(true)
		})
		if allocs != 0 {
			t.Errorf("%s: Allow+done allocates %v times per call, want 0", tc.name, allocs)
		}
		b.ForceOpen()
		allocs = testing.AllocsPerRun(1000, func() {
			if _, err := b.Allow(ctx); err == nil {
				t.Fatal("allowed while open")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: rejected Allow allocates %v times per call, want 0", tc.name, allocs)
		}
	}
}

func ExampleBreaker() {
	clk := fakeclock.New(fakeclock.Epoch)
	br, err := NewBreaker(bulwark.BreakerConfig{
		Window:              10 * time.Second,
		MinimumCalls:        10,
		FailureRate:         0.5,
		ConsecutiveFailures: 3,
		OpenFor:             30 * time.Second,
		HalfOpenCalls:       1,
	}, WithClock(clk))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	callDependency := func(ok bool) error {
		done, err := br.Allow(ctx)
		if err != nil {
			return err
		}
		done(ok) // report the outcome once
		return nil
	}
	for range 3 {
		_ = callDependency(false)
	}
	fmt.Println(br.State(ctx), errors.Is(callDependency(true), bulwark.ErrOpen))
	clk.Advance(30 * time.Second)
	fmt.Println(br.State(ctx))
	_ = callDependency(true)
	fmt.Println(br.State(ctx))
	// Output:
	// open true
	// half-open
	// closed
}

// An observer that panics is recovered and counted: the caller never sees
// the panic, and later transitions are still delivered.
func TestBreakerObserverPanicKeepsDelivering(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 1
	clk := fakeclock.New(fakeclock.Epoch)
	var seen []string
	panicked := false
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind != bulwark.EventBreakerTransition {
			return
		}
		if !panicked {
			panicked = true
			panic("observer bug")
		}
		seen = append(seen, e.From.String()+">"+e.To.String())
	})
	b, err := NewBreaker(c, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	b.ForceOpen()
	brWantState(t, b, stOpen)
	if got := b.ObserverPanics(); got != 1 {
		t.Fatalf("ObserverPanics() = %d, want 1", got)
	}
	b.Reset()
	if want := []string{"open>closed"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("transitions after the panic = %v, want %v", seen, want)
	}
}

// An observer that panics on every event changes nothing the breaker
// does: it trips, goes half-open, closes, and every transition still
// reaches the observer.
func TestBreakerObserverPanickingOnEveryEvent(t *testing.T) {
	c := testBreakerConfig()
	c.ConsecutiveFailures = 2
	clk := fakeclock.New(fakeclock.Epoch)
	var seen []string
	events := 0
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		events++
		if e.Kind == bulwark.EventBreakerTransition {
			seen = append(seen, e.From.String()+">"+e.To.String())
		}
		panic(fmt.Sprintf("observer bug on %v", e.Kind))
	})
	b, err := NewBreaker(c, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		done, err := b.Allow(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done(false)
	}
	brWantState(t, b, stOpen)
	if _, err := b.Allow(context.Background()); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow on the open breaker: %v, want ErrOpen", err)
	}
	clk.Advance(c.OpenFor)
	for range c.HalfOpenCalls {
		done, err := b.Allow(context.Background())
		if err != nil {
			t.Fatalf("trial call: %v", err)
		}
		done(true)
	}
	brWantState(t, b, stClosed)
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("transitions = %v, want %v", seen, want)
	}
	if got := b.ObserverPanics(); got != uint64(events) || events == 0 {
		t.Fatalf("ObserverPanics() = %d, want %d (one per event)", got, events)
	}
}
