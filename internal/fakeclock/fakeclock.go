// Package fakeclock is a manually advanced clock for tests. It implements
// bulwark.Clock and bulwark.TimerClock: timers fire when Advance or Set
// moves the time past their deadline.
package fakeclock

import (
	"sort"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Clock is a fake clock. The zero value is not usable; call New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	// waiters are notified when a timer is created, so tests can wait
	// for a goroutine to arm its timer before advancing time.
	armed chan struct{}
}

// New returns a clock set to t.
func New(t time.Time) *Clock { return &Clock{now: t, armed: make(chan struct{}, 1024)} }

// Epoch is a convenient start time, a whole second well past 2020, so
// tests read easily and windows align.
var Epoch = time.Unix(1_800_000_000, 0)

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and fires due timers.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (backwards too) and fires due timers.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	var due []*timer
	keep := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(t) {
			due = append(due, tm)
		} else {
			keep = append(keep, tm)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, tm := range due {
		tm.fire(t)
	}
}

// Timers returns how many timers are armed.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers blocks until at least n timers are armed. Tests call it before
// Advance so that a goroutine's timer exists when time moves.
func (c *Clock) WaitTimers(n int) {
	for {
		if c.Timers() >= n {
			return
		}
		<-c.armed
	}
}

// NewTimer returns a timer that fires when the clock reaches Now()+d.
func (c *Clock) NewTimer(d time.Duration) bulwark.Timer {
	tm := &timer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	tm.at = c.now.Add(d)
	if d <= 0 {
		now := c.now
		c.mu.Unlock()
		tm.fire(now)
		return tm
	}
	c.timers = append(c.timers, tm)
	c.mu.Unlock()
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return tm
}

type timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *timer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, tm := range t.c.timers {
		if tm == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

var _ bulwark.TimerClock = (*Clock)(nil)
