package local_test

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// A token bucket of 10 tokens per second with bursts of 3: an idle key may
// take 3 at once, then one more every 100ms.
func ExampleTokenBucket() {
	clk := fakeclock.New(fakeclock.Epoch) // time moves only when told to
	lim, err := local.NewTokenBucket(bulwark.Limit{Events: 10, Period: time.Second, Burst: 3}, local.WithClock(clk))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	show := func() {
		d, err := lim.Allow(ctx, "tenant-42", 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%v remaining=%d retry=%v reset=%v\n", d.Allowed, d.Remaining, d.RetryAfter, d.ResetAfter)
	}
	for range 4 {
		show()
	}
	clk.Advance(100 * time.Millisecond) // the RetryAfter of the denial
	show()
	// Output:
	// allowed=true remaining=2 retry=0s reset=100ms
	// allowed=true remaining=1 retry=0s reset=200ms
	// allowed=true remaining=0 retry=0s reset=300ms
	// allowed=false remaining=0 retry=100ms reset=300ms
	// allowed=true remaining=0 retry=0s reset=300ms
}
