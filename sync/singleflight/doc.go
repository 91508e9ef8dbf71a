// Package singleflight runs a function once across a fleet of replicas for
// the callers that ask for the same key at the same time: the counterpart
// of golang.org/x/sync/singleflight for services that share one Redis.
//
//	g, err := singleflight.New(rdb, "profiles", singleflight.JSON[Profile]{},
//		singleflight.WithResultTTL(500*time.Millisecond))
//	if err != nil { ... }
//	defer g.Close()
//
//	res, err := g.Do(ctx, userID, func(ctx context.Context, token uint64) (Profile, error) {
//		return loadProfile(ctx, userID) // once for the fleet
//	})
//
// # Model
//
// Within one process, the concurrent callers of a key share one flight (as
// with x/sync). Across processes, a flight first runs one script on the
// key's Redis keys, which carry one hash tag (so one Cluster slot):
//
//   - a stored outcome (a run that ended within the result TTL, or the
//     error TTL for a failure) is returned as it is (Result.Remote);
//   - else, when nobody leads, the flight becomes the leader: it takes the
//     key's lease (PX the lease TTL) with a fencing token, keeps the lease
//     alive every keepalive interval while its function runs, then stores
//     the outcome (encoded by the group's [Codec]; values over the size cap
//     are not shared: other replicas get an error wrapping ErrTooLarge),
//     drops the lease and publishes a wake-up;
//   - else it waits: woken by the wake-up message (one pub/sub channel per
//     group, through cluster.Broadcast, dispatched by key inside the
//     process), or when the leader's lease would expire, or after the poll
//     interval, and tries again.
//
// A leader that dies (crash, SIGKILL) stops renewing; its lease expires
// within one lease TTL and a waiting flight takes over with a larger
// fencing token. A leader that could not renew in time has its function's
// ctx cancelled with cause ErrLeaseLost and stores nothing, so a late
// outcome never overwrites a newer leader's.
//
// The poll interval (default one second) is only a backstop: pub/sub
// delivers at most once, so a wake-up published while a replica's
// subscription was reconnecting is lost; the resubscription itself wakes
// every waiting flight of that replica, and the poll covers whatever slips
// between. It never drives normal operation.
//
// # When Redis is away
//
// When a script call fails (connection refused, timeout; see WithTimeout
// and WithRunner), the flight runs the function for the callers of its own
// replica only: concurrent callers are still collapsed per replica, each
// result says Degraded, and an EventFallback is emitted. Nothing is
// written back when Redis returns.
//
// # Cancellation
//
// A caller whose ctx ends returns ctx.Err() at once; the other callers are
// not affected. The function does not see its caller's cancellation (other
// callers, maybe on other replicas, wait for it); it is cancelled when the
// group closes or its lease is lost. A replica whose callers all left a
// waiting flight stops that flight.
//
// # Consistency
//
// Redis replication is asynchronous: a failover can lose a lease or a
// stored outcome, and the function may then run twice. Pass the fencing
// token to whatever the function writes if that matters.
package singleflight
