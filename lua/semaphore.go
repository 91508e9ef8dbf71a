package lua

import (
	_ "embed"
)

// Scripts of the cluster-wide weighted semaphore (package sync/semaphore).
// They share one key layout, described at the top of each file: a sorted set
// of leases scored by expiry, a hash of lease weights and fencing tokens with
// the running total "used", two sorted sets for the waiter queue (arrival
// order and expiry), and a fencing counter. Every key of one semaphore
// carries the same hash tag, so all of them live in one Redis Cluster slot.
// Time inside the scripts is Redis TIME, in microseconds.

//go:embed semaphore_acquire.lua
var semaphoreAcquireSrc string

//go:embed semaphore_release.lua
var semaphoreReleaseSrc string

//go:embed semaphore_renew.lua
var semaphoreRenewSrc string

//go:embed semaphore_inspect.lua
var semaphoreInspectSrc string

// SemaphoreAcquire reclaims expired leases and grants n slots to a lease id
// when capacity is free and no earlier waiter is owed it; otherwise it queues
// the caller (unless the waiter TTL is 0) and reports how long until the
// earliest lease expires. Calling it again with the id of a live lease
// returns that lease unchanged, so a retried call never grants twice.
// KEYS: leases, holders, waiters, waitexp, fence.
// ARGV: id, n, capacity, lease TTL µs, waiter TTL µs, channel, fence TTL ms.
// Reply: {1, token, expiry µs, free} or {0, wait µs, free}.
var SemaphoreAcquire = newScript(semaphoreAcquireSrc)

// SemaphoreRelease frees a live lease's slots and withdraws a queued waiter
// entry, then publishes a wake-up when anyone is still queued.
// KEYS: leases, holders, waiters, waitexp. ARGV: id, "<id>:<n>", channel.
// Reply: {released 0|1, withdrawn 0|1}.
var SemaphoreRelease = newScript(semaphoreReleaseSrc)

// SemaphoreRenew pushes a live lease's expiry to now + TTL; a lease that is
// gone or already past its expiry is reported lost and not revived.
// KEYS: leases, holders, waiters. ARGV: id, lease TTL µs, channel.
// Reply: {1, expiry µs} or {0}.
var SemaphoreRenew = newScript(semaphoreRenewSrc)

// SemaphoreInspect lists the live leases and counts the live waiters
// without writing anything.
// KEYS: leases, holders, waitexp. ARGV: most leases to list.
// Reply: {now µs, waiting, then id, weight, token, expiry µs per lease}.
var SemaphoreInspect = newScript(semaphoreInspectSrc)
