// Command sharedbreaker shows a circuit breaker shared by three replicas
// through Redis: failures seen by one replica open the breaker for all of
// them, and after the open period one replica's successful trial call
// closes it for all.
//
// It uses an embedded Redis unless REDIS_URL names one:
//
//	go run ./examples/sharedbreaker
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/sharedbreaker
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/examples/internal/exredis"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const replicas = 3

// config trips after three failures in a row, fleet-wide, and stays open
// for 300ms before letting one trial call through.
var config = bulwark.BreakerConfig{
	Window:              10 * time.Second,
	MinimumCalls:        10,
	FailureRate:         0.5,
	ConsecutiveFailures: 3,
	OpenFor:             300 * time.Millisecond,
	HalfOpenCalls:       1,
}

var errPayments = errors.New("payments provider: 502")

func run(ctx context.Context, out io.Writer) error {
	rdb, err := exredis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close() // also closes the stores, and so their breakers
	fmt.Fprintf(out, "%d replicas share the breaker %q in %s\n", replicas, "payments", rdb.Where)

	stores, err := rdb.Stores(replicas, distributed.WithPrefix(exredis.Prefix("sharedbreaker")))
	if err != nil {
		return err
	}
	breakers := make([]*distributed.Breaker, replicas)
	for i, store := range stores {
		if breakers[i], err = store.Breaker("payments", config); err != nil {
			return err
		}
	}
	states := func() string {
		s := make([]string, replicas)
		for i, b := range breakers {
			s[i] = fmt.Sprintf("replica-%d %v", i+1, b.State(ctx))
		}
		return strings.Join(s, ", ")
	}
	call := func(i int, work func() error) string {
		done, err := breakers[i].Allow(ctx)
		if err != nil {
			return fmt.Sprintf("replica-%d: refused (%v)", i+1, err)
		}
		err = work()
		done(err == nil)
		if err != nil {
			return fmt.Sprintf("replica-%d: called, failed (%v)", i+1, err)
		}
		return fmt.Sprintf("replica-%d: called, succeeded", i+1)
	}
	failing := func() error { return errPayments }
	healthy := func() error { return nil }

	fmt.Fprintln(out, "start:", states())
	for range 3 {
		fmt.Fprintln(out, " ", call(0, failing))
	}
	// The third failure is sent to Redis at once; the others learn of the
	// transition through pub/sub within milliseconds.
	if err := waitFor(ctx, func() bool { return allIn(ctx, breakers, bulwark.Open) }); err != nil {
		return fmt.Errorf("the breaker did not open on every replica: %s", states())
	}
	fmt.Fprintln(out, "after replica-1's failures:", states())
	fmt.Fprintln(out, " ", call(1, healthy))
	fmt.Fprintln(out, " ", call(2, healthy))

	time.Sleep(config.OpenFor)
	fmt.Fprintln(out, "after the open period:", states())
	fmt.Fprintln(out, " ", call(1, healthy), "(the fleet's one trial call)")
	if err := waitFor(ctx, func() bool { return allIn(ctx, breakers, bulwark.Closed) }); err != nil {
		return fmt.Errorf("the breaker did not close on every replica: %s", states())
	}
	fmt.Fprintln(out, "after the trial:", states())
	fmt.Fprintln(out, " ", call(2, healthy))
	return nil
}

func allIn(ctx context.Context, bs []*distributed.Breaker, s bulwark.State) bool {
	for _, b := range bs {
		if b.State(ctx) != s {
			return false
		}
	}
	return true
}

// waitFor polls cond every 5ms for up to five seconds.
func waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
