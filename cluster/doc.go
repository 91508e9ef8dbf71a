// Package cluster is about the fleet of replicas that share one key prefix:
// how they hear of each other's state changes.
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
package cluster
