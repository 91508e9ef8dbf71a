// Command compose protects one call with a whole stack, in the recommended
// order (outermost first): fallback, retry, rate limiter, bulkhead, circuit
// breaker, per-attempt timeout. Any bulwark.Limiter, Breaker or Bulkhead can
// take part, local or Redis-backed; this program brings two tiny ones of
// its own so that it stands alone, and uses a load shedder as its bulkhead.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

// quota admits n calls in total, then denies: a stand-in for a rate limiter.
type quota struct {
	mu   sync.Mutex
	left int
}

func (q *quota) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.left < n {
		return bulwark.Decision{RetryAfter: time.Second}, nil
	}
	q.left -= n
	return bulwark.Decision{Allowed: true, Remaining: q.left}, nil
}

// tripAfter opens for good after three failures in a row: a stand-in for a
// circuit breaker.
type tripAfter struct {
	mu       sync.Mutex
	failures int
}

func (b *tripAfter) Allow(ctx context.Context) (func(bool), error) {
	if b.State(ctx) == bulwark.Open {
		return nil, bulwark.ErrOpen
	}
	return func(ok bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if ok {
			b.failures = 0
		} else {
			b.failures++
		}
	}, nil
}

func (b *tripAfter) State(ctx context.Context) bulwark.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures >= 3 {
		return bulwark.Open
	}
	return bulwark.Closed
}

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
	breaker := &tripAfter{}

	prices, err := bulwark.Compose[string](
		fallback,
		retry,
		bulwark.LimiterPolicy(&quota{left: 6}, bulwark.FixedKey("pricing"), 1),
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
