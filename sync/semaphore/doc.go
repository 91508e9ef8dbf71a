// Package semaphore is a weighted semaphore shared by every replica of a
// service through Redis: the cluster-wide counterpart of
// golang.org/x/sync/semaphore and the foundation of the fleet-wide bulkhead
// (distributed.Store.Bulkhead, which adds a bulwark.Bulkhead interface, the
// store's health and a local fallback while Redis is away).
//
//	sem, err := semaphore.New(client, "payments-api", 10)
//	if err != nil { ... }
//	defer sem.Close()
//
//	lease, err := sem.Acquire(ctx, 1) // blocks until a slot is free
//	if err != nil { ... }
//	defer lease.Release(context.WithoutCancel(ctx))
//	select {
//	case <-lease.Lost(): // renewal failed: stop, the slot may be someone else's
//	case res := <-work(ctx, lease.Token()):
//	}
//
// # Model
//
// A semaphore has a capacity in slots. [Weighted.Acquire] takes n of them
// as one [Lease], identified by 128 random bits. Leases live in a Redis
// sorted set scored by their expiry (Redis TIME, microseconds): a lease
// expires LeaseTTL (default bulwark.DefaultLeaseTTL) after it was granted
// or last renewed. The Weighted renews its held leases every keepalive
// interval (default LeaseTTL/3), so long calls keep their slots while a
// crashed process's slots come back within LeaseTTL: the acquire script
// reclaims expired leases before it counts free slots.
//
// Waiters queue in Redis in arrival order and are granted slots only when
// every earlier waiter still fits, so a large request is not starved by a
// stream of small ones (the behaviour of x/sync/semaphore). Releases
// publish on a per-semaphore channel; each Weighted holds one subscription
// and wakes its oldest blocked caller, who tries again at once and, when
// slots are still free after its try, wakes the next one. Blocked callers
// also re-check at the earliest lease expiry and every poll interval, which
// covers lost messages and holders that died without releasing. A queued
// entry is dropped when its caller stops refreshing it for three poll
// intervals (its process died), so a dead waiter holds up the queue at most
// that long.
//
// Each lease carries a fencing token, larger than every token issued before
// it ([Lease.Token]). A holder that loses its lease is told through
// [Lease.Lost], the WithOnLeaseLost callback and a bulwark.EventLeaseLost
// event.
//
// # Redis
//
// Every operation is one Lua script from package lua; all keys of one
// semaphore share a hash tag built from the encoded name, so the semaphore
// works on Redis Cluster, and every key carries a TTL just past the last
// expiry it holds (the fencing counter keeps FenceTTL). Retries are safe:
// acquire is idempotent by lease id, release and renew act only on a live
// lease with the given id. Nothing here falls back to local state when Redis
// is down: calls return the Redis error (or ctx's), and a lease whose
// renewals fail is reported lost once its expiry has passed.
//
// After a restart that lost the data, holders see Lost at their next renewal
// and no slot stays taken; fencing tokens keep growing (they are at least
// the Redis time in microseconds, as long as the Redis clock does not step
// back). Replication is asynchronous: after a failover, recent leases may be
// forgotten (their holders see Lost at the next renewal, and their slots may
// be granted twice meanwhile) and fencing tokens may repeat. Where that
// matters, have the protected resource check the tokens.
package semaphore
