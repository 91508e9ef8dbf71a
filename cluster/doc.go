// Package cluster is about the fleet of replicas that share one key prefix:
// who is in it, so that each replica can take its fair share of a global
// limit when it has to decide alone.
//
// [Membership] keeps this replica in a group's member set in Redis with
// heartbeats (a sorted set scored by expiry, one script per heartbeat) and
// remembers the live member count. A distributed.Store built with
// distributed.WithReplicaCounter uses that count while Redis is away: each
// degraded replica then enforces limit / count locally.
package cluster
