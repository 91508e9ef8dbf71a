package local

import (
	"time"

	"github.com/bulwark-go/bulwark"
)

// fastClock is the clock of a hot path. On bulwark.SystemClock it reads
// only the monotonic clock, anchored at a reading of the wall clock taken
// when it was built: time.Since of a time with a monotonic reading makes
// one clock read where time.Now makes two (wall and monotonic), which is
// most of the cost of a decision. The time it tells thus moves with the
// monotonic clock: a step of the wall clock after construction (a manual
// date change; NTP slewing moves both alike) does not move it, which is
// what rate and window arithmetic wants anyway. Any other clock is called
// as is.
type fastClock struct {
	clock bulwark.Clock
	sys   bool
	base  time.Time // with a monotonic reading; set when sys
	// baseMicro and baseRem split base into whole microseconds since the
	// Unix epoch and the nanoseconds left over; set when sys.
	baseMicro, baseRem int64
}

func newFastClock(c bulwark.Clock) fastClock {
	if c == bulwark.SystemClock {
		base := time.Now()
		return fastClock{clock: c, sys: true, base: base,
			baseMicro: base.UnixMicro(), baseRem: int64(base.Nanosecond() % 1000)}
	}
	return fastClock{clock: c}
}

// Now returns the current time.
func (f *fastClock) Now() time.Time {
	if f.sys {
		return f.base.Add(time.Since(f.base))
	}
	return f.clock.Now()
}

// UnixMicro returns Now().UnixMicro() with one clock read and no
// time.Time arithmetic on the system clock: the elapsed monotonic
// nanoseconds are added to the anchor's, which never go backwards.
func (f *fastClock) UnixMicro() int64 {
	if f.sys {
		return f.microAt(int64(time.Since(f.base)))
	}
	return f.clock.Now().UnixMicro()
}

// Nanos returns a reading in nanoseconds for measuring durations (the
// difference of two readings): on the system clock the monotonic time since
// the anchor, otherwise the clock's Unix nanoseconds (a difference of those
// stays right even where UnixNano itself wraps).
func (f *fastClock) Nanos() int64 {
	if f.sys {
		return int64(time.Since(f.base))
	}
	return f.clock.Now().UnixNano()
}

// microAt returns the Unix microseconds of a system-clock reading n of
// Nanos. Only when sys.
func (f *fastClock) microAt(n int64) int64 { return f.baseMicro + (f.baseRem+n)/1000 }

// timeAt returns the time of a system-clock reading n of Nanos. Only when
// sys.
func (f *fastClock) timeAt(n int64) time.Time { return f.base.Add(time.Duration(n)) }
