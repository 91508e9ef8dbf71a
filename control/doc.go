// Package control is the control plane of a fleet: the live configuration
// of named policies, stored in the Redis the fleet already shares, changed
// by operators and applied by every replica without a redeploy.
//
// A policy's configuration is three layers, most general first: the spec
// or code defaults each replica builds its stack from, then the live value
// in Redis, which overrides them field by field (a policy.Spec layer:
// {"ratelimit": {"limit": 50}} changes the limit and keeps everything
// else). The live value is versioned, validated before it is written (an
// invalid change is refused and nothing changes), recorded in a bounded
// history (who, when, why, the diff, the version) and can be rolled back
// to any version the history keeps.
//
// [Store] is the operator's side (the bulwark CLI's config commands and the
// console use it): Get, List, Set, Assign ("ratelimit.limit=50"),
// Rollback, History, Replicas. Every write is one script (lua.ConfigSet):
// version counter, live value, history and announcement change together
// or not at all, and only if nobody changed the policy since it was read.
//
// [Replica] is a service's side: [Replica.Build] builds a policy.Stack from
// the defaults and the live value, and the replica applies every later
// change to it as one atomic swap. Limits, thresholds, caps, timeouts,
// retries, enabled, shadow and circuitbreaker.force take effect on the next
// call and keep the patterns' state (see package policy, "Live
// reconfiguration"); a change of shape (algorithm, period, breaker window,
// scope) starts fresh state under new keys, and the history says so
// ([Record.Fresh]).
//
// # Propagation and faults
//
// A write publishes "config <name> <version>" on "<prefix>:config:events";
// every replica reloads when it hears it. Pub/sub delivers at most once,
// so each replica also reads the version counter every poll interval
// ([DefaultPollInterval], 500ms): a change reaches every replica within one
// poll interval plus one round trip even when its announcement was lost,
// and within one round trip when it was not.
//
// When Redis is unreachable a replica keeps the configuration it has,
// reports it stale ([Replica.Stale], and an EventConfig with Degraded set),
// and catches up when Redis answers again. A replica started during an
// outage runs the defaults until then. A change that is refused by a
// replica (a live value that does not validate over that replica's
// defaults) leaves its last good configuration in place, reported by an
// EventConfig with Err and in [Replica.Policies].
//
// Each replica publishes its status every heartbeat into one hash: the
// version it runs, whether it is stale, each policy's applied version and
// its decision counts over the last five minutes ([Replica.Observer]), so
// an operator sees a stuck replica ([Store.Replicas]) without Prometheus.
// A replica's steady cost in Redis: one GET per poll interval, and one
// HSET and PEXPIRE of its status and of its defaults per heartbeat
// (about five commands a second with the defaults); a change costs every
// replica one HGETALL.
//
// # Keys and access control
//
// The configuration lives under "<prefix>:{config}:" (version, live,
// history:<name>); what replicas write lives under "<prefix>:control:"
// (defaults, replicas). With Redis 7 ACLs, replicas can run every decision
// and still not write configuration: give them write access to every key
// of the prefix that does not start with a brace and read-only access to
// the configuration,
//
//	ACL SETUSER replica on >secret resetkeys resetchannels ~P:[^{]* %R~P:{config}:* &P:* -@all +@read +@write +@scripting +@pubsub +@connection -@dangerous +time
//	ACL SETUSER operator on >secret2 resetkeys resetchannels ~P:* &P:* -@all +@read +@write +@scripting +@pubsub +@connection -@dangerous +time
//
// (P being the prefix). A replica's attempt to write the configuration,
// through the script or directly, then fails with NOPERM; see
// TestACLReplicaCannotWriteConfig.
package control
