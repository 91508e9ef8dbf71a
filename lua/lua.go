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
	//go:embed token_bucket_lease.lua
	tokenBucketLeaseSrc string
	//go:embed multi_token_bucket.lua
	multiTokenBucketSrc string
	//go:embed fixed_window.lua
	fixedWindowSrc string
	//go:embed sliding_window.lua
	slidingWindowSrc string
	//go:embed sliding_log.lua
	slidingLogSrc string
	//go:embed pace_hold.lua
	paceHoldSrc string
)

// TokenBucket is the GCRA token bucket over one key, the cheapest decision
// of the package: one GET, and one SET when it admits.
//
//	KEYS[1]     state: the theoretical arrival time, "T" (a whole number of
//	            µs, stored by Redis as an integer) or "T:r" (T µs and r/E µs)
//	ARGV[1..3]  now, min TTL, n (see the package doc)
//	ARGV[4..6]  E, P (events and period µs over their greatest common
//	            divisor), tau (capacity × P)
//	ARGV[7]     k, optional: k requests of n tokens each, decided in turn
//
// Reply: {m, need} when the first m ≥ 1 requests are admitted, need being
// the debt after the call (tat − now, in units of 1/E µs), or {0, debt}
// when denied, the debt before the call.
// Unlike the other scripts its text is its file alone, without the prelude:
// the prelude's functions would be built again on every call.
var TokenBucket = newBareScript(tokenBucketSrc)

// TokenBucketLease takes up to k tokens at once from TokenBucket's bucket
// (same key and state) for a replica to spend locally, and gives back
// tokens leased and not spent.
//
//	KEYS[1]     state, as TokenBucket's
//	ARGV[1..2]  now, min TTL
//	ARGV[3..4]  k (most tokens to take; 0: only give back), n (fewest worth taking)
//	ARGV[5..7]  E, P, tau in TokenBucket's units
//	ARGV[8]     tokens given back first
//
// Reply: {granted, debt}: tokens granted (0: fewer than n were free, none
// taken) and the debt after the call in units.
var TokenBucketLease = newScript(tokenBucketLeaseSrc)

// MultiTokenBucket is the GCRA token bucket over several keys, deducting
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
var MultiTokenBucket = newScript(multiTokenBucketSrc)

// FixedWindow is the fixed-window counter over one key. Like TokenBucket,
// its text is its file alone.
//
//	KEYS[1]     state: "w:cur" (window index, tokens counted in it)
//	ARGV[1..3]  now, min TTL, n
//	ARGV[4..5]  E (events per window), P (window µs)
//	ARGV[6]     k, optional: k requests of n tokens each, decided in turn
//
// Reply: {m, remaining, retry_after, reset_after}, durations in µs, m
// being how many of the k requests were admitted (the first m).
var FixedWindow = newBareScript(fixedWindowSrc)

// SlidingWindow is the sliding-window counter (the previous window's count,
// weighted by its overlap with the sliding window) over one key. Like
// TokenBucket, its text is its file alone.
//
//	KEYS[1]     state: "w:cur:prev"
//	ARGV[1..3]  now, min TTL, n
//	ARGV[4..5]  E (events per window), P (window µs)
//
// Reply: {allowed, remaining, retry_after, reset_after}, durations in µs.
var SlidingWindow = newBareScript(slidingWindowSrc)

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

// newBareScript declares a script whose text is its .lua file alone.
func newBareScript(src string) *redis.Script {
	s := redis.NewScript(src)
	sources[s] = src
	return s
}

// Source returns the full Lua source of one of this package's scripts (the
// shared prelude, then the script's own file; for TokenBucket, FixedWindow
// and SlidingWindow their file alone), and
// "" for any other script. Callers that build their own EVAL commands (to send
// them without client-side retries, for instance) need it after a NOSCRIPT
// reply; tools use it to show what runs on the server.
func Source(s *redis.Script) string { return sources[s] }
