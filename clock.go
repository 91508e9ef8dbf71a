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

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// NewTimer returns a timer from c when it is a [TimerClock], and a real timer
// otherwise. A nil c means [SystemClock].
func NewTimer(c Clock, d time.Duration) Timer {
	if tc, ok := c.(TimerClock); ok {
		return tc.NewTimer(d)
	}
	return realTimer{time.NewTimer(d)}
}

// Micros returns t as whole microseconds since the Unix epoch, rounded
// down. Both the local and the Redis implementations reason in these units,
// so their decisions agree field for field.
func Micros(t time.Time) int64 { return t.UnixMicro() }
