// Package cluster is about the fleet of replicas that share one key prefix:
// who is in it, and how its replicas hear of each other's state changes.
//
// [Membership] keeps this replica in a group's member set in Redis with
// heartbeats (a sorted set scored by expiry, one script per heartbeat,
// lua.Membership) and remembers the live member count from the last
// successful heartbeat. It implements distributed.ReplicaCounter: a
// distributed.Store built with distributed.WithReplicaCounter uses that
// count while Redis is away, so each degraded replica enforces its fair
// share of a global limit (limit / count, rounded up) or of a bulkhead's
// slots locally. While Redis is unreachable the count known before the
// outage is kept.
//
//	members, err := cluster.Join(rdb, cluster.WithPrefix("checkout"))
//	defer members.Close()
//	store, err := distributed.New(rdb, distributed.WithPrefix("checkout"),
//		distributed.WithReplicaCounter(members))
//
// [Broadcast] carries short messages on one Redis pub/sub channel to every
// replica subscribed to it, and dispatches them by topic inside each
// process. Shared primitives use it to push a change (a circuit breaker
// opening, say) to every replica at once, so replicas can cache shared state
// instead of asking Redis on every call; the fleet-wide breaker of package
// distributed does. Pub/sub delivers at most once: a replica that was
// disconnected misses what was published meanwhile, so every subscriber
// also hears when its subscription is (re)established (a [Message] with
// Resync set) and re-reads the state it caches then.
//
// A message is one string, "<topic> <payload>": the topic is its first word
// (no space in it), the payload the rest. Lua scripts publish in this format
// with PUBLISH; Go code uses [Publish]. In a Redis Cluster, PUBLISH reaches
// the subscribers of every node.
package cluster
