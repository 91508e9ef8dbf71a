// Command adaptive shows an AIMD concurrency limit finding its size: it
// grows while calls are fast and the limit is in use, and backs off when
// latency crosses the threshold or calls fail.
package main

import (
	"fmt"
	"log"
	"time"

	"github.com/bulwark-go/bulwark/local"
)

func main() {
	lim, err := local.NewAdaptiveLimiter(local.AdaptiveConfig{
		Algorithm:        local.AIMD,
		InitialLimit:     10,
		MinLimit:         2,
		MaxLimit:         50,
		LatencyThreshold: 100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	// Simulated rounds: fill the limit, then complete every call with the
	// round's latency (a real service runs calls through lim.Run).
	round := func(latency time.Duration, failed bool) {
		n := 0
		for lim.TryAcquire() {
			n++
		}
		for range n {
			lim.Observe(latency, failed)
		}
		fmt.Printf("  %d calls at %v (failed: %v) -> limit %d\n", n, latency, failed, lim.Limit())
	}
	fmt.Println("healthy dependency:")
	for range 3 {
		round(20*time.Millisecond, false)
	}
	fmt.Println("dependency slows down:")
	for range 3 {
		round(250*time.Millisecond, false)
	}
	fmt.Println("dependency recovers:")
	for range 2 {
		round(20*time.Millisecond, false)
	}
}
