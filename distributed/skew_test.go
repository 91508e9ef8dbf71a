package distributed_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// offsetClock is a process clock off by a fixed amount.
type offsetClock time.Duration

func (o offsetClock) Now() time.Time { return time.Now().Add(time.Duration(o)) }

// TestClockSkew: two replicas whose clocks are a minute apart share one
// token bucket (1 token per minute, burst 5). The slow replica drains the
// bucket, then the fast one asks.
//
// When each replica passes its own time (WithClock, as a client-clock
// design would), the fast replica sees a minute of refill that never
// happened and gets a token. With the default, scripts read Redis TIME:
// neither store reads its process clock, so their skew cannot matter, and
// the bucket stays empty.
func TestClockSkew(t *testing.T) {
	l := bulwark.Limit{Events: 1, Period: time.Minute, Burst: 5}
	ctx := context.Background()
	run := func(t *testing.T, slowOpts, fastOpts []distributed.Option) (slowAdmitted, fastAdmitted int) {
		c := redistest.Default(t)
		prefix := redistest.Prefix(t, c)
		c2 := redistest.Default(t) // a second client, as on another replica
		slow, err := distributed.New(c, append(slowOpts, distributed.WithPrefix(prefix))...)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := distributed.New(c2, append(fastOpts, distributed.WithPrefix(prefix))...)
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := slow.TokenBucket("skew", l)
		fb, _ := fast.TokenBucket("skew", l)
		for range 6 {
			if d, err := sb.Allow(ctx, "k", 1); err != nil || d.Degraded {
				t.Fatalf("slow replica: %+v, %v", d, err)
			} else if d.Allowed {
				slowAdmitted++
			}
		}
		for range 3 {
			if d, err := fb.Allow(ctx, "k", 1); err != nil || d.Degraded {
				t.Fatalf("fast replica: %+v, %v", d, err)
			} else if d.Allowed {
				fastAdmitted++
			}
		}
		return slowAdmitted, fastAdmitted
	}
	t.Run("client clocks", func(t *testing.T) {
		s, f := run(t,
			[]distributed.Option{distributed.WithClock(offsetClock(-30 * time.Second))},
			[]distributed.Option{distributed.WithClock(offsetClock(30 * time.Second))})
		if s != 5 || f != 1 {
			t.Errorf("admitted slow %d, fast %d; the skewed clocks were expected to give the fast replica one token", s, f)
		}
	})
	t.Run("server TIME", func(t *testing.T) {
		s, f := run(t, nil, nil)
		if s != 5 || f != 0 {
			t.Errorf("admitted slow %d, fast %d; want 5 and 0: the replicas share one clock", s, f)
		}
	})
}
