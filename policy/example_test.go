package policy_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/policy"
)

func Example() {
	defaults, _ := policy.Parse([]byte(`{"ratelimit": {"limit": 100, "per": "1m", "key": "global"}, "timeout": "2s"}`))
	op, _ := policy.Parse([]byte(`{"ratelimit": {"limit": 2}}`))
	spec := defaults.Merge(op)

	stack, err := policy.Build("createOrder", spec) // policy.WithStore(store) makes it fleet-wide
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()
	p := stack.Load()
	fmt.Println(p.Name, p.Limit, p.Timeout)
	for range 3 {
		err := stack.Do(context.Background(), func(context.Context) error { return nil })
		fmt.Println(errors.Is(err, bulwark.ErrRateLimited))
	}
	// Output:
	// createOrder 2/1m0s 2s
	// false
	// false
	// true
}

func ExampleSpec_Validate() {
	spec, err := policy.Parse([]byte(`{"ratelimit": {"limt": 10}}`))
	fmt.Println(err)
	spec, _ = policy.Parse([]byte(`{"ratelimit": {"limit": -1, "algorithm": "leaky_bucket"}}`))
	for _, p := range policy.Problems(spec.Validate()) {
		fmt.Println(p)
	}
	// Output:
	// bulwark: invalid config: ratelimit.limt: unknown key "limt"; did you mean "limit"?
	// ratelimit.algorithm: unknown value "leaky_bucket" (one of [token_bucket sliding_window sliding_log fixed_window])
	// ratelimit.limit: must be at least 1, got -1
}
