package lua

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed prelude.lua
	prelude string
	//go:embed token_bucket.lua
	tokenBucketSrc string
	//go:embed fixed_window.lua
	fixedWindowSrc string
	//go:embed sliding_window.lua
	slidingWindowSrc string
	//go:embed sliding_log.lua
	slidingLogSrc string
	//go:embed pace_hold.lua
	paceHoldSrc string
)

// TokenBucket is the GCRA token bucket over one or more keys, deducting
// from all of them only when every one admits (several limits on one
// request).
//
//	KEYS[i]          state of limit i: 16 bytes, struct.pack("dd", at, ahead),
//	                 or the text "at ahead" where Lua has no struct library
//	ARGV[1..3]       now, min TTL, n (see the package doc)
//	ARGV[3i+1..3i+3] limit i: E (events), P (period µs), C (capacity)
//
// Reply: {allowed, remaining_1, retry_after_1, reset_after_1, …} with one
// triple per key, durations in µs.
var TokenBucket = newScript(tokenBucketSrc)

// FixedWindow is the fixed-window counter over one key.
//
//	KEYS[1]     state: "w:cur" (window index, tokens counted in it)
//	ARGV[1..3]  now, min TTL, n
//	ARGV[4..5]  E (events per window), P (window µs)
//
// Reply: {allowed, remaining, retry_after, reset_after}, durations in µs.
var FixedWindow = newScript(fixedWindowSrc)

// SlidingWindow is the sliding-window counter (the previous window's count,
// weighted by its overlap with the sliding window) over one key.
//
//	KEYS[1]     state: "w:cur:prev"
//	ARGV[1..3]  now, min TTL, n
//	ARGV[4..5]  E (events per window), P (window µs)
//
// Reply: {allowed, remaining, retry_after, reset_after}, durations in µs.
var SlidingWindow = newScript(slidingWindowSrc)

// SlidingLog is the exact sliding-window log over one key: a sorted set of
// one member per admitted token, scored by its time in µs, holding at most
// E members.
//
//	KEYS[1]     the log (ZSET, members "t:i", unique per token)
//	ARGV[1..3]  now, min TTL, n
//	ARGV[4..5]  E (events per window), P (window µs)
//
// Reply: {allowed, remaining, retry_after, reset_after}, durations in µs.
var SlidingLog = newScript(slidingLogSrc)

// PaceHold is a pacer's shared hold over one key: set it later (never
// earlier), or read it.
//
//	KEYS[1]     the hold, Unix µs as text
//	ARGV[1..2]  the new hold in Unix µs ('' to read only), its TTL in ms
//
// Reply: the hold in force after the call, Unix µs, 0 for none.
var PaceHold = newScript(paceHoldSrc)

// sources maps every script of this package to its full Lua source. It is
// filled while the package initialises and only read afterwards.
var sources = map[*redis.Script]string{}

// newScript declares one of this package's scripts from the text of its
// .lua file. The script is prelude.lua (helpers every script shares), a
// blank line, then that text; its SHA-1 and Source are of the whole.
func newScript(src string) *redis.Script {
	full := prelude + "\n" + src
	s := redis.NewScript(full)
	sources[s] = full
	return s
}

// Source returns the full Lua source of one of this package's scripts (the
// shared prelude, then the script's own file), and "" for any other script. Callers that build their own EVAL commands (to send
// them without client-side retries, for instance) need it after a NOSCRIPT
// reply; tools use it to show what runs on the server.
func Source(s *redis.Script) string { return sources[s] }
