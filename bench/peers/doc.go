// Package peers benchmarks bulwark against the libraries users compare it
// with, in one run so both sides see the same machine: the local token
// bucket against golang.org/x/time/rate, the local breaker against
// sony/gobreaker, the Redis token bucket against go-redis/redis_rate
// (throughput, latency percentiles, allocations and MEMORY USAGE per key).
// It is a module of its own so those libraries never reach the core
// module's users. Run it through bench/local.sh and bench/redis.sh.
package peers
