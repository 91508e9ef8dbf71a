// Command hedge cuts tail latency: when the first attempt is slow, a second
// one starts after a short delay, the first success wins and the loser is
// cancelled.
package main

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	hedge, err := local.NewHedge(local.HedgeConfig{Delay: 20 * time.Millisecond, MaxHedges: 2},
		local.WithObserver(bulwark.ObserverFunc(func(e bulwark.Event) {
			if e.Kind == bulwark.EventHedge {
				fmt.Printf("  no answer yet: starting attempt %d\n", e.Attempt)
			}
		})))
	if err != nil {
		log.Fatal(err)
	}
	var n atomic.Int32
	cancelled := make(chan int32, 3)
	lookup := func(ctx context.Context) (string, error) {
		i := n.Add(1)
		latency := 500 * time.Millisecond // the first replica is stuck
		if i > 1 {
			latency = 5 * time.Millisecond
		}
		select {
		case <-time.After(latency):
			return fmt.Sprintf("answer from attempt %d", i), nil
		case <-ctx.Done():
			cancelled <- i
			return "", ctx.Err()
		}
	}
	start := time.Now()
	v, err := bulwark.Do(context.Background(), lookup, hedge)
	fmt.Printf("%q, %v in ~%v\n", v, err, time.Since(start).Round(5*time.Millisecond))
	fmt.Printf("attempt %d was cancelled\n", <-cancelled)
}
