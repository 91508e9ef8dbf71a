package distributed_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

const (
	contentionProcs      = 4
	contentionGoroutines = 32
	contentionCalls      = 8 // per goroutine: 4×32×8 = 1024 calls
	contentionBurst      = 100
)

// contentionLimit: burst B with negligible refill (one token a day), or B
// events per day for the windows.
var contentionLimit = bulwark.Limit{Events: 1, Period: 24 * time.Hour, Burst: contentionBurst}

// TestExactnessUnderContention: 4 processes × 32 goroutines hammer one key.
// Each algorithm admits exactly B tokens in total: every decision is one
// atomic script, so no two callers can take the same token.
//
// The token bucket reads Redis TIME (its refill over the run is 1/86400 of
// a token, so it can add none). The windows run on a frozen injected clock
// so that no window boundary can fall inside the run; the sliding log then
// holds exactly B members: never more than Events in its window.
func TestExactnessUnderContention(t *testing.T) {
	if redistest.IsChild() {
		contentionChild(t)
		return
	}
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := c.(*redis.Client).Options().Addr
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			cmds := make([]*bytes.Buffer, contentionProcs)
			var wg sync.WaitGroup
			for i := range cmds {
				cmd := redistest.Child(t, t.Name(), "BW_ADDR="+addr, "BW_PREFIX="+prefix, "BW_ALG="+a.name)
				cmds[i] = &bytes.Buffer{}
				cmd.Stdout, cmd.Stderr = cmds[i], cmds[i]
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := cmd.Wait(); err != nil {
						t.Errorf("child: %v\n%s", err, cmds[i])
					}
				}()
			}
			wg.Wait()
			total := 0
			for _, out := range cmds {
				_, rest, ok := strings.Cut(out.String(), "ADMITTED=")
				if !ok {
					t.Fatalf("child output without a count:\n%s", out)
				}
				n, err := strconv.Atoi(strings.Fields(rest)[0])
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if total != contentionBurst {
				t.Errorf("%d processes × %d goroutines admitted %d in total, want exactly %d", contentionProcs, contentionGoroutines, total, contentionBurst)
			}
			if a.name == "sliding_log" {
				keys := redistest.Keys(t, c, prefix+":sl:")
				if len(keys) != 1 {
					t.Fatalf("log keys %q, want one", keys)
				}
				if n := c.ZCard(context.Background(), keys[0]).Val(); n != contentionBurst {
					t.Errorf("log holds %d members, want %d", n, contentionBurst)
				}
			}
		})
	}
	// The bucket refills in B days; the windows matter for at most 2 days.
	redistest.CheckTTLs(t, c, prefix, contentionBurst*24*time.Hour)
}

// contentionChild is the child's part: 32 goroutines on one key, then the
// number of admitted tokens on stdout.
func contentionChild(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: os.Getenv("BW_ADDR"), PoolSize: contentionGoroutines})
	defer c.Close()
	opts := []distributed.Option{distributed.WithPrefix(os.Getenv("BW_PREFIX")), distributed.WithTimeout(10 * time.Second)}
	alg := os.Getenv("BW_ALG")
	l := contentionLimit
	if alg != "token_bucket" {
		l = bulwark.Limit{Events: contentionBurst, Period: 24 * time.Hour}
		opts = append(opts, distributed.WithClock(fakeclock.New(fakeclock.Epoch)))
	}
	st, err := distributed.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var lim bulwark.Limiter
	for _, a := range algorithms {
		if a.name == alg {
			lim, err = a.redis(st, "contention", l)
		}
	}
	if lim == nil || err != nil {
		t.Fatalf("algorithm %q: %v", alg, err)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range contentionGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range contentionCalls {
				d, err := lim.Allow(context.Background(), "hot", 1)
				if err != nil || d.Degraded {
					t.Errorf("Allow: %+v, %v", d, err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("ADMITTED=%d\n", admitted.Load())
}
