package distributed_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// TestShrunkenLimit runs two replicas (two stores on one prefix, one fake
// clock) configured differently for one name: the wide one fills a key past
// the narrow one's limit, as happens mid rolling deploy when a limit is
// lowered. The narrow one must then deny from Redis, not fall back locally
// (a decoder rejecting its reply would admit, degraded), stay healthy, and
// admit again once its own RetryAfter has passed.
func TestShrunkenLimit(t *testing.T) {
	ctx := context.Background()
	wide := bulwark.Limit{Events: 10, Period: time.Second}
	narrow := bulwark.Limit{Events: 3, Period: time.Second}
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch.Add(250 * time.Millisecond))
			sa, c, prefix := testStore(t, nil, distributed.WithClock(clk))
			sb, _, _ := testStore(t, c, distributed.WithClock(clk), distributed.WithPrefix(prefix))
			la, err := a.redis(sa, "shrink", wide)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := a.redis(sb, "shrink", narrow)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				d, err := la.Allow(ctx, "k", 1)
				if err != nil || !d.Allowed || d.Degraded {
					t.Fatalf("wide call %d: %+v, %v; want admitted from Redis", i, d, err)
				}
			}
			var first bulwark.Decision
			for i := range 5 {
				d, err := lb.Allow(ctx, "k", 1)
				if err != nil {
					t.Fatalf("narrow call %d: %v", i, err)
				}
				if d.Allowed || d.Degraded {
					t.Fatalf("narrow call %d: %+v; want denied from Redis", i, d)
				}
				if d.Limit != narrow.Events || d.Remaining != 0 || d.RetryAfter <= 0 || d.ResetAfter < d.RetryAfter {
					t.Fatalf("narrow call %d: %+v; want Limit %d, Remaining 0, 0 < RetryAfter <= ResetAfter",
						i, d, narrow.Events)
				}
				if i == 0 {
					first = d
				} else if d != first {
					t.Fatalf("narrow call %d: %+v; want the same as the first denial %+v (a denial writes nothing)", i, d, first)
				}
			}
			if !sb.Healthy() {
				t.Fatal("the narrow replica's store turned degraded on denials")
			}
			// The wide replica still sees its own remaining budget.
			d, err := la.Allow(ctx, "k", 1)
			if err != nil || !d.Allowed || d.Degraded || d.Remaining != 1 && a.name != "sliding_window" {
				t.Fatalf("wide call after the narrow denials: %+v, %v; want admitted, Remaining 1", d, err)
			}
			// After the narrow replica's RetryAfter (plus what the wide
			// replica's last call added), the narrow one admits again.
			clk.Advance(first.RetryAfter)
			for i := 0; ; i++ {
				d, err := lb.Allow(ctx, "k", 1)
				if err != nil || d.Degraded {
					t.Fatalf("narrow call after RetryAfter: %+v, %v", d, err)
				}
				if d.Allowed {
					break
				}
				if i == 3 {
					t.Fatalf("narrow replica still denied %v after its RetryAfter: %+v", 3*time.Second, d)
				}
				clk.Advance(time.Second)
			}
		})
	}
}
