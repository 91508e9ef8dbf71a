// Package lua holds every Redis script of bulwark, one commented .lua file
// each, embedded into the binary and exposed as a *redis.Script:
//
//	Script            File                    Run by
//	TokenBucket       token_bucket.lua        distributed.TokenBucket (GCRA over one key; state: one integer)
//	TokenBucketLease  token_bucket_lease.lua  distributed.LeasedTokenBucket (k tokens at once from TokenBucket's bucket; give back)
//	MultiTokenBucket  multi_token_bucket.lua  distributed.Multi (GCRA over several keys, all or nothing)
//	FixedWindow       fixed_window.lua        distributed.FixedWindow
//	SlidingWindow     sliding_window.lua      distributed.SlidingWindow (weighted previous window)
//	SlidingLog        sliding_log.lua         distributed.SlidingLog (exact log, one member per token)
//	BreakerState      breaker_state.lua       distributed.Breaker and Store.BreakerState (the whole state machine)
//	SemaphoreAcquire  semaphore_acquire.lua   sync/semaphore and distributed.Bulkhead (grant or queue)
//	SemaphoreRelease  semaphore_release.lua   sync/semaphore and distributed.Bulkhead (free, withdraw, wake)
//	SemaphoreRenew    semaphore_renew.lua     sync/semaphore and distributed.Bulkhead (keepalive)
//	SemaphoreInspect  semaphore_inspect.lua   Holders and Waiting of both, `bulwark inspect` (read only)
//	Membership        membership.lua          cluster.Membership (heartbeat and live count)
//	PaceHold          pace_hold.lua           distributed.PaceHolds, the fleet-wide holds of bulwarkhttp.Pacer
//	SingleflightClaim    singleflight_claim.lua     sync/singleflight (stored outcome, leadership or wait)
//	SingleflightRenew    singleflight_renew.lua     sync/singleflight (the leader's keepalive)
//	SingleflightComplete singleflight_complete.lua  sync/singleflight (store the outcome, drop the lease, wake)
//	SingleflightForget   singleflight_forget.lua    sync/singleflight (drop a stored outcome)
//	ConfigSet            config_set.lua             control.Store (live configuration: value, version, history, announcement)
//
// The text of every script but TokenBucket's, FixedWindow's and
// SlidingWindow's is the file prelude.lua followed by its own file: the
// prelude holds the helpers they share (exact integer floor/ceil division,
// the time in µs from Redis TIME or ARGV, TTLs in ms) as local functions
// only, so it runs no command and touches no global. Those three, the
// decisions of every request, are their file alone, without a function:
// Lua would build each of the prelude's closures again on every call.
//
// Requirements: Redis 5.0 or later (or Valkey). The scripts call Redis TIME
// before they write, which needs effects replication, the default since
// Redis 5.0 (and the only mode since 7.0): they do not call
// redis.replicate_commands().
//
// [Source] returns the Lua source of any of them: every script is recorded
// in a registry when the package initialises, so callers that send EVAL
// themselves (the distributed store sends its scripts without client-side
// retries) can fall back from EVALSHA to EVAL after a NOSCRIPT reply, and
// tools can show what runs on the server.
//
// A *redis.Script knows its SHA-1: Script.Run sends EVALSHA and, when the
// server answers NOSCRIPT (after a restart, a failover, SCRIPT FLUSH or on a
// new cluster node), sends the full source with EVAL, which also caches it
// again. Callers never need SCRIPT LOAD.
//
// The limiter scripts implement docs/algorithms.md exactly: all times are
// whole microseconds and every intermediate value is an integer below 2^53,
// so Lua's doubles hold it exactly. Integer division is done with explicit
// floor/ceil helpers that correct the rounding of the floating-point
// quotient. The current time is read from Redis TIME, so replicas with
// skewed clocks agree, unless the caller passes it as an argument (a store
// with an injected clock). Unix time in nanoseconds would exceed 2^53, which
// is why no script ever uses nanoseconds. The multi-key token bucket packs
// its state with Lua's struct library, and writes it as text on servers
// without that library (embedded test servers such as miniredis), with the
// same decisions.
//
// Common argument layout of the limiter scripts:
//
//	ARGV[1]  now in µs since the Unix epoch, or "" to read Redis TIME
//	ARGV[2]  minimum TTL in ms (0: none); every written key gets
//	         PEXPIRE max(ceil(ttl_µs/1000), 1, ARGV[2])
//	ARGV[3]  n, the tokens asked for (1 ≤ n ≤ capacity, checked by the caller)
//	ARGV[4…] the limit, as each script says
//
// Every script reads and writes only keys passed in KEYS and sets a TTL on
// every key it writes; the limiter scripts return an array of integers and
// write nothing when they deny (TokenBucket returns {admitted, debt}; see
// its doc). TokenBucket and FixedWindow take an optional last argument k,
// k requests of n tokens each decided in turn, and then answer how many of
// them they admitted (the first m) where a single request answers 0 or 1. The packages using the scripts decode each
// reply with one decoder per script and treat any other shape as an error.
package lua
