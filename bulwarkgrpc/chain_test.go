package bulwarkgrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"google.golang.org/grpc"
)

// recorder is an interceptor that appends its name to the trace before
// and after the rest of the chain.
func recorder(trace *[]string, name string) *Interceptor {
	return &Interceptor{guard: func(ctx context.Context, c *call, next nextFunc) (any, error) {
		*trace = append(*trace, name)
		resp, err := next(ctx, c)
		*trace = append(*trace, "/"+name)
		return resp, err
	}}
}

func TestChainNesting(t *testing.T) {
	for _, depth := range []int{1, 2, 3, 8, 9, 20} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			var trace []string
			// depth chains nested in one another, each of two recorders,
			// with a PerMethod in the middle of each.
			ic := recorder(&trace, "h")
			for d := depth; d > 0; d-- {
				pm, err := PerMethod(map[string]*Interceptor{methodSay: ic}, nil)
				if err != nil {
					t.Fatal(err)
				}
				ic = Chain(recorder(&trace, fmt.Sprint("a", d)), pm, recorder(&trace, fmt.Sprint("b", d)))
			}
			resp, err := ic.Unary()(context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: methodSay},
				func(ctx context.Context, req any) (any, error) { trace = append(trace, "handler"); return req, nil })
			if err != nil || resp != "req" {
				t.Fatalf("resp %v, err %v", resp, err)
			}
			// a1 → pm1 → (a2 → pm2 → … → h) and h's continuation is
			// b_depth's, whose continuation is b_(depth-1)'s … then the
			// handler.
			var want []string
			for d := 1; d <= depth; d++ {
				want = append(want, fmt.Sprint("a", d))
			}
			want = append(want, "h")
			for d := depth; d >= 1; d-- {
				want = append(want, fmt.Sprint("b", d))
			}
			want = append(want, "handler")
			for d := 1; d <= depth; d++ {
				want = append(want, fmt.Sprint("/b", d))
			}
			want = append(want, "/h")
			for d := depth; d >= 1; d-- {
				want = append(want, fmt.Sprint("/a", d))
			}
			if strings.Join(trace, " ") != strings.Join(want, " ") {
				t.Errorf("trace\n got %v\nwant %v", trace, want)
			}
		})
	}
}

func TestLimitAllowedPathAllocatesNothing(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	lim := func() *Interceptor {
		return mustLimit(t, tokenBucket(t, bulwark.Limit{Events: 1 << 30, Period: 1e9, Burst: 1 << 30}, clock),
			WithKey(KeyByMethod()))
	}
	for name, ic := range map[string]*Interceptor{"limit": lim(), "chain": Chain(lim(), lim())} {
		u := ic.Unary()
		info := &grpc.UnaryServerInfo{FullMethod: methodSay}
		h := func(ctx context.Context, req any) (any, error) { return req, nil }
		ctx := context.Background()
		u(ctx, "req", info, h) // warm the pool
		if n := testing.AllocsPerRun(1000, func() { _, _ = u(ctx, "req", info, h) }); n != 0 {
			t.Errorf("%s: %v allocations per allowed call, want 0", name, n)
		}
	}
}
