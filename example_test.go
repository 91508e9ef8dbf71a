package bulwark_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// A limiter answers with a Decision; a denied one becomes an error that
// matches ErrRateLimited and carries how long to wait. Swapping the local
// limiter for a distributed.Store's makes the same limit fleet-wide.
func Example() {
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	var lim bulwark.Limiter
	lim, err := local.NewTokenBucket(bulwark.PerSecond(2), local.WithClock(clock))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := range 3 {
		d, err := lim.Allow(ctx, "tenant-a", 1)
		if err != nil {
			panic(err) // a wrong call (n < 1, n above the burst, done ctx), never "store down"
		}
		if err := d.Err(); errors.Is(err, bulwark.ErrRateLimited) {
			var rl *bulwark.RateLimitedError
			errors.As(err, &rl)
			fmt.Printf("request %d: denied, retry after %v\n", i+1, rl.RetryAfter)
			clock.Advance(rl.RetryAfter)
			continue
		}
		fmt.Printf("request %d: allowed, %d of %d left\n", i+1, d.Remaining, d.Limit)
	}
	d, _ := lim.Allow(ctx, "tenant-a", 1)
	fmt.Println("after waiting:", d.Allowed)

	_, err = lim.Allow(ctx, "tenant-a", 3)
	fmt.Println(errors.Is(err, bulwark.ErrInvalidArgument))
	_, err = local.NewTokenBucket(bulwark.Limit{Events: 0, Period: time.Second})
	fmt.Println(errors.Is(err, bulwark.ErrInvalidConfig))
	// Output:
	// request 1: allowed, 1 of 2 left
	// request 2: allowed, 0 of 2 left
	// request 3: denied, retry after 500ms
	// after waiting: true
	// true
	// true
}
