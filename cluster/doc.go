// Package cluster is about the fleet of replicas that share one key prefix:
// how they hear of each other's state changes, and who is in it, so that
// each replica can take its fair share of a global limit when it has to
// decide alone.
//
// [Broadcast] carries short messages on one Redis pub/sub channel to every
// replica subscribed to it, and dispatches them by topic inside each
// process. Shared primitives use it to push a change (a circuit breaker
// opening, say) to every replica at once, so replicas can cache shared state
// instead of asking Redis on every call. Pub/sub delivers at most once:
// a replica that was disconnected misses what was published meanwhile, so
// every subscriber also hears when its subscription is (re)established and
// re-reads the state it caches then.
//
// A message is one string, "<topic> <payload>": the topic is its first word
// (no space in it), the payload the rest. Lua scripts publish in this format
// with PUBLISH; Go code uses [Publish]. In a Redis Cluster, PUBLISH reaches
// the subscribers of every node.
//
// [Membership] keeps this replica in a group's member set in Redis with
// heartbeats (a sorted set scored by expiry, one script per heartbeat) and
// remembers the live member count. A distributed.Store built with
// distributed.WithReplicaCounter uses that count while Redis is away: each
// degraded replica then enforces limit / count locally.
package cluster
