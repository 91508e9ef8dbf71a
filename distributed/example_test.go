package distributed_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
)

// The examples run on a throw-away redis-server started for each, so they need no
// server; on a real deployment the client points at Redis, Sentinel or a
// Redis Cluster instead.

// A token bucket shared by every replica that builds it from a store with
// the same prefix and name.
func ExampleStore_TokenBucket() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()

	store, err := distributed.New(rdb, distributed.WithPrefix("checkout"))
	if err != nil {
		panic(err)
	}
	defer store.Close()
	perUser, err := store.TokenBucket("per-user", bulwark.PerHour(60).WithBurst(2))
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	for range 3 {
		d, err := perUser.Allow(ctx, "user-42", 1)
		if err != nil {
			panic(err) // the call was wrong (bad n, done ctx, closed store), never "Redis is down"
		}
		if !d.Allowed {
			fmt.Println("denied:", errors.Is(d.Err(), bulwark.ErrRateLimited), "retry after", d.RetryAfter.Round(time.Second))
			continue
		}
		fmt.Println("allowed, remaining", d.Remaining, "degraded", d.Degraded)
	}
	// Output:
	// allowed, remaining 1 degraded false
	// allowed, remaining 0 degraded false
	// denied: true retry after 1m0s
}

// At most 2 requests per hour per replica, and 3 across the fleet: the
// local tier is asked first, so a request it refuses costs no round trip.
func ExampleNewTiered() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()
	store, err := distributed.New(rdb)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	fleet, err := store.SlidingWindow("api", bulwark.PerHour(3))
	if err != nil {
		panic(err)
	}
	replica := func() bulwark.Limiter {
		own, err := local.NewTokenBucket(bulwark.PerHour(2))
		if err != nil {
			panic(err)
		}
		l, err := distributed.NewTiered(own, fleet)
		if err != nil {
			panic(err)
		}
		return l
	}
	a, b := replica(), replica()

	ctx := context.Background()
	for i, l := range []bulwark.Limiter{a, a, a, b, b} {
		d, err := l.Allow(ctx, "tenant-1", 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("request %d: allowed %v\n", i+1, d.Allowed)
	}
	// Output:
	// request 1: allowed true
	// request 2: allowed true
	// request 3: allowed false
	// request 4: allowed true
	// request 5: allowed false
}

// Several token-bucket limits checked and charged together in one script:
// a request takes a token from every limit or from none.
func ExampleStore_Multi() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()
	store, err := distributed.New(rdb)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	m, err := store.Multi("api",
		distributed.NamedLimit{Name: "minute", Limit: bulwark.PerMinute(2)},
		distributed.NamedLimit{Name: "day", Limit: bulwark.Limit{Events: 10000, Period: 24 * time.Hour}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		d, err := m.Allow(ctx, "tenant-1", 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed %v, remaining %d of %d\n", d.Allowed, d.Remaining, d.Limit)
	}
	// Output:
	// allowed true, remaining 1 of 2
	// allowed true, remaining 0 of 2
	// allowed false, remaining 0 of 2
}

// A circuit breaker shared by the fleet: two failures in a row, reported
// by any replica, open it for every replica.
func ExampleStore_Breaker() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()
	store, err := distributed.New(rdb)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	b, err := store.Breaker("payments", bulwark.BreakerConfig{
		Window: 10 * time.Second, MinimumCalls: 10, FailureRate: 0.5,
		ConsecutiveFailures: 2, OpenFor: time.Minute, HalfOpenCalls: 1,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 2 {
		done, err := b.Allow(ctx)
		if err != nil {
			panic(err)
		}
		done(false) // the call failed
	}
	if err := b.Flush(ctx); err != nil { // send the batched outcomes now
		panic(err)
	}
	_, err = b.Allow(ctx)
	fmt.Println("open:", errors.Is(err, bulwark.ErrOpen))

	info, err := store.BreakerState(ctx, "payments") // what `bulwark inspect` shows
	if err != nil {
		panic(err)
	}
	fmt.Println("fleet state:", info.State)

	if err := b.Reset(ctx); err != nil { // what `bulwark breaker reset` does
		panic(err)
	}
	fmt.Println("after reset:", b.State(ctx))
	// Output:
	// open: true
	// fleet state: open
	// after reset: closed
}

// A bulkhead shared by the fleet: at most MaxConcurrent calls run at once
// across every replica.
func ExampleStore_Bulkhead() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()
	store, err := distributed.New(rdb)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	bh, err := store.Bulkhead("search", bulwark.BulkheadConfig{
		MaxConcurrent: 2, MaxWait: 0, LeaseTTL: 30 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	r1, err := bh.Acquire(ctx)
	if err != nil {
		panic(err)
	}
	r2, err := bh.Acquire(ctx)
	if err != nil {
		panic(err)
	}
	_, err = bh.Acquire(ctx) // MaxWait 0: no waiting when every slot is taken
	fmt.Println("third call:", errors.Is(err, bulwark.ErrBulkheadFull))

	holders, err := store.BulkheadHolders(ctx, "search")
	if err != nil {
		panic(err)
	}
	fmt.Println("holders:", len(holders))
	r1()
	r2()
	holders, err = store.BulkheadHolders(ctx, "search")
	if err != nil {
		panic(err)
	}
	fmt.Println("holders after release:", len(holders))
	// Output:
	// third call: true
	// holders: 2
	// holders after release: 0
}

// When Redis goes away the limiters keep answering: each call is decided
// locally and flagged Degraded, and after WithFailureThreshold failed calls
// in a row the store stops calling Redis. With FailLocal (the default) and
// two replicas, this replica enforces half of the limit on its own.
func ExampleFailurePolicy() {
	mr := redistest.ExampleServer()
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: mr.Addr()}, 0))
	defer rdb.Close()
	store, err := distributed.New(rdb,
		distributed.WithReplicas(2), // or WithReplicaCounter(membership)
		distributed.WithFailureThreshold(3))
	if err != nil {
		panic(err)
	}
	defer store.Close()
	lim, err := store.FixedWindow("api", bulwark.PerHour(10))
	if err != nil {
		panic(err)
	}
	login, err := store.FixedWindow("login", bulwark.PerHour(10),
		distributed.WithLimiterFailurePolicy(distributed.FailClosed))
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	d, _ := lim.Allow(ctx, "k", 1)
	fmt.Printf("Redis up:   allowed %v, limit %d, degraded %v\n", d.Allowed, d.Limit, d.Degraded)

	mr.Kill() // Redis goes away
	for range 3 {
		d, _ = lim.Allow(ctx, "k", 1)
	}
	fmt.Printf("Redis away: allowed %v, limit %d, degraded %v\n", d.Allowed, d.Limit, d.Degraded)
	fmt.Println("healthy:", store.Healthy(), errors.Is(store.HealthError(), distributed.ErrUnavailable))

	d, _ = login.Allow(ctx, "alice", 1)
	fmt.Printf("FailClosed: allowed %v, degraded %v\n", d.Allowed, d.Degraded)
	// Output:
	// Redis up:   allowed true, limit 10, degraded false
	// Redis away: allowed true, limit 5, degraded true
	// healthy: false true
	// FailClosed: allowed false, degraded true
}

// The client options a store wants, for each kind of deployment. These
// clients are built, not used, so the example only compiles.
func ExampleClientOptions() {
	// Standalone Redis.
	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: "127.0.0.1:6379"}, 0))

	// Redis Cluster.
	rcc := redis.NewClusterClient(distributed.ClusterClientOptions(&redis.ClusterOptions{
		Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"},
	}, 0))

	// Sentinel: a failover client is a *redis.Client.
	rfc := redis.NewFailoverClient(distributed.FailoverClientOptions(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
	}, 0))

	for _, c := range []distributed.Client{rdb, rcc, rfc} {
		store, err := distributed.New(c, distributed.WithPrefix("checkout"))
		if err != nil {
			panic(err)
		}
		_ = store.Close()
	}
	_, _, _ = rdb.Close(), rcc.Close(), rfc.Close()
}
