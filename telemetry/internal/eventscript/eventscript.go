// Package eventscript holds the sequence of events the telemetry tests of
// every backend feed their observers, so each backend is checked against
// the same numbers.
package eventscript

import (
	"errors"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Events returns a sequence of events covering every kind the telemetry
// table knows, plus one it does not (ignored). Fed to an observer it leaves:
//
//   - token_bucket/api: 3 allowed and 1 denied decisions from Redis, 1
//     allowed degraded one, 2 near the limit, 1 denied shadow decision;
//   - breaker/payments: 1 success, 1 failure, closed→open then
//     open→half-open (state half-open), 1 rejection;
//   - bulkhead/db: 1 in use, 1 waiting, 2 acquired waits (2ms and 0), 1
//     rejected wait (100ms), 1 rejection;
//   - store/redis: one ok call (300µs), one failed (20ms), unhealthy;
//   - http_client/upstream: 2 retries, 1 hedge; http_timeout: 1 timeout;
//     fallback/catalog: 1 fallback; load_shedder: 1 rejection;
//     adaptive: limit 35; cache: 2 hits, 1 miss; semaphore/jobs: 1 lease
//     lost.
func Events() []bulwark.Event {
	tb := func(e bulwark.Event) bulwark.Event { e.Pattern, e.Name = "token_bucket", "api"; return e }
	br := func(e bulwark.Event) bulwark.Event { e.Pattern, e.Name = "breaker", "payments"; return e }
	bh := func(e bulwark.Event) bulwark.Event { e.Pattern, e.Name = "bulkhead", "db"; return e }
	st := func(e bulwark.Event) bulwark.Event { e.Pattern, e.Name = "store", "redis"; return e }
	return []bulwark.Event{
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: true, Limit: 10, Remaining: 9}),
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: true, Limit: 10, Remaining: 2}), // near the limit
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: true, Limit: 10, Remaining: 3}), // not near
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: true, Limit: 10, Remaining: 0, Degraded: true}),
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: false, Limit: 10}),
		tb(bulwark.Event{Kind: bulwark.EventDecision, Allowed: false, Limit: 10, Shadow: true}),
		br(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Allowed: true}),
		br(bulwark.Event{Kind: bulwark.EventBreakerOutcome, Allowed: false}),
		br(bulwark.Event{Kind: bulwark.EventBreakerTransition, From: bulwark.Closed, To: bulwark.Open}),
		br(bulwark.Event{Kind: bulwark.EventBreakerRejected, To: bulwark.Open}),
		br(bulwark.Event{Kind: bulwark.EventBreakerTransition, From: bulwark.Open, To: bulwark.HalfOpen}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadQueued}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadQueued}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadDequeued, Allowed: true, Duration: 2 * time.Millisecond}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadAcquired, Duration: 2 * time.Millisecond}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadAcquired}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadReleased, Duration: time.Second}),
		bh(bulwark.Event{Kind: bulwark.EventBulkheadRejected, Duration: 100 * time.Millisecond, Err: bulwark.ErrBulkheadFull}),
		st(bulwark.Event{Kind: bulwark.EventStoreCall, Duration: 300 * time.Microsecond}),
		st(bulwark.Event{Kind: bulwark.EventStoreCall, Duration: 20 * time.Millisecond, Err: errors.New("i/o timeout")}),
		st(bulwark.Event{Kind: bulwark.EventStoreHealth, Degraded: true}),
		{Kind: bulwark.EventRetry, Pattern: "http_client", Name: "upstream", Attempt: 1},
		{Kind: bulwark.EventRetry, Pattern: "http_client", Name: "upstream", Attempt: 2},
		{Kind: bulwark.EventHedge, Pattern: "http_client", Name: "upstream", Attempt: 1},
		{Kind: bulwark.EventTimeout, Pattern: "http_timeout"},
		{Kind: bulwark.EventFallback, Pattern: "fallback", Name: "catalog"},
		{Kind: bulwark.EventRejected, Pattern: "load_shedder"},
		{Kind: bulwark.EventLimitChanged, Pattern: "adaptive", Limit: 40},
		{Kind: bulwark.EventLimitChanged, Pattern: "adaptive", Limit: 35},
		{Kind: bulwark.EventCache, Pattern: "cache", Allowed: true},
		{Kind: bulwark.EventCache, Pattern: "cache", Allowed: false},
		{Kind: bulwark.EventCache, Pattern: "cache", Allowed: true},
		{Kind: bulwark.EventLeaseLost, Pattern: "semaphore", Name: "jobs"},
		{Kind: bulwark.EventKind(200), Pattern: "future"}, // unknown kinds are ignored
	}
}
