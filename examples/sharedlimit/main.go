// Command sharedlimit shows one rate limit shared by three replicas of a
// service through Redis: three stores (one per replica, each with its own
// client, as three processes would have) build the same sliding-window
// limiter, and together they admit what the limit allows, not three times
// as much. Every other algorithm (token bucket, sliding log, fixed window)
// is shared the same way, on a real Redis and on the embedded one.
//
// It uses an embedded Redis unless REDIS_URL names one:
//
//	go run ./examples/sharedlimit
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/sharedlimit
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/examples/internal/exredis"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const (
	replicas = 3
	attempts = 10 // requests each replica makes at once
)

// limit: 10 requests per sliding minute, so nothing frees up while the
// example runs.
var limit = bulwark.PerMinute(10)

func run(ctx context.Context, out io.Writer) error {
	rdb, err := exredis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	fmt.Fprintf(out, "%d replicas share one sliding-window limit of %v in %s\n", replicas, limit, rdb.Where)

	// one client and one store per replica
	stores, err := rdb.Stores(replicas, distributed.WithPrefix(exredis.Prefix("sharedlimit")))
	if err != nil {
		return err
	}
	limiters := make([]bulwark.Limiter, replicas)
	for i, store := range stores {
		if limiters[i], err = store.SlidingWindow("api", limit); err != nil {
			return err
		}
	}
	total, err := burst(ctx, out, limiters)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "together: %d admitted of %d requests: the limit is global\n\n", total, replicas*attempts)

	fmt.Fprintln(out, "the same with a local limiter in each replica:")
	for i := range limiters {
		if limiters[i], err = local.NewSlidingWindow(limit); err != nil {
			return err
		}
	}
	total, err = burst(ctx, out, limiters)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "together: %d admitted of %d requests: each replica enforced its own %d\n", total, replicas*attempts, limit.Events)
	return nil
}

// burst has every replica make its attempts at the same time, all for one
// key, and prints what each admitted.
func burst(ctx context.Context, out io.Writer, limiters []bulwark.Limiter) (int, error) {
	admitted := make([]int, len(limiters))
	degraded := make([]int, len(limiters))
	errs := make([]error, len(limiters))
	var wg sync.WaitGroup
	for i, l := range limiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range attempts {
				d, err := l.Allow(ctx, "customer-42", 1)
				if err != nil {
					errs[i] = err
					return
				}
				if d.Allowed {
					admitted[i]++
				}
				if d.Degraded {
					degraded[i]++
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := range limiters {
		if errs[i] != nil {
			return 0, errs[i]
		}
		fmt.Fprintf(out, "  replica-%d: %2d admitted, %2d denied", i+1, admitted[i], attempts-admitted[i])
		if degraded[i] > 0 {
			fmt.Fprintf(out, " (%d decided locally: Redis did not answer)", degraded[i])
		}
		fmt.Fprintln(out)
		total += admitted[i]
	}
	return total, nil
}
