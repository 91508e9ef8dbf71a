// Command toggle switches a feature at run time: a gate in a composition, a
// percentage rollout that is sticky per tenant, and a guard that turns a
// retry policy on and off.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	newCheckout, err := local.NewToggle(local.ToggleConfig{Percent: 0})
	if err != nil {
		log.Fatal(err)
	}
	ex, err := bulwark.Compose[string](newCheckout)
	if err != nil {
		log.Fatal(err)
	}
	call := func() {
		v, err := ex.Run(context.Background(), func(context.Context) (string, error) { return "new checkout", nil })
		if errors.Is(err, local.ErrDisabled) {
			v = "old checkout"
		}
		fmt.Println("  served:", v)
	}
	fmt.Println("feature off:")
	call()
	newCheckout.Set(true) // e.g. from an admin endpoint
	fmt.Println("feature on:")
	call()

	if err := newCheckout.SetPercent(25); err != nil {
		log.Fatal(err)
	}
	on := 0
	for i := range 1000 {
		if newCheckout.EnabledFor(fmt.Sprintf("tenant-%d", i)) {
			on++
		}
	}
	fmt.Printf("25%% rollout: %d of 1000 tenants see the feature, always the same ones\n", on)

	retry, _ := local.NewRetry(local.RetryConfig[int]{MaxAttempts: 3})
	retries, _ := local.NewToggle(local.ToggleConfig{Percent: 100})
	guarded, _ := bulwark.Compose[int](retries.Guard(retry))
	for _, enabled := range []bool{true, false} {
		retries.Set(enabled)
		calls := 0
		_, _ = guarded.Run(context.Background(), func(context.Context) (int, error) { calls++; return 0, errors.New("boom") })
		fmt.Printf("retries enabled %v: %d calls\n", enabled, calls)
	}
}
