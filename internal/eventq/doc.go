// Package eventq delivers events to a user's observer safely: an observer
// that panics is recovered, counted and reported, and the events after it
// are still delivered. [Queue] also keeps events in order when they are
// produced under a lock and emitted after it is released, as the local and
// the distributed circuit breakers do with their transitions.
package eventq
