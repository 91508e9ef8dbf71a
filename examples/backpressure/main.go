// Command backpressure turns observed latencies into a stress score and a
// Retry-After that grows with stress: t = (t_min + t_max·b)·j.
package main

import (
	"fmt"
	"log"
	"time"

	"github.com/bulwark-go/bulwark/local"
)

func main() {
	est, err := local.NewBackpressure(local.BackpressureConfig{
		Window:        50,
		Baseline:      20 * time.Millisecond, // the healthy p95
		MinRetryAfter: time.Second,
		MaxRetryAfter: 9 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	phase := func(name string, latency func(i int) time.Duration) {
		for i := range 50 {
			est.Record(latency(i))
		}
		fmt.Printf("%-22s stress %.2f  Retry-After %v\n", name, est.Score(), est.RetryAfter().Round(100*time.Millisecond))
	}
	phase("healthy (15ms)", func(int) time.Duration { return 15 * time.Millisecond })
	phase("rising (15ms -> 25ms)", func(i int) time.Duration { return 15*time.Millisecond + time.Duration(i)*200*time.Microsecond })
	phase("overloaded (60ms)", func(int) time.Duration { return 60 * time.Millisecond })
}
