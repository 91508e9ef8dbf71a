// Package distributed holds Redis-backed implementations of bulwark's
// interfaces, whose state every replica of a service shares: rate limiters,
// a circuit breaker and a bulkhead.
//
// Everything starts from a [Store], built with [New] on any go-redis v9
// client: standalone, Sentinel (a failover client) or Cluster. Build the
// client with [ClientOptions] or [ClusterClientOptions] (see "Failures"
// below for why).
//
//	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: addr}, 0))
//	store, err := distributed.New(rdb, distributed.WithPrefix("checkout"))
//	defer store.Close()
//	perUser, err := store.TokenBucket("per-user", bulwark.PerSecond(10))
//	d, err := perUser.Allow(ctx, userID, 1)
//
// # Limiters
//
// The limiters ([TokenBucket], [SlidingWindow], [SlidingLog],
// [FixedWindow]) take the same bulwark.Limit as their twins in package local
// and, for the same sequence of (time, key, n), return the same Decisions:
// both implement docs/algorithms.md in whole microseconds. Each decision
// runs one Lua script (package lua), atomic in Redis, in one round trip;
// concurrent decisions may share a pipeline ([WithBatching], [WithDispatcher]). A denied
// request writes nothing.
//
// Configuration travels with every call: the script receives the caller's
// limit, so replicas configured differently for one limiter name share the
// state but each decides with its own parameters (a rolling change of a
// limit takes effect replica by replica).
//
// Several limits per request. [Store.Multi] checks several token buckets in
// one script and deducts only when all admit; their keys share a hash tag
// that the caller names. [NewTiered] puts a per-replica local limiter in
// front of a global one.
//
// Fewer round trips. [Store.LeasedTokenBucket] takes tokens from a token
// bucket's shared state in leases sized by each replica's recent demand and
// spends them locally: one Redis call per lease instead of per decision,
// never admitting more than the bucket allows (its doc states the bounds).
//
// # Breakers and bulkheads
//
// [Store.Breaker] returns a circuit breaker shared by the fleet: outcomes
// from every replica add up in Redis, the state and its generation change
// only inside one script, half-open trial calls are limited fleet-wide, and
// transitions are published so replicas answer from a cached state (a call
// on a closed breaker does no I/O). [Store.BreakerState] and
// [Store.Breakers] read the shared state without changing it; [Breaker.Reset]
// and [Breaker.ForceOpen] act on it for every replica.
//
// [Store.Bulkhead] returns a bulkhead shared by the fleet, built on
// sync/semaphore: one expiring, renewed lease per call, waiters woken by
// releases over pub/sub and served in arrival order; a crashed replica's
// slots come back within the lease TTL. [Store.BulkheadHolders] lists the
// leases held.
//
// # Time and keys
//
// By default the scripts read Redis TIME, so replicas whose clocks disagree
// still share one timeline. [WithClock] passes the caller's time instead
// (tests on a fake clock).
//
// A limiter's key is "<prefix>:<algorithm>:{<name>:<key>}" with the name
// and the user's key encoded so that braces, colons, newlines, binary bytes
// or kilobytes of text can neither move a key to another Redis Cluster slot
// nor collide with another tenant's key; all keys of one logical limiter
// share one hash slot. A breaker's keys are "<prefix>:br:{<name>}:s" and
// ":c"; a bulkhead's are those of the semaphore called name under the
// prefix "<prefix>:". Every key has a TTL no longer than its state matters.
//
// # Failures
//
// A call that Redis does not answer within the store's budget
// ([WithTimeout]) is decided locally and flagged Decision.Degraded; an
// error from Allow means the call itself was wrong (bad n, done context,
// closed store), and a bulkhead never returns a Redis error either. Script
// commands are never retried by the client (a retried script could take
// tokens twice), so each call is charged in Redis at most once.
//
// Health: after [WithFailureThreshold] failed calls in a row the store
// turns degraded and stops calling Redis; a background prober sends a probe
// every [WithProbeInterval] and, after [WithRecoveryThreshold] successes in
// a row and no sooner than [WithMinDegraded] (doubling up to
// [WithMaxDegraded] when the store flaps), the store is healthy again.
// [Store.Healthy], [Store.HealthError] and EventStoreHealth tell the state.
//
// Policies: while degraded, limiters and bulkheads answer by their
// [FailurePolicy]: FailLocal (default) gives each replica a local twin with
// its fair share of the limit or of the slots (divided by the replica count
// of [WithReplicas], or of a cluster.Membership given to
// [WithReplicaCounter], and at least [WithMinReplicas]); FailOpen admits
// everything; FailClosed rejects everything. A breaker decides with a
// local twin seeded with the last known state (open stays open).
//
// [Store] describes the state machine and what to expect in the seconds
// after recovery, [Breaker] and [Bulkhead] what each does while degraded,
// and [ClientOptions] the client settings that keep a hung Redis from
// holding callers (ContextTimeoutEnabled, no retries, a short pool
// timeout).
//
// # Clients, logs and callbacks
//
// [Client] lists exactly the methods the store uses (Process, Pipeline,
// Subscribe): a client wrapper that satisfies it keeps batching and the
// breaker broadcast. A store is silent unless given a *slog.Logger
// ([WithLogger]): it then logs its state changes, rate-limited, never one
// line per call; [NewRedisLogger] does the same for go-redis's own lines. A
// user's Observer or callback that panics is recovered and counted
// ([Store.ObserverPanics]), on whichever goroutine it ran, and later
// events are still delivered.
package distributed
