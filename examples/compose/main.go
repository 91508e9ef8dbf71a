// Command compose protects one call with a whole stack, in the recommended
// order (outermost first): fallback, retry, rate limiter, bulkhead, circuit
// breaker, per-attempt timeout. Any bulwark.Limiter, Breaker or Bulkhead can
// take part, local or Redis-backed; this program uses the in-process ones
// (a token bucket, a breaker that trips after three failures in a row) and a
// load shedder as its bulkhead.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	trace := bulwark.ObserverFunc(func(e bulwark.Event) {
		fmt.Printf("    %-8s %v\n", e.Kind, e.Err)
	})
	opt := local.WithObserver(trace)
	fallback, err := local.NewFallback([]local.FallbackStep[string]{local.FallbackValue("cached price")}, opt)
	if err != nil {
		log.Fatal(err)
	}
	retry, _ := local.NewRetry(local.RetryConfig[string]{MaxAttempts: 3, Delay: 5 * time.Millisecond}, opt)
	bulkhead, _ := local.NewShedder(local.ShedderConfig{MaxInFlight: 8}, opt)
	timeout, _ := local.NewTimeout(20*time.Millisecond, opt)
	limiter, err := local.NewTokenBucket(bulwark.Limit{Events: 6, Period: time.Hour}) // 6 calls, then about one per 10 minutes
	if err != nil {
		log.Fatal(err)
	}
	breaker, err := local.NewBreaker(bulwark.BreakerConfig{
		Window:              10 * time.Second,
		MinimumCalls:        20,
		FailureRate:         1,
		ConsecutiveFailures: 3, // trips after three failures in a row
		OpenFor:             time.Minute,
		HalfOpenCalls:       1,
	})
	if err != nil {
		log.Fatal(err)
	}

	prices, err := bulwark.Compose[string](
		fallback,
		retry,
		bulwark.LimiterPolicy(limiter, bulwark.FixedKey("pricing"), 1),
		bulwark.BulkheadPolicy(bulkhead),
		bulwark.BreakerPolicy(breaker, nil),
		timeout,
	)
	if err != nil {
		log.Fatal(err)
	}

	scenarios := []struct {
		name string
		call func(ctx context.Context) (string, error)
	}{
		{"healthy", func(context.Context) (string, error) { return "42.00 EUR", nil }},
		{"hangs (timeouts, then the breaker opens)", func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}},
		{"breaker open", func(context.Context) (string, error) { return "never called", nil }},
	}
	for _, s := range scenarios {
		fmt.Printf("%s:\n", s.name)
		v, err := prices.Run(context.Background(), s.call)
		fmt.Printf("  -> %q, %v (breaker %v)\n", v, err, breaker.State(context.Background()))
	}
	if _, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, nil },
		bulwark.LimiterPolicy(nil, nil, 0)); errors.Is(err, bulwark.ErrInvalidConfig) {
		fmt.Println("an invalid stack is refused:", err)
	}
}
