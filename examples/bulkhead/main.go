// Command bulkhead shows a cluster-wide bulkhead: three replicas share 3
// slots for calls to a fragile dependency through a Redis semaphore
// (package sync/semaphore), so the dependency never sees more than 3 calls
// at once however many replicas run. Each replica starts 3 calls at once;
// the others wait for a slot (woken when one is released), and a caller
// that will not wait is turned away.
//
// It uses an embedded Redis unless REDIS_URL names one:
//
//	go run ./examples/bulkhead
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/bulkhead
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/examples/internal/exredis"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const (
	replicas = 3
	slots    = 3 // calls the dependency may receive at once, fleet-wide
	calls    = 3 // calls each replica starts at once
	work     = 50 * time.Millisecond
)

func run(ctx context.Context, out io.Writer) error {
	rdb, err := exredis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	prefix := exredis.Prefix("bulkhead") + ":"
	fmt.Fprintf(out, "%d replicas share %d slots for the inventory service in %s\n", replicas, slots, rdb.Where)

	sems := make([]*semaphore.Weighted, replicas)
	for i := range sems {
		sem, err := semaphore.New(rdb.NewClient(), "inventory", slots,
			semaphore.WithPrefix(prefix),
			semaphore.WithLeaseTTL(5*time.Second)) // a crashed holder's slot frees itself after this
		if err != nil {
			return err
		}
		defer sem.Close()
		sems[i] = sem
	}

	var inUse, peak atomic.Int64 // what the dependency sees
	var mu sync.Mutex
	served := make([]int, replicas)
	var wg sync.WaitGroup
	errs := make(chan error, replicas*calls)
	for i, sem := range sems {
		for range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lease, err := sem.Acquire(ctx, 1) // waits for a slot
				if err != nil {
					errs <- err
					return
				}
				n := inUse.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(work) // the call to the dependency
				inUse.Add(-1)
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				served[i]++
				mu.Unlock()
			}()
		}
	}
	// While the fleet is busy, a caller that must not wait is refused.
	time.Sleep(work / 2)
	if lease, ok, err := sems[0].TryAcquire(ctx, 1); err != nil {
		return err
	} else if ok {
		fmt.Fprintln(out, "TryAcquire while busy: got a slot")
		lease.Release(ctx)
	} else {
		holders, err := sems[0].Holders(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "TryAcquire while busy: refused, %d leases held fleet-wide\n", len(holders))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	for i, n := range served {
		fmt.Fprintf(out, "  replica-%d served %d calls\n", i+1, n)
	}
	fmt.Fprintf(out, "%d calls served; at most %d ran at once (limit %d)\n", replicas*calls, peak.Load(), slots)
	return nil
}
