package bulwarkgrpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func mustLimit(t *testing.T, l bulwark.Limiter, opts ...ServerOption) *Interceptor {
	t.Helper()
	ic, err := Limit(l, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

func serve(ic *Interceptor) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(ic.Unary()), grpc.ChainStreamInterceptor(ic.Stream())}
}

func tokenBucket(t *testing.T, l bulwark.Limit, clock bulwark.Clock) *local.TokenBucket {
	t.Helper()
	tb, err := local.NewTokenBucket(l, local.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("no RetryInfo detail in %v", err)
	return 0
}

func TestLimitUnaryRejectsWithRetryInfoAndPushback(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	// 2 per minute: the third call waits exactly 30s for a token.
	ic := mustLimit(t, tokenBucket(t, bulwark.PerMinute(2), clock))
	addr := startServer(t, newEcho(), serve(ic)...)
	conn := dial(t, addr)
	ctx := ctxT(t)
	for i := range 2 {
		if _, err, _, _ := say(ctx, conn, "ok"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err, hdr, trl := say(ctx, conn, "ok")
	wantCode(t, err, codes.ResourceExhausted)
	if got := retryDelay(t, err); got != 30*time.Second {
		t.Errorf("RetryInfo delay = %v, want 30s", got)
	}
	if got := trl.Get(PushbackKey); len(got) != 1 || got[0] != "30000" {
		t.Errorf("pushback trailer = %q, want [30000]", got)
	}
	if hdr != nil && len(hdr) > 0 {
		t.Errorf("a rejection must be trailers-only, got headers %v", hdr)
	}
	clock.Advance(30 * time.Second)
	if _, err, _, _ := say(ctx, conn, "ok"); err != nil {
		t.Fatalf("after the pushback: %v", err)
	}
}

func TestLimitStreamRejects(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	ic := mustLimit(t, tokenBucket(t, bulwark.PerSecond(1), clock))
	e := newEcho()
	addr := startServer(t, e, serve(ic)...)
	conn := dial(t, addr)
	ctx := ctxT(t)
	got, err, _ := watch(ctx, conn, "a")
	if err != nil || len(got) != 3 {
		t.Fatalf("first stream: %v %v", got, err)
	}
	got, err, cs := watch(ctx, conn, "b")
	wantCode(t, err, codes.ResourceExhausted)
	if len(got) != 0 {
		t.Errorf("rejected stream delivered %v", got)
	}
	if d := retryDelay(t, err); d != time.Second {
		t.Errorf("RetryInfo delay = %v, want 1s", d)
	}
	if p := cs.Trailer().Get(PushbackKey); len(p) != 1 || p[0] != "1000" {
		t.Errorf("pushback trailer = %q, want [1000]", p)
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	// Bidirectional streams are limited the same way.
	cs2, err := conn.NewStream(ctx, chatDesc, methodChat)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs2.CloseSend()
	wantCode(t, cs2.RecvMsg(new(stringMsg)), codes.ResourceExhausted)
}

func TestLimitKeys(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	cases := []struct {
		name string
		key  KeyFunc
		// calls made with these x-tenant values; want the results
		tenants []string
		want    []codes.Code
	}{
		{"peer", KeyByPeer(), []string{"a", "b"}, []codes.Code{codes.OK, codes.ResourceExhausted}},
		{"metadata", KeyByMetadata("x-tenant", nil), []string{"a", "b", "a", ""}, []codes.Code{codes.OK, codes.OK, codes.ResourceExhausted, codes.OK}},
		{"method", KeyByMethod(), []string{"a", "b"}, []codes.Code{codes.OK, codes.ResourceExhausted}},
		{"join", KeyJoin(KeyByPeer(), KeyByMetadata("x-tenant", nil), nil), []string{"a", "a", "b"}, []codes.Code{codes.OK, codes.ResourceExhausted, codes.OK}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := mustLimit(t, tokenBucket(t, bulwark.PerMinute(1), clock), WithKey(tc.key))
			conn := dial(t, startServer(t, newEcho(), serve(ic)...))
			for i, tenant := range tc.tenants {
				ctx := ctxT(t)
				if tenant != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", tenant)
				}
				_, err, _, _ := say(ctx, conn, "ok")
				if got := status.Code(err); got != tc.want[i] {
					t.Errorf("call %d (%q) = %v, want %v", i, tenant, got, tc.want[i])
				}
			}
		})
	}
}

func TestLimitRateLimitMetadata(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	ic := mustLimit(t, tokenBucket(t, bulwark.PerSecond(2), clock), WithRateLimitMetadata("api", time.Second))
	conn := dial(t, startServer(t, newEcho(), serve(ic)...))
	ctx := ctxT(t)
	_, err, hdr, _ := say(ctx, conn, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hdr.Get(RateLimitPolicyKey), `"api";q=2;w=1`; len(got) != 1 || got[0] != want {
		t.Errorf("allowed: %s = %q, want %q", RateLimitPolicyKey, got, want)
	}
	if got, want := hdr.Get(RateLimitKey), `"api";r=1;t=1`; len(got) != 1 || got[0] != want {
		t.Errorf("allowed: %s = %q, want %q", RateLimitKey, got, want)
	}
	_, _, _, _ = say(ctx, conn, "ok")
	_, err, hdr, trl := say(ctx, conn, "ok")
	wantCode(t, err, codes.ResourceExhausted)
	if len(hdr) != 0 {
		t.Errorf("denied call carried headers %v", hdr)
	}
	if got, want := trl.Get(RateLimitKey), `"api";r=0;t=1`; len(got) != 1 || got[0] != want {
		t.Errorf("denied: %s = %q, want %q", RateLimitKey, got, want)
	}
}

// degradedLimiter answers like a store that fell back to its local twin.
type degradedLimiter struct{ allow bool }

func (d degradedLimiter) Allow(context.Context, string, int) (bulwark.Decision, error) {
	dec := bulwark.Decision{Allowed: d.allow, Limit: 5, Degraded: true}
	if !d.allow {
		dec.RetryAfter = 250 * time.Millisecond
	}
	return dec, nil
}

func TestLimitDegradedTrailer(t *testing.T) {
	for _, allow := range []bool{true, false} {
		ic := mustLimit(t, degradedLimiter{allow}, WithDegradedTrailer(""))
		conn := dial(t, startServer(t, newEcho(), serve(ic)...))
		_, err, _, trl := say(ctxT(t), conn, "ok")
		if allow != (err == nil) {
			t.Fatalf("allow=%v: err %v", allow, err)
		}
		if got := trl.Get(DefaultDegradedKey); len(got) != 1 || got[0] != "true" {
			t.Errorf("allow=%v: degraded trailer = %q", allow, got)
		}
		if !allow {
			if p := trl.Get(PushbackKey); len(p) != 1 || p[0] != "250" {
				t.Errorf("pushback = %q, want [250]", p)
			}
		}
		// Without the option nothing is added.
		plain := mustLimit(t, degradedLimiter{allow})
		conn = dial(t, startServer(t, newEcho(), serve(plain)...))
		if _, _, _, trl := say(ctxT(t), conn, "ok"); len(trl.Get(DefaultDegradedKey)) != 0 {
			t.Errorf("degraded trailer sent without the option")
		}
	}
}

// costLimiter fails like a limiter asked for more than its capacity.
func TestLimitLimiterErrorIsInternal(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	ic := mustLimit(t, tokenBucket(t, bulwark.PerSecond(2), clock),
		WithCost(func(context.Context, string) int { return 3 }))
	_, err, _, _ := say(ctxT(t), dial(t, startServer(t, newEcho(), serve(ic)...)), "ok")
	wantCode(t, err, codes.Internal)
}

func newBreaker(t *testing.T, cfg bulwark.BreakerConfig) *local.Breaker {
	t.Helper()
	b, err := local.NewBreaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBreakerServerCountsCodes(t *testing.T) {
	cfg := bulwark.BreakerConfig{Window: time.Minute, MinimumCalls: 100, FailureRate: 1,
		ConsecutiveFailures: 3, OpenFor: time.Hour, HalfOpenCalls: 1}
	b := newBreaker(t, cfg)
	ic, err := Breaker(b)
	if err != nil {
		t.Fatal(err)
	}
	e := newEcho()
	conn := dial(t, startServer(t, e, serve(ic)...))
	ctx := ctxT(t)
	// Client errors are successes for the handler's health.
	for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.FailedPrecondition, codes.Internal, codes.Unavailable} {
		_, err, _, _ := say(ctx, conn, "code="+itoa(int(c)))
		wantCode(t, err, c)
	}
	if s := b.State(ctx); s != bulwark.Closed {
		t.Fatalf("breaker %v after 2 failures, want closed", s)
	}
	_, err, _, _ = say(ctx, conn, "code="+itoa(int(codes.DataLoss)))
	wantCode(t, err, codes.DataLoss)
	if s := b.State(ctx); s != bulwark.Open {
		t.Fatalf("breaker %v after 3 failures in a row, want open", s)
	}
	before := e.calls.Load()
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.Unavailable)
	if status.Convert(err).Message() != "circuit breaker open" {
		t.Errorf("message = %q", status.Convert(err).Message())
	}
	_, err, _ = watch(ctx, conn, "a")
	wantCode(t, err, codes.Unavailable)
	if n := e.calls.Load(); n != before {
		t.Errorf("handler ran %d times while open", n-before)
	}
}

func TestBreakerServerStreamOutcome(t *testing.T) {
	cfg := bulwark.BreakerConfig{Window: time.Minute, MinimumCalls: 100, FailureRate: 1,
		ConsecutiveFailures: 2, OpenFor: time.Hour, HalfOpenCalls: 1}
	b := newBreaker(t, cfg)
	ic, _ := Breaker(b)
	conn := dial(t, startServer(t, newEcho(), serve(ic)...))
	ctx := ctxT(t)
	for range 2 {
		_, err, _ := watch(ctx, conn, "code=13")
		wantCode(t, err, codes.Internal)
	}
	if s := b.State(ctx); s != bulwark.Open {
		t.Fatalf("breaker %v after two failed streams", s)
	}
}

func TestBulkheadServer(t *testing.T) {
	bh, err := local.NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := Bulkhead(bh)
	if err != nil {
		t.Fatal(err)
	}
	e := newEcho()
	e.entered = make(chan string, 4)
	conn := dial(t, startServer(t, e, serve(ic)...))
	ctx := ctxT(t)
	errc := make(chan error, 1)
	go func() { _, err, _, _ := say(ctx, conn, "block"); errc <- err }()
	<-e.entered // the first call holds the only slot
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.Unavailable)
	if !errors.Is(status.Convert(err).Err(), status.Convert(err).Err()) || status.Convert(err).Message() != "bulkhead full" {
		t.Errorf("message = %q", status.Convert(err).Message())
	}
	_, err, _ = watch(ctx, conn, "a")
	wantCode(t, err, codes.Unavailable)
	closeRelease(e)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The slot is back.
	if _, err, _, _ := say(ctx, conn, "ok"); err != nil {
		t.Fatal(err)
	}
}

func TestBulkheadStreamHoldsSlot(t *testing.T) {
	bh, _ := local.NewBulkhead(bulwark.BulkheadConfig{MaxConcurrent: 1})
	ic, _ := Bulkhead(bh)
	e := newEcho()
	e.entered = make(chan string, 4)
	conn := dial(t, startServer(t, e, serve(ic)...))
	ctx := ctxT(t)
	cs, err := conn.NewStream(ctx, chatDesc, methodChat)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(stringMsgOf("hi")); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(new(stringMsg)); err != nil { // the stream is open and holds the slot
		t.Fatal(err)
	}
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.Unavailable)
	_ = cs.CloseSend()
	if err := cs.RecvMsg(new(stringMsg)); err == nil {
		t.Fatal("stream did not end")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err, _, _ = say(ctx, conn, "ok")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released after the stream ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShedServer(t *testing.T) {
	sh, err := local.NewShedder(local.ShedderConfig{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	ic, err := Shed(ShedderFunc(sh.AcquirePriority), WithPriority(func(ctx context.Context, method string) int {
		p := 1
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-priority")) > 0 {
			p = atoi(md.Get("x-priority")[0])
		}
		seen = append(seen, p)
		return p
	}))
	if err != nil {
		t.Fatal(err)
	}
	e := newEcho()
	e.entered = make(chan string, 4)
	conn := dial(t, startServer(t, e, serve(ic)...))
	ctx := ctxT(t)
	errc := make(chan error, 1)
	go func() { _, err, _, _ := say(ctx, conn, "block"); errc <- err }()
	<-e.entered
	_, err, _, _ = say(metadata.AppendToOutgoingContext(ctx, "x-priority", "2"), conn, "ok")
	wantCode(t, err, codes.Unavailable)
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Errorf("priorities passed to the shedder = %v, want [1 2]", seen)
	}
	if status.Convert(err).Message() != "load shed" {
		t.Errorf("message = %q", status.Convert(err).Message())
	}
	_, err, _ = watch(ctx, conn, "a") // streams are shed the same way
	wantCode(t, err, codes.Unavailable)
	closeRelease(e)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutServer(t *testing.T) {
	ic, err := Timeout(50 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	e := newEcho()
	conn := dial(t, startServer(t, e, serve(ic)...))
	ctx := ctxT(t)
	// A handler that watches its context.
	_, err, _, _ = say(ctx, conn, "block")
	wantCode(t, err, codes.DeadlineExceeded)
	if status.Convert(err).Message() != "timeout" {
		t.Errorf("message = %q", status.Convert(err).Message())
	}
	// A handler that ignores it is abandoned.
	_, err, _, _ = say(ctx, conn, "block-hard")
	wantCode(t, err, codes.DeadlineExceeded)
	// A stream handler that watches its context.
	_, err, _ = watch(ctx, conn, "block")
	wantCode(t, err, codes.DeadlineExceeded)
	// A panic in a handler run on the timeout's goroutine is recovered.
	_, err, _, _ = say(ctx, conn, "panic")
	wantCode(t, err, codes.Internal)
	if n := ic.Panics(); n != 1 {
		t.Errorf("Panics() = %d, want 1", n)
	}
	if n := Chain(nil, ic).Panics(); n != 1 {
		t.Errorf("a chain's Panics() = %d, want its timeout's 1", n)
	}
	// Calls within the budget pass, and the handler sees the deadline.
	long, err := Timeout(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn = dial(t, startServer(t, newEcho(), serve(long)...))
	got, err, _, _ := say(ctx, conn, "deadline")
	if d, perr := time.ParseDuration(got); err != nil || perr != nil || d < 20*time.Second || d > 30*time.Second {
		t.Fatalf("deadline call: %q %v; want the handler to see about 30s", got, err)
	}
}

func TestChainAndPerMethod(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	tight := mustLimit(t, tokenBucket(t, bulwark.PerMinute(1), clock))
	loose := mustLimit(t, tokenBucket(t, bulwark.PerMinute(3), clock))
	tm, _ := Timeout(time.Minute)
	pm, err := PerMethod(map[string]*Interceptor{
		methodSay:      Chain(tm, tight),
		"/test.Echo/*": loose,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, startServer(t, newEcho(), serve(pm)...))
	ctx := ctxT(t)
	if _, err, _, _ := say(ctx, conn, "ok"); err != nil {
		t.Fatal(err)
	}
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.ResourceExhausted)
	for i := range 3 { // Watch goes through the service's limiter
		if _, err, _ := watch(ctx, conn, "a"); err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	_, err, _ = watch(ctx, conn, "a")
	wantCode(t, err, codes.ResourceExhausted)

	for _, bad := range []string{"", "Say", "/test.Echo", "/test.Echo/", "//Say", "/a/b/c", "/a/b*"} {
		if _, err := PerMethod(map[string]*Interceptor{bad: loose}, nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("PerMethod(%q) error = %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestServerConfigErrors(t *testing.T) {
	var nilBucket *local.TokenBucket
	var nilBreaker *local.Breaker
	var nilBulkhead *local.Bulkhead
	var nilShed ShedderFunc
	checks := map[string]error{}
	_, checks["nil limiter"] = Limit(nil)
	_, checks["typed nil limiter"] = Limit(nilBucket)
	_, checks["nil breaker"] = Breaker(nilBreaker)
	_, checks["nil bulkhead"] = Bulkhead(nilBulkhead)
	_, checks["nil shedder"] = Shed(nilShed)
	_, checks["zero timeout"] = Timeout(0)
	clock := fakeclock.New(fakeclock.Epoch)
	tb := tokenBucket(t, bulwark.PerSecond(1), clock)
	_, checks["nil key"] = Limit(tb, WithKey(nil))
	_, checks["nil cost"] = Limit(tb, WithCost(nil))
	_, checks["bad degraded key"] = Limit(tb, WithDegradedTrailer("Bad Key"))
	_, checks["grpc- key"] = Limit(tb, WithDegradedTrailer("grpc-x"))
	_, checks["negative window"] = Limit(tb, WithRateLimitMetadata("x", -time.Second))
	_, checks["nil failure"] = Breaker(newBreaker(t, bulwark.DefaultBreakerConfig()), WithFailure(nil))
	_, checks["nil priority"] = Shed(ShedderFunc(func(context.Context, int) (func(), error) { return func() {}, nil }), WithPriority(nil))
	for name, err := range checks {
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestServerErrorsMatchSentinels(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	ic := mustLimit(t, tokenBucket(t, bulwark.PerMinute(1), clock))
	var got error
	outer := grpc.UnaryServerInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			got = err
		}
		return resp, err
	})
	conn := dial(t, startServer(t, newEcho(), grpc.ChainUnaryInterceptor(outer, ic.Unary())))
	ctx := ctxT(t)
	_, _, _, _ = say(ctx, conn, "ok")
	_, _, _, _ = say(ctx, conn, "ok")
	if !errors.Is(got, bulwark.ErrRateLimited) {
		t.Fatalf("server-side error %v does not match ErrRateLimited", got)
	}
	var rl *bulwark.RateLimitedError
	if !errors.As(got, &rl) || rl.RetryAfter != time.Minute {
		t.Fatalf("server-side error %v: RetryAfter not a minute", got)
	}
}

func TestServerObserver(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	obs := &events{}
	ic := mustLimit(t, tokenBucket(t, bulwark.PerMinute(1), clock), WithObserver(obs), WithName("api"))
	conn := dial(t, startServer(t, newEcho(), serve(ic)...))
	_, _, _, _ = say(ctxT(t), conn, "ok")
	_, _, _, _ = say(ctxT(t), conn, "ok")
	ev := obs.of(bulwark.EventRejected)
	if len(ev) != 1 || ev[0].Pattern != PatternServer || ev[0].Name != "api" || !errors.Is(ev[0].Err, bulwark.ErrRateLimited) {
		t.Fatalf("rejection events = %+v", ev)
	}
	// A typed nil observer is no observer: rejections do not panic.
	var nilObs *events
	quiet := mustLimit(t, tokenBucket(t, bulwark.PerMinute(1), clock), WithObserver(nilObs))
	conn = dial(t, startServer(t, newEcho(), serve(quiet)...))
	_, _, _, _ = say(ctxT(t), conn, "ok")
	_, err, _, _ := say(ctxT(t), conn, "ok")
	wantCode(t, err, codes.ResourceExhausted)
}
