// Package distributed holds Redis-backed implementations of bulwark's
// interfaces, whose state every replica of a service shares.
//
// Everything starts from a [Store], built with [New] on any go-redis v9
// client: standalone, Sentinel (failover) or Cluster.
//
//	store, err := distributed.New(rdb, distributed.WithPrefix("checkout"))
//	perUser, err := store.TokenBucket("per-user", bulwark.PerSecond(10))
//	d, err := perUser.Allow(ctx, userID, 1)
//
// The limiters ([TokenBucket], [SlidingWindow], [SlidingLog],
// [FixedWindow]) take the same bulwark.Limit as their twins in package local
// and, for the same sequence of (time, key, n), return the same Decisions:
// both implement docs/algorithms.md in whole microseconds. Each decision
// runs one Lua script (package lua), atomic in Redis, in one round trip;
// concurrent decisions may share a pipeline ([WithBatching]). A denied
// request writes nothing.
//
// Configuration travels with every call: the script receives the caller's
// limit, so replicas configured differently for one limiter name share the
// state but each decides with its own parameters (a rolling change of a
// limit takes effect replica by replica).
//
// Time. By default the scripts read Redis TIME, so replicas whose clocks
// disagree still share one timeline. [WithClock] passes the caller's time
// instead (tests on a fake clock).
//
// Keys. Every key is "<prefix>:<algorithm>:{<name>:<key>}" with the name and
// the user's key encoded so that braces, colons, newlines, binary bytes or
// kilobytes of text can neither move a key to another Redis Cluster slot nor
// collide with another tenant's key; all keys of one logical limiter share
// one hash slot. Every key has a TTL no longer than its state matters.
//
// Several limits per request. [Store.Multi] checks several token buckets in
// one script and deducts only when all admit; their keys share a hash tag
// that the caller names. [NewTiered] puts a per-replica local limiter in
// front of a global one.
//
// Failures. A call that Redis does not answer within the store's budget is
// decided locally and flagged Decision.Degraded; an error from Allow means
// the call itself was wrong (bad n, done context, closed store). Script
// commands are never retried by the client (a retried script could take
// tokens twice). After a run of failed calls the store turns degraded: it
// stops calling Redis, its limiters decide by their [FailurePolicy]
// (FailLocal: a local twin with this replica's fair share of the limit,
// the limit divided by the replica count of [WithReplicas] or a
// cluster.Membership given to [WithReplicaCounter]; FailOpen; FailClosed),
// and a background prober brings it back once Redis answers, with
// hysteresis. [Store] describes the state machine and what to expect in
// the seconds after recovery; [ClientOptions] the client settings that keep
// a hung Redis from holding callers.
package distributed
