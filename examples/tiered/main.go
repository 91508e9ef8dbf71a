// Command tiered shows a tiered limit: at most 5 requests per minute per
// replica (a local token bucket, no Redis round trip) and at most 8 per
// minute across the fleet (a sliding window in Redis). Each of three
// replicas tries 6 requests: each replica's own tier stops it at 5, and the
// shared tier stops the fleet at 8. The local tier is asked first, so
// requests a replica refuses on its own cost no Redis round trip; a request
// the fleet refuses still used a local token (the tiers err towards
// denying). AllowTier says which tier refused each request.
//
// It uses an embedded Redis unless REDIS_URL names one:
//
//	go run ./examples/tiered
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/tiered
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/examples/internal/exredis"
	"github.com/bulwark-go/bulwark/local"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

var (
	perReplica = bulwark.PerMinute(5)
	fleet      = bulwark.PerMinute(8)
)

const (
	replicas = 3
	attempts = 6
)

func run(ctx context.Context, out io.Writer) error {
	rdb, err := exredis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	fmt.Fprintf(out, "%d replicas, each limited to %v on its own and together to %v in %s\n", replicas, perReplica, fleet, rdb.Where)
	stores, err := rdb.Stores(replicas, distributed.WithPrefix(exredis.Prefix("tiered")))
	if err != nil {
		return err
	}
	total := 0
	for i, store := range stores {
		global, err := store.SlidingWindow("api", fleet)
		if err != nil {
			return err
		}
		own, err := local.NewTokenBucket(perReplica)
		if err != nil {
			return err
		}
		tiered, err := distributed.NewTiered(own, global)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  replica-%d:", i+1)
		for range attempts {
			d, err := tiered.AllowTier(ctx, "customer-42", 1)
			if err != nil {
				return err
			}
			switch d.DeniedBy {
			case distributed.TierNone:
				total++
				fmt.Fprint(out, " ok")
			case distributed.TierLocal:
				fmt.Fprint(out, " denied(replica)")
			case distributed.TierGlobal:
				fmt.Fprint(out, " denied(fleet)")
			}
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "admitted %d of %d\n", total, replicas*attempts)
	return nil
}
