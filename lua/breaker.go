package lua

import (
	_ "embed"
)

//go:embed breaker_state.lua
var breakerStateSrc string

// BreakerState is the whole state machine of a fleet-wide circuit breaker
// (distributed.Breaker): one script with six operations (get, peek,
// report, acquire, trial, force), so that every transition follows one
// piece of code and happens atomically in Redis.
//
//	KEYS[1]      state hash (state, gen, opened, until, consec, granted, ok)
//	KEYS[2]      counts hash (closed: per-bucket calls, failures, slow;
//	             half-open: grant time of each outstanding trial)
//	ARGV[1..2]   now (µs, or "" for Redis TIME), min TTL (ms)
//	ARGV[3..5]   operation, pub/sub channel, topic
//	ARGV[6..12]  window µs, minimum calls, failure rate, consecutive
//	             failures, slow call rate, open duration µs, half-open calls
//	ARGV[13..]   the operation's arguments
//
// Reply: {state, gen, opened, until, now, calls, failures, slow, consec,
// granted, ok, result}; see breaker_state.lua for every detail.
var BreakerState = newScript(breakerStateSrc)
