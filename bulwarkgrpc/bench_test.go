package bulwarkgrpc

import (
	"context"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"google.golang.org/grpc"
)

// benchLimiter is a token bucket that never runs dry during a benchmark.
func benchLimiter(b *testing.B) *local.TokenBucket {
	b.Helper()
	tb, err := local.NewTokenBucket(bulwark.Limit{Events: 1 << 30, Period: 1000000000, Burst: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	return tb
}

// middlewareLimiter adapts the same bucket to go-grpc-middleware's
// ratelimit.Limiter, so both interceptors make the same decision.
type middlewareLimiter struct{ tb *local.TokenBucket }

func (m middlewareLimiter) Limit(ctx context.Context) error {
	d, err := m.tb.Allow(ctx, "bench", 1)
	if err != nil {
		return err
	}
	return d.Err()
}

func benchUnary(b *testing.B, ic grpc.UnaryServerInterceptor) {
	info := &grpc.UnaryServerInfo{FullMethod: methodSay}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	ctx := context.Background()
	req := stringMsgOf("ok")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ic(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnaryLimitAllowed compares the allowed path of the unary rate
// limit interceptors, both over the same in-memory token bucket: no
// interceptor's work at all (the handler alone), go-grpc-middleware's
// ratelimit interceptor, and Limit.
func BenchmarkUnaryLimitAllowed(b *testing.B) {
	b.Run("handler-only", func(b *testing.B) {
		benchUnary(b, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		})
	})
	b.Run("go-grpc-middleware", func(b *testing.B) {
		benchUnary(b, ratelimit.UnaryServerInterceptor(middlewareLimiter{benchLimiter(b)}))
	})
	b.Run("bulwarkgrpc", func(b *testing.B) {
		ic, err := Limit(benchLimiter(b), WithKey(func(context.Context, string) string { return "bench" }))
		if err != nil {
			b.Fatal(err)
		}
		benchUnary(b, ic.Unary())
	})
	b.Run("bulwarkgrpc-peer-key", func(b *testing.B) {
		ic, err := Limit(benchLimiter(b))
		if err != nil {
			b.Fatal(err)
		}
		benchUnary(b, ic.Unary())
	})
}

// BenchmarkUnaryLoopbackRPC puts the same three cases around a whole unary
// RPC over an in-memory connection (bufconn), for scale: what the
// interceptors cost next to the call they guard.
func BenchmarkUnaryLoopbackRPC(b *testing.B) {
	cases := []struct {
		name string
		ic   func(b *testing.B) grpc.UnaryServerInterceptor
	}{
		{"no-interceptor", nil},
		{"go-grpc-middleware", func(b *testing.B) grpc.UnaryServerInterceptor {
			return ratelimit.UnaryServerInterceptor(middlewareLimiter{benchLimiter(b)})
		}},
		{"bulwarkgrpc", func(b *testing.B) grpc.UnaryServerInterceptor {
			ic, err := Limit(benchLimiter(b), WithKey(func(context.Context, string) string { return "bench" }))
			if err != nil {
				b.Fatal(err)
			}
			return ic.Unary()
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var sopts []grpc.ServerOption
			if tc.ic != nil {
				sopts = append(sopts, grpc.ChainUnaryInterceptor(tc.ic(b)))
			}
			conn := startBufconn(b, newEcho(), sopts)
			ctx := context.Background()
			in, out := stringMsgOf("ok"), new(stringMsg)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := conn.Invoke(ctx, methodSay, in, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
