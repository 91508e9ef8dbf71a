package bulwark

import "time"

// Clock tells the time. Every pattern takes one (an option named WithClock),
// so tests can drive time by hand. The zero value of every pattern uses
// [SystemClock].
type Clock interface{ Now() time.Time }

// Timer is a stoppable one-shot wake-up, as returned by [TimerClock].
type Timer interface {
	// C delivers the time once the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

// TimerClock is a [Clock] that can also schedule wake-ups. Patterns that
// wait (a bulkhead's max wait, retry back-off, hedge delays) use it when the
// injected clock implements it, so a fake clock can fire their timers;
// otherwise they use real timers.
type TimerClock interface {
	Clock
	NewTimer(d time.Duration) Timer
}

// SystemClock is the wall clock. It is also a [TimerClock], with real timers.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
