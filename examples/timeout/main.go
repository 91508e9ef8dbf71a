// Command timeout bounds a slow call: the call's ctx is cancelled when the
// budget runs out and the caller gets an error matching bulwark.ErrTimeout.
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
	timeout, err := local.NewTimeout(50 * time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	slowQuery := func(ctx context.Context) (int, error) {
		select {
		case <-time.After(time.Second): // the query would take a second
			return 7, nil
		case <-ctx.Done():
			fmt.Println("  query cancelled:", context.Cause(ctx))
			return 0, ctx.Err()
		}
	}
	start := time.Now()
	_, err = bulwark.Do(context.Background(), slowQuery, timeout)
	fmt.Printf("err: %v (ErrTimeout: %v) after ~%v\n", err, errors.Is(err, bulwark.ErrTimeout),
		time.Since(start).Round(10*time.Millisecond))

	v, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 1, nil }, timeout)
	fmt.Printf("a fast call: %d, %v\n", v, err)
}
