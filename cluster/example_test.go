package cluster_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Each replica joins the group; a store that counts replicas through the
// membership gives each one its fair share of a limit while Redis is away.
// The example runs on an embedded Redis.
func ExampleJoin() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	ctx := context.Background()
	var members []*cluster.Membership
	for range 3 { // three replicas
		m, err := cluster.Join(rdb, cluster.WithPrefix("checkout"))
		if err != nil {
			panic(err)
		}
		members = append(members, m)
	}
	var n int
	for _, m := range members {
		// The background loop heartbeats every interval (the first one at
		// once); calling Heartbeat learns the count now.
		var err error
		if n, err = m.Heartbeat(ctx); err != nil {
			panic(err)
		}
	}
	fmt.Println("live replicas:", n) // Replicas() returns the latest count without I/O

	store, err := distributed.New(rdb, distributed.WithPrefix("checkout"),
		distributed.WithReplicaCounter(members[0]))
	if err != nil {
		panic(err)
	}
	_ = store.Close()

	_ = members[2].Close() // leaves the group at once
	n, _ = members[0].Heartbeat(ctx)
	fmt.Println("after one left:", n)
	_ = members[0].Close()
	_ = members[1].Close()
	// Output:
	// live replicas: 3
	// after one left: 2
}

// A broadcast carries "<topic> <payload>" messages to every replica
// subscribed to a channel. Each handler first hears a Resync when the
// subscription is live, and again after every reconnection.
func ExampleNewBroadcast() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	b, err := cluster.NewBroadcast(rdb, "checkout:events")
	if err != nil {
		panic(err)
	}
	defer b.Close()
	got := make(chan cluster.Message, 4)
	remove, err := b.Handle("config", func(m cluster.Message) { got <- m })
	if err != nil {
		panic(err)
	}
	defer remove()

	if m := <-got; m.Resync { // subscribed: re-read what you cache, then listen
		fmt.Println("subscribed")
	}
	if err := cluster.Publish(context.Background(), rdb, "checkout:events", "config", "limit=200"); err != nil {
		panic(err)
	}
	m := <-got
	fmt.Printf("topic %q payload %q\n", m.Topic, m.Payload)
	// Output:
	// subscribed
	// topic "config" payload "limit=200"
}
