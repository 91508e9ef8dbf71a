// Package bulwarkgrpc puts bulwark's patterns in gRPC interceptors, with
// the status codes and metadata gRPC clients already understand.
//
// # Server interceptors
//
// [Limit], [Breaker], [Bulkhead], [Shed] and [Timeout] each return an
// [*Interceptor]; its Unary and Stream methods go into
// grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor:
//
//	limit, err := bulwarkgrpc.Limit(limiter, bulwarkgrpc.WithKey(bulwarkgrpc.KeyByMetadata("x-api-key", nil)))
//	if err != nil { ... }
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(limit.Unary()),
//		grpc.ChainStreamInterceptor(limit.Stream()))
//
// A rate-limited call gets RESOURCE_EXHAUSTED with a google.rpc.RetryInfo
// detail and the grpc-retry-pushback-ms trailer, both giving the exact
// wait; an open breaker, a full bulkhead or shed load give UNAVAILABLE; a
// timeout DEADLINE_EXCEEDED. Rejections are trailers-only responses, the
// handler is not called, and on the server the error matches the bulwark
// sentinel behind it ([Error]). [WithDegradedTrailer] flags decisions
// taken while the shared store was unreachable; [WithRateLimitMetadata]
// sends the IETF RateLimit fields. [Chain] composes interceptors,
// [PerMethod] routes by method or service, and [ServerPolicies] builds
// each method's guard from policy stacks (package policy), re-read on
// every call. The allowed path allocates nothing.
//
// # Client interceptors
//
// A [Client] retries what gRPC's retry design (A6) deems safe, after
// exactly the server's pushback or RetryInfo delay; keeps one breaker per
// method ([WithMethodBreaker], counting codes by [DefaultIsFailure]);
// hedges methods declared idempotent ([WithIdempotent], [WithHedge]);
// applies deadline rules ([WithDeadline]); paces itself by what servers
// say of their quotas ([WithPacer], bulwarkhttp.Pacer); and takes
// per-method settings from policy stacks ([WithMethodPolicies]).
package bulwarkgrpc
