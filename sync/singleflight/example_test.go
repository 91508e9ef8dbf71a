package singleflight_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/sync/singleflight"
)

type profile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Two replicas (here two groups with clients of their own) ask for the
// same profile at the same time; the loader runs once and both get its
// result. The example runs on a throw-away redis-server.
func ExampleGroup() {
	srv := redistest.ExampleServer()
	defer srv.Kill()
	var loads atomic.Int64
	started := make(chan struct{})
	release := make(chan struct{})
	load := func(ctx context.Context, token uint64) (profile, error) {
		loads.Add(1)
		close(started)
		<-release // a slow backend
		return profile{ID: "42", Name: "Ada"}, nil
	}
	var groups []*singleflight.Group[profile]
	for range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rdb.Close()
		g, err := singleflight.New(rdb, "profiles", singleflight.JSON[profile]{})
		if err != nil {
			panic(err)
		}
		defer g.Close()
		groups = append(groups, g)
	}

	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]singleflight.Result[profile], 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], _ = groups[0].Do(ctx, "user:42", load)
	}()
	<-started // replica 0 leads; replica 1 waits for its result
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		results[1], err = groups[1].Do(ctx, "user:42", load)
		if err != nil {
			panic(err)
		}
	}()
	// Whether replica 1 joins the run in time or finds its stored result
	// (it lives for the result TTL), the loader runs once.
	close(release)
	wg.Wait()
	fmt.Println("loads:", loads.Load())
	fmt.Println("replica 0:", results[0].Value.Name, "leader:", results[0].Leader)
	fmt.Println("replica 1:", results[1].Value.Name, "remote:", results[1].Remote)
	fmt.Println("same run:", results[0].Token == results[1].Token)
	// Output:
	// loads: 1
	// replica 0: Ada leader: true
	// replica 1: Ada remote: true
	// same run: true
}
