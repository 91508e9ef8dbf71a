// Command fallback answers from a chain of alternatives when the primary
// call fails: a replica first, then a static default, each chosen by a
// predicate on the error.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

var (
	errNotFound = errors.New("profile not found")
	errDown     = errors.New("primary unavailable")
)

func main() {
	fallback, err := local.NewFallback([]local.FallbackStep[string]{
		// A missing profile is not an outage: answer a guest profile.
		{When: func(err error) bool { return errors.Is(err, errNotFound) }, Value: "guest"},
		// Otherwise ask the replica...
		local.FallbackFunc(func(ctx context.Context, err error) (string, error) {
			fmt.Println("  replica asked because:", err)
			return "", errors.New("replica unavailable")
		}),
		// ...and when that fails too, a cached default.
		local.FallbackValue("profile from last night's snapshot"),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, cause := range []error{nil, errNotFound, errDown} {
		v, err := bulwark.Do(context.Background(), func(context.Context) (string, error) {
			if cause != nil {
				return "", cause
			}
			return "alice", nil
		}, fallback)
		fmt.Printf("primary error %v -> %q, %v\n", cause, v, err)
	}
}
