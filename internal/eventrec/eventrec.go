// Package eventrec is an Observer that keeps every event, for tests that
// check what a pattern reported.
package eventrec

import (
	"sync"

	"github.com/bulwark-go/bulwark"
)

// Recorder keeps every event it observes; safe for concurrent use. The
// zero value is ready.
type Recorder struct {
	mu     sync.Mutex
	events []bulwark.Event
}

// Observe records e.
func (r *Recorder) Observe(e bulwark.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Count is the number of events of kind k recorded so far.
func (r *Recorder) Count(k bulwark.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Last is the latest event of kind k, if any.
func (r *Recorder) Last(k bulwark.EventKind) (bulwark.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Kind == k {
			return r.events[i], true
		}
	}
	return bulwark.Event{}, false
}
