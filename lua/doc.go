// Package lua holds every Redis script of bulwark, one commented .lua file
// each, embedded into the binary and exposed as a *redis.Script.
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
// is why no script ever uses nanoseconds.
//
// Common argument layout of the limiter scripts:
//
//	ARGV[1]  now in µs since the Unix epoch, or "" to read Redis TIME
//	ARGV[2]  minimum TTL in ms (0: none); every written key gets
//	         PEXPIRE max(ceil(ttl_µs/1000), 1, ARGV[2])
//	ARGV[3]  n, the tokens asked for (1 ≤ n ≤ capacity, checked by the caller)
//	ARGV[4…] the limit, as each script says
//
// Every script reads and writes only keys passed in KEYS, sets a TTL on every
// key it writes, writes nothing when it denies, and returns an array of
// integers. The packages using the scripts decode the reply with one decoder
// per script and treat any other shape as an error.
package lua
