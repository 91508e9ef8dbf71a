package bulwark

import (
	"time"
)

// Observer hears what patterns do. Implementations must be safe for
// concurrent use and fast: they run on the caller's goroutine, never while a
// pattern holds a lock. Package telemetry has a metrics observer, with
// Prometheus (telemetry/bulwarkprom) and OpenTelemetry
// (telemetry/bulwarkotel) backends.
//
// Events are passed by value; observing allocates nothing.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Observers fans events out to several observers, in order. Nil entries are
// skipped; with no non-nil observer it returns nil.
func Observers(obs ...Observer) Observer {
	var out multiObserver
	for _, o := range obs {
		if o != nil {
			out = append(out, o)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

type multiObserver []Observer

func (m multiObserver) Observe(e Event) {
	for _, o := range m {
		o.Observe(e)
	}
}

// EventKind says what an [Event] reports.
type EventKind uint8

// The event kinds. Which [Event] fields are set depends on the kind, as each
// constant says.
const (
	_ EventKind = iota
	// EventDecision: a limiter decided (Allowed, Degraded, Limit, Remaining,
	// Shadow when the decision was not enforced).
	EventDecision
	// EventBreakerTransition: a breaker changed state (From, To).
	EventBreakerTransition
	// EventBreakerRejected: a breaker refused a call (To is its state).
	EventBreakerRejected
	// EventBreakerOutcome: a call's outcome was recorded (Allowed is success,
	// Duration the call's duration, To the breaker's state once the outcome
	// was counted).
	EventBreakerOutcome
	// EventBulkheadAcquired: a slot was taken (Duration: time waited).
	EventBulkheadAcquired
	// EventBulkheadRejected: no slot came (Duration: time waited; Err says why).
	EventBulkheadRejected
	// EventBulkheadReleased: a slot was given back (Duration: time held).
	EventBulkheadReleased
	// EventRetry: a retry policy will try again (Attempt, Duration: the
	// back-off, Err: the failure that caused it).
	EventRetry
	// EventTimeout: a call ran past its budget (Duration: the budget).
	EventTimeout
	// EventFallback: a fallback replaced a failure (Err: the failure).
	EventFallback
	// EventHedge: a hedged attempt was started (Attempt).
	EventHedge
	// EventRejected: a policy such as a load shedder or an adaptive limiter
	// rejected a call (Err says why).
	EventRejected
	// EventLimitChanged: an adaptive limit moved (Limit is the new value).
	EventLimitChanged
	// EventCache: a cache lookup (Allowed is a hit).
	EventCache
	// EventStoreHealth: a shared store turned degraded (Degraded true) or
	// healthy again (Degraded false).
	EventStoreHealth
	// EventStoreCall: one round trip to the shared store (Duration, Err).
	EventStoreCall
	// EventLeaseLost: a held distributed lease could not be renewed.
	EventLeaseLost
	// EventBulkheadQueued: a caller found no free slot and started waiting
	// for one. Exactly one EventBulkheadDequeued follows, on the same
	// goroutine, so the two keep a count of the callers waiting now.
	EventBulkheadQueued
	// EventBulkheadDequeued: a caller stopped waiting for a slot (Allowed:
	// it got one; otherwise Err says why: max wait passed, ctx done,
	// closed, store unreachable; Duration: time waited). The acquire's
	// EventBulkheadAcquired or EventBulkheadRejected comes after it.
	EventBulkheadDequeued
	// EventConfig: a replica's live configuration (package control)
	// changed. Pattern is "config"; Name the policy ("" for the replica as
	// a whole); Limit the configuration version it now runs; Allowed true
	// when a change was applied, false with Err when one was refused (the
	// last good configuration stays); Degraded true when the replica's
	// configuration turned stale (Redis unreachable, so changes may be
	// missed), false when it caught up again.
	EventConfig
)

var eventKindNames = [...]string{
	EventDecision:          "decision",
	EventBreakerTransition: "breaker_transition",
	EventBreakerRejected:   "breaker_rejected",
	EventBreakerOutcome:    "breaker_outcome",
	EventBulkheadAcquired:  "bulkhead_acquired",
	EventBulkheadRejected:  "bulkhead_rejected",
	EventBulkheadReleased:  "bulkhead_released",
	EventRetry:             "retry",
	EventTimeout:           "timeout",
	EventFallback:          "fallback",
	EventHedge:             "hedge",
	EventRejected:          "rejected",
	EventLimitChanged:      "limit_changed",
	EventCache:             "cache",
	EventStoreHealth:       "store_health",
	EventStoreCall:         "store_call",
	EventLeaseLost:         "lease_lost",
	EventBulkheadQueued:    "bulkhead_queued",
	EventBulkheadDequeued:  "bulkhead_dequeued",
	EventConfig:            "config",
}

// String returns the kind's snake_case name, as used in metric labels.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "unknown"
}

// Event is one thing a pattern did. Kind says which fields are meaningful.
//
// Pattern and Name identify the pattern instance with bounded cardinality
// ("token_bucket", "payments-api"); the user's key (a tenant, an IP) is never
// part of an event, so events can become metric labels safely.
type Event struct {
	Kind      EventKind
	Pattern   string // "token_bucket", "sliding_window", "breaker", "bulkhead", "retry", …
	Name      string // the instance's name, set with a WithName option; may be empty
	Time      time.Time
	Allowed   bool          // decision allowed; outcome success; cache hit
	Degraded  bool          // decided locally because the shared store was unreachable
	Shadow    bool          // decided but not enforced (shadow mode)
	Limit     int           // limiter capacity, or an adaptive limit
	Remaining int           // tokens left after a decision
	From, To  State         // breaker transition
	Attempt   int           // retry or hedge attempt number, from 1
	Duration  time.Duration // wait, hold, back-off or call duration, as the kind says
	Err       error
}
