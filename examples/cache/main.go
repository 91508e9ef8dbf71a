// Command cache shows stampede protection: 100 concurrent requests for the
// same key cause one computation; later requests are served from the cache
// until the TTL passes.
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/local"
)

func main() {
	cache, err := local.NewCache[string](local.CacheConfig{TTL: time.Minute, MaxSize: 1000})
	if err != nil {
		log.Fatal(err)
	}
	var computed atomic.Int32
	render := func(ctx context.Context) (string, error) {
		computed.Add(1)
		time.Sleep(50 * time.Millisecond) // an expensive page render
		return "<html>home</html>", nil
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cache.Get(context.Background(), "page:home", render); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("100 concurrent requests, %d computation(s)\n", computed.Load())
	v, _ := cache.Get(context.Background(), "page:home", render)
	fmt.Printf("one more request: %q, computations still %d\n", v, computed.Load())
}
