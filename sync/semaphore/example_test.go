package semaphore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

// Two processes (here two Weighted values with their own clients) share
// three slots through one Redis; the example runs on a throw-away redis-server.
func ExampleWeighted() {
	mr := redistest.ExampleServer()
	defer mr.Kill()
	open := func() (*semaphore.Weighted, func()) {
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		sem, err := semaphore.New(rdb, "payments-api", 3, semaphore.WithLeaseTTL(30*time.Second))
		if err != nil {
			panic(err)
		}
		return sem, func() { _ = sem.Close(); _ = rdb.Close() }
	}
	a, closeA := open()
	defer closeA()
	b, closeB := open()
	defer closeB()

	ctx := context.Background()
	big, err := a.Acquire(ctx, 2) // blocks until 2 slots are free, or ctx ends
	if err != nil {
		panic(err)
	}
	small, ok, err := b.TryAcquire(ctx, 1) // never waits
	fmt.Println("b got 1 slot:", ok, err)
	_, ok, _ = b.TryAcquire(ctx, 1)
	fmt.Println("b got another:", ok)
	fmt.Println("fencing tokens grow:", small.Token() > big.Token())

	free, err := a.Available(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("free slots:", free)
	if err := big.Release(ctx); err != nil {
		panic(err)
	}
	if err := small.Release(ctx); err != nil {
		panic(err)
	}
	free, _ = b.Available(ctx)
	fmt.Println("free after release:", free)
	// Output:
	// b got 1 slot: true <nil>
	// b got another: false
	// fencing tokens grow: true
	// free slots: 0
	// free after release: 3
}
