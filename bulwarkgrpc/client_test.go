package bulwarkgrpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

func mustClient(t *testing.T, opts ...ClientOption) *Client {
	t.Helper()
	c, err := NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func withClient(c *Client) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.Unary()), grpc.WithChainStreamInterceptor(c.Stream())}
}

// events records observed events.
type events struct {
	mu sync.Mutex
	ev []bulwark.Event
}

func (e *events) Observe(ev bulwark.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) of(k bulwark.EventKind) []bulwark.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []bulwark.Event
	for _, ev := range e.ev {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

type callResult struct {
	out string
	err error
}

func sayAsync(ctx context.Context, conn *grpc.ClientConn, in string) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() { out, err, _, _ := say(ctx, conn, in); ch <- callResult{out, err} }()
	return ch
}

// retriesAfterExactly checks that a call failing first with cmd is retried
// once the fake clock has moved by exactly want, not a microsecond before.
func retriesAfterExactly(t *testing.T, cmd string, want time.Duration) {
	t.Helper()
	clock := fakeclock.New(fakeclock.Epoch)
	obs := &events{}
	cl := mustClient(t, WithClock(clock), WithClientObserver(obs))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	res := sayAsync(ctxT(t), conn, "first "+cmd)
	clock.WaitTimers(1)
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("calls before the wait = %d, want 1", n)
	}
	if ev := obs.of(bulwark.EventRetry); len(ev) != 1 || ev[0].Duration != want {
		t.Fatalf("retry events = %+v, want one with Duration %v", ev, want)
	}
	clock.Advance(want - time.Microsecond)
	if clock.Timers() != 1 {
		t.Fatalf("the retry fired before the pushback had passed")
	}
	clock.Advance(time.Microsecond)
	r := <-res
	if r.err != nil || r.out != "ok" {
		t.Fatalf("retried call = %q, %v", r.out, r.err)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("calls = %d, want 2", n)
	}
}

func TestClientRetriesAfterExactPushback(t *testing.T) {
	retriesAfterExactly(t, "pushback=1500 code=14", 1500*time.Millisecond)
}

func TestClientRetriesAfterExactRetryInfo(t *testing.T) {
	// RESOURCE_EXHAUSTED is retried because the server said how long.
	retriesAfterExactly(t, "retryinfo=2250", 2250*time.Millisecond)
}

func TestClientPushbackWinsOverRetryInfo(t *testing.T) {
	retriesAfterExactly(t, "pushback=700 retryinfo=5000", 700*time.Millisecond)
}

func TestClientRetriesServerLimiter(t *testing.T) {
	// End to end: the server's limiter and the client share a fake clock;
	// the client waits exactly the pushback the limiter advised, and the
	// retry is admitted.
	clock := fakeclock.New(fakeclock.Epoch)
	ic := mustLimit(t, tokenBucket(t, bulwark.PerSecond(4), clock)) // one token every 250ms
	obs := &events{}
	cl := mustClient(t, WithClock(clock), WithClientObserver(obs))
	e := newEcho()
	conn := dial(t, startServer(t, e, serve(ic)...), withClient(cl)...)
	ctx := ctxT(t)
	for range 4 {
		if _, err, _, _ := say(ctx, conn, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	res := sayAsync(ctx, conn, "ok")
	clock.WaitTimers(1)
	if ev := obs.of(bulwark.EventRetry); len(ev) != 1 || ev[0].Duration != 250*time.Millisecond {
		t.Fatalf("retry events = %+v, want one after 250ms", ev)
	}
	clock.Advance(250 * time.Millisecond)
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
}

func TestClientDoesNotRetryWhatIsUnsafe(t *testing.T) {
	cases := []struct {
		name, cmd string
		want      codes.Code
	}{
		{"committed: headers were sent", "header code=14", codes.Unavailable},
		{"negative pushback", "pushback=-1 code=14", codes.Unavailable},
		{"malformed pushback", "pushback=soon code=14", codes.Unavailable},
		{"deadline exceeded", "code=4", codes.DeadlineExceeded},
		{"internal", "code=13", codes.Internal},
		{"unknown", "code=2", codes.Unknown},
		{"resource exhausted without advice", "code=8", codes.ResourceExhausted},
		{"invalid argument", "code=3", codes.InvalidArgument},
		{"aborted", "code=10", codes.Aborted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := mustClient(t, WithBackoff(time.Microsecond, time.Microsecond))
			e := newEcho()
			conn := dial(t, startServer(t, e), withClient(cl)...)
			_, err, _, _ := say(ctxT(t), conn, tc.cmd)
			wantCode(t, err, tc.want)
			if n := e.calls.Load(); n != 1 {
				t.Errorf("calls = %d, want 1 (no retry)", n)
			}
		})
	}
}

func TestClientBackoffWithoutAdvice(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	obs := &events{}
	cl := mustClient(t, WithClock(clock), WithClientObserver(obs), WithMaxRetries(2),
		WithBackoff(100*time.Millisecond, time.Second), withRandom(func() float64 { return 0.5 }))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	res := sayAsync(ctxT(t), conn, "code=14")
	for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		clock.WaitTimers(1)
		ev := obs.of(bulwark.EventRetry)
		if got := ev[len(ev)-1].Duration; got != want {
			t.Fatalf("back-off = %v, want %v", got, want)
		}
		clock.Advance(want)
	}
	r := <-res
	wantCode(t, r.err, codes.Unavailable)
	if n := e.calls.Load(); n != 3 {
		t.Errorf("calls = %d, want 3 (two retries)", n)
	}
}

func TestClientWaitLimits(t *testing.T) {
	cl := mustClient(t, WithMaxPushback(10*time.Second))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	// Longer than the cap: returned at once.
	_, err, _, _ := say(ctxT(t), conn, "pushback=60000 code=14")
	wantCode(t, err, codes.Unavailable)
	// Longer than the deadline leaves: returned at once.
	ctx, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
	defer cancel()
	_, err, _, _ = say(ctx, conn, "pushback=5000 code=14")
	wantCode(t, err, codes.Unavailable)
	if n := e.calls.Load(); n != 2 {
		t.Errorf("calls = %d, want 2 (no retry)", n)
	}
}

func TestClientRetryBudget(t *testing.T) {
	budget, err := local.NewRetryBudget(local.BudgetConfig{Ratio: 0.000001, MinPerSecond: 0, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cl := mustClient(t, WithRetryBudget(budget), WithBackoff(time.Microsecond, time.Microsecond))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	_, err, _, _ = say(ctxT(t), conn, "code=14")
	wantCode(t, err, codes.Unavailable)
	if n := e.calls.Load(); n != 1 {
		t.Errorf("calls = %d, want 1: the budget allows no retry", n)
	}
}

func TestClientBreakerCountsCodes(t *testing.T) {
	var mu sync.Mutex
	made := map[string]*local.Breaker{}
	cl := mustClient(t, WithMaxRetries(0), WithMethodBreaker(func(method string) bulwark.Breaker {
		b := newBreaker(t, bulwark.BreakerConfig{Window: time.Minute, MinimumCalls: 100, FailureRate: 1,
			ConsecutiveFailures: 4, OpenFor: time.Hour, HalfOpenCalls: 1})
		mu.Lock()
		made[method] = b
		mu.Unlock()
		return b
	}))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	ctx := ctxT(t)
	// Four failures, each followed by a success for the dependency's health.
	fails := []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.ResourceExhausted}
	oks := []codes.Code{codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.Unauthenticated}
	for i := range fails {
		_, err, _, _ := say(ctx, conn, "code="+itoa(int(fails[i])))
		wantCode(t, err, fails[i])
		_, err, _, _ = say(ctx, conn, "code="+itoa(int(oks[i])))
		wantCode(t, err, oks[i])
	}
	b := made[methodSay]
	if s := b.State(ctx); s != bulwark.Closed {
		t.Fatalf("breaker %v: successes in between must reset the run", s)
	}
	for _, c := range fails {
		_, err, _, _ := say(ctx, conn, "code="+itoa(int(c)))
		wantCode(t, err, c)
	}
	if s := b.State(ctx); s != bulwark.Open {
		t.Fatalf("breaker %v after 4 failures in a row", s)
	}
	before := e.calls.Load()
	_, err, _, _ := say(ctx, conn, "ok")
	wantCode(t, err, codes.Unavailable)
	if !errors.Is(err, bulwark.ErrOpen) {
		t.Errorf("error %v does not match ErrOpen", err)
	}
	if e.calls.Load() != before {
		t.Errorf("a call was sent while the breaker was open")
	}
	// Per method: the stream method has its own breaker, still closed.
	if _, err, _ := watch(ctx, conn, "a"); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// A stream's outcome is reported when it ends.
	for range 4 {
		_, err, _ := watch(ctx, conn, "code=14")
		wantCode(t, err, codes.Unavailable)
	}
	_, err = conn.NewStream(ctx, watchDesc, methodWatch)
	if !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("stream open with an open breaker: %v", err)
	}
}

func TestClientHedgesIdempotentMethods(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	obs := &events{}
	cl := mustClient(t, WithClock(clock), WithClientObserver(obs), WithHedge(50*time.Millisecond, 1), WithIdempotent("/test.Echo/*"))
	e := newEcho()
	e.entered = make(chan string, 4)
	firstCancelled := make(chan struct{})
	e.onCall = func(ctx context.Context, in string) {
		if e.calls.Load() == 1 { // the first attempt is slow
			<-ctx.Done()
			close(firstCancelled)
		}
	}
	conn := startBufconn(t, e, nil, withClient(cl)...)
	res := sayAsync(ctxT(t), conn, "ok")
	<-e.entered
	clock.WaitTimers(1)
	clock.Advance(50 * time.Millisecond)
	r := <-res
	if r.err != nil || r.out != "ok" {
		t.Fatalf("hedged call = %q, %v", r.out, r.err)
	}
	<-firstCancelled // the loser was cancelled
	if ev := obs.of(bulwark.EventHedge); len(ev) != 1 {
		t.Errorf("hedge events = %d, want 1", len(ev))
	}
}

func TestClientDoesNotHedgeOtherMethods(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	cl := mustClient(t, WithClock(clock), WithHedge(50*time.Millisecond, 1), WithIdempotent("/test.Echo/Other"))
	e := newEcho()
	e.entered = make(chan string, 4)
	conn := startBufconn(t, e, nil, withClient(cl)...)
	res := sayAsync(ctxT(t), conn, "block")
	<-e.entered
	if n := clock.Timers(); n != 0 {
		t.Fatalf("%d hedge timers armed for a method not declared idempotent", n)
	}
	closeRelease(e)
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

func TestClientDeadlines(t *testing.T) {
	cl := mustClient(t, WithDeadline(5*time.Second, 500*time.Millisecond))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	// No deadline: the default is set and reaches the server.
	got, err, _, _ := say(context.Background(), conn, "deadline")
	if d, perr := time.ParseDuration(got); err != nil || perr != nil || d < 3*time.Second || d > 5*time.Second {
		t.Fatalf("server saw deadline %q (%v), want about 5s", got, err)
	}
	// The caller's own deadline is kept and propagated.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, _, _, _ = say(ctx, conn, "deadline")
	if d, perr := time.ParseDuration(got); perr != nil || d < 15*time.Second || d > 20*time.Second {
		t.Errorf("server saw deadline %q, want about 20s", got)
	}
	// Too little time left: not sent.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	before := e.calls.Load()
	_, err, _, _ = say(ctx, conn, "ok")
	wantCode(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, bulwark.ErrTimeout) {
		t.Errorf("error %v does not match ErrTimeout", err)
	}
	if e.calls.Load() != before {
		t.Errorf("a call with too little time left was sent")
	}
}

func TestClientStreamRetriesOpening(t *testing.T) {
	// Nothing listens on the address: the stream fails to open with
	// UNAVAILABLE, which nothing was sent for, and is retried.
	obs := &events{}
	cl := mustClient(t, WithClientObserver(obs), WithMaxRetries(2), WithBackoff(time.Millisecond, time.Millisecond))
	conn := dial(t, "127.0.0.1:1", withClient(cl)...)
	_, err := conn.NewStream(ctxT(t), watchDesc, methodWatch)
	wantCode(t, err, codes.Unavailable)
	if n := len(obs.of(bulwark.EventRetry)); n != 2 {
		t.Errorf("retries = %d, want 2", n)
	}
}

func TestClientConfigErrors(t *testing.T) {
	bad := map[string]ClientOption{
		"negative retries":  WithMaxRetries(-1),
		"retry OK":          WithRetryCodes(codes.OK),
		"retry code 99":     WithRetryCodes(99),
		"zero pushback cap": WithMaxPushback(0),
		"bad back-off":      WithBackoff(time.Second, time.Millisecond),
		"nil budget":        WithRetryBudget(nil),
		"bad idempotent":    WithIdempotent("Say"),
		"nil breaker":       WithMethodBreaker(nil),
		"nil failure":       WithBreakerFailure(nil),
		"zero hedge":        WithHedge(0, 1),
		"no hedges":         WithHedge(time.Second, 0),
		"negative deadline": WithDeadline(-1, 0),
		"nil pacer":         WithPacer(nil),
		"nil clock":         WithClock(nil),
	}
	for name, opt := range bad {
		if _, err := NewClient(opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestClientRetriesServerStreamBeforeTheFirstReply(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	obs := &events{}
	cl := mustClient(t, WithClock(clock), WithClientObserver(obs))
	e := newEcho()
	conn := dial(t, startServer(t, e), withClient(cl)...)
	type res struct {
		got []string
		err error
	}
	ch := make(chan res, 1)
	go func() { got, err, _ := watch(ctxT(t), conn, "first-fail"); ch <- res{got, err} }()
	clock.WaitTimers(1)
	if ev := obs.of(bulwark.EventRetry); len(ev) != 1 || ev[0].Duration != 10*time.Millisecond {
		t.Fatalf("retry events %+v, want one after the 10ms pushback", ev)
	}
	clock.Advance(10 * time.Millisecond)
	r := <-ch
	if r.err != nil || len(r.got) != 3 || r.got[0] != "first-fail0" {
		t.Fatalf("retried stream = %v, %v", r.got, r.err)
	}
	if n := e.calls.Load(); n != 2 {
		t.Errorf("streams opened = %d, want 2", n)
	}
	// Once replies came the call is committed: a later failure is final.
	e2 := newEcho()
	conn2 := dial(t, startServer(t, e2), withClient(cl)...)
	got, err, _ := watch(ctxT(t), conn2, "code=14")
	wantCode(t, err, codes.Unavailable)
	if len(got) != 3 || e2.calls.Load() != 1 {
		t.Errorf("committed stream: got %v after %d opens, want 3 replies and 1 open", got, e2.calls.Load())
	}
}

func TestClientHedgeRecoversPanics(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	cl := mustClient(t, WithClock(clock), WithHedge(time.Hour, 1), WithIdempotent(methodSay), WithMaxRetries(0))
	boom := grpc.UnaryClientInterceptor(func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
		panic("inner interceptor bug")
	})
	conn := dial(t, startServer(t, newEcho()), grpc.WithChainUnaryInterceptor(cl.Unary(), boom))
	_, err, _, _ := say(ctxT(t), conn, "ok")
	wantCode(t, err, codes.Internal)
	if n := cl.Panics(); n < 1 {
		t.Errorf("Panics() = %d, want at least 1", n)
	}
}
