// Command retry retries a flaky call with exponential back-off, equal
// jitter and a retry budget, printing each retry as it happens.
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

var errFlaky = errors.New("connection reset")

func main() {
	budget, err := local.NewRetryBudget(local.DefaultBudgetConfig())
	if err != nil {
		log.Fatal(err)
	}
	printRetries := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Kind == bulwark.EventRetry {
			fmt.Printf("  attempt %d after %v (previous: %v)\n", e.Attempt, e.Duration.Round(time.Millisecond), e.Err)
		}
	})
	retry, err := local.NewRetry(local.RetryConfig[string]{
		MaxAttempts: 4,
		Backoff:     local.BackoffExponential,
		Delay:       10 * time.Millisecond,
		MaxDelay:    100 * time.Millisecond,
		Jitter:      local.JitterEqual,
		RetryIf:     func(err error) bool { return errors.Is(err, errFlaky) },
		Budget:      budget,
	}, local.WithObserver(printRetries))
	if err != nil {
		log.Fatal(err)
	}

	calls := 0
	flaky := func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errFlaky
		}
		return "order #42 confirmed", nil
	}
	fmt.Println("calling a service that fails twice:")
	v, err := bulwark.Do(context.Background(), flaky, retry)
	fmt.Printf("result: %q, err: %v, calls: %d\n", v, err, calls)

	fmt.Println("calling a service that never recovers:")
	_, err = bulwark.Do(context.Background(), func(context.Context) (string, error) { return "", errFlaky }, retry)
	fmt.Printf("err: %v (exhausted: %v)\n", err, errors.Is(err, local.ErrRetriesExhausted))
}
