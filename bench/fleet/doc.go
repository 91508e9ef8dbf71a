// Command fleet simulates a fleet of service replicas sharing Redis-backed
// token buckets, to size Redis for a fleet. It runs N replicas in one
// process, each with a go-redis client and a distributed.Store of its own
// (as separate processes would have), against one Redis and against a
// 3-master Redis Cluster, offers each replica an open-loop paced load, and
// reports per mode of asking Redis:
//
//   - decisions/s achieved, decisions offered and missed;
//   - Redis calls per decision (Δ calls of EVALSHA/EVAL in INFO
//     commandstats, summed over the masters) and socket reads per decision
//     (Δ total_reads_processed: about one per round trip, so batching shows);
//   - Redis CPU per decision: usec_per_call of the script commands and the
//     Δ(used_cpu_sys + used_cpu_user) of the servers per decision, and the
//     client process's CPU per decision;
//   - accuracy: per key, admitted against ⌊Burst + Rate·T⌋ over the run
//     (T from the first decision's start to the last one's end), summed,
//     and the keys that admitted more than that;
//   - p50 and p99 latency of a decision (exact to 1/16).
//
// Then it writes 100k keys of each limiter through a store and reports
// MEMORY USAGE per key and the used_memory delta per key.
//
// Modes:
//
//	per-request  Store.TokenBucket with batching off (WithBatching(0)): one round trip per decision
//	batched      Store.TokenBucket with batching lanes (-lanes, one below -pool)
//	tiered       NewTiered(local.TokenBucket of the replica's share × -tier-headroom, the batched bucket)
//	leased       Store.LeasedTokenBucket on the batched store (leases of up to -max-lease tokens)
//
// Each key's fleet-wide limit is -limit-frac of the load offered to it, so
// every mode has decisions to deny. Without -addr or -cluster the program
// starts private redis-server processes (redis-server from PATH, or
// -redis-server) on free loopback ports and stops them at the end.
//
// Usage (from the bench module, or the repository root with ./bench/fleet):
//
//	go run ./fleet -replicas 3,30,300 -duration 5s -rate 200 \
//	    -topology standalone,cluster -modes per-request,batched,tiered,leased
//
// Redis figures are server-wide deltas: against a server that other work
// uses too (-addr, -cluster), they include that work.
//
// Every run takes set-up (building and warming the replicas: under a
// second for 300 replicas on one Redis, up to a few seconds on a cluster),
// then -duration, then at most the store timeout to drain; the whole
// program starts no run after -deadline, and an interrupt (SIGINT,
// SIGTERM) ends the load and reports the runs done so far.
package main
