package distributed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func testHealth(threshold, recovery int, minDwell, maxDwell time.Duration) *health {
	h := &health{}
	h.init(&config{failureThreshold: threshold, recoveryThreshold: recovery,
		probeInterval: 10 * time.Millisecond, minDegraded: minDwell, maxDegraded: maxDwell})
	return h
}

var errTimeout = &CallError{Reason: ReasonTimeout, Err: context.DeadlineExceeded}

// TestHealthSteps walks the state machine through a step table on explicit
// times: failures in a row degrade, a success resets the run, probes need
// the recovery threshold and the dwell time, and the dwell doubles when the
// store degrades again soon after recovering.
func TestHealthSteps(t *testing.T) {
	h := testHealth(3, 2, time.Second, 4*time.Second)
	t0 := fakeclock.Epoch
	type step struct {
		at       time.Duration
		op       string // "fail", "ok", "probe-ok", "probe-fail", "reply"
		switched bool
		down     bool
	}
	steps := []step{
		{0, "fail", false, false},
		{1, "fail", false, false},
		{2, "ok", false, false}, // resets the run
		{3, "fail", false, false},
		{4, "reply", false, false}, // WRONGTYPE says nothing about availability
		{5, "fail", false, false},
		{6, "fail", true, true}, // third in a row: degraded, dwell 1s
		{7, "fail", false, true},
		{300, "probe-ok", false, true},
		{600, "probe-ok", false, true}, // two probes, but dwell not over
		{900, "probe-fail", false, true},
		{1100, "probe-ok", false, true},
		{1200, "probe-ok", true, false}, // two in a row after the dwell
		{1300, "fail", false, false},
		{1301, "fail", false, false},
		{1302, "fail", true, true}, // again within 2×1s of recovering: dwell 2s
		{2500, "probe-ok", false, true},
		{3200, "probe-ok", false, true}, // 1.9s < 2s
		{3400, "probe-ok", true, false},
		{9000, "fail", false, false},
		{9001, "fail", false, false},
		{9002, "fail", true, true}, // long after: dwell back to 1s
		{9600, "probe-ok", false, true},
		{10100, "probe-ok", true, false},
	}
	reply := &CallError{Reason: ReasonReply, Err: errors.New("WRONGTYPE")}
	for i, s := range steps {
		now := t0.Add(s.at * time.Millisecond)
		var switched bool
		switch s.op {
		case "fail":
			var start bool
			switched, start = h.failure(now, errTimeout)
			if start {
				h.wg.Done() // no prober goroutine in this test
				h.mu.Lock()
				h.probing = false
				h.mu.Unlock()
			}
		case "reply":
			switched, _ = h.failure(now, reply)
		case "ok":
			h.success()
		case "probe-ok":
			switched, _ = h.probed(now, nil)
		case "probe-fail":
			switched, _ = h.probed(now, errTimeout)
		}
		if switched != s.switched || h.down.Load() != s.down {
			t.Fatalf("step %d (%s at %dms): switched %v, down %v; want %v, %v", i, s.op, s.at, switched, h.down.Load(), s.switched, s.down)
		}
	}
	if got := h.switches.Load(); got != 6 {
		t.Errorf("switches %d, want 6", got)
	}
	if got := h.epoch.Load(); got != 3 {
		t.Errorf("epoch %d after three recoveries, want 3", got)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Reason
	}{
		{context.DeadlineExceeded, ReasonTimeout},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ReasonTimeout},
		{redis.ErrPoolTimeout, ReasonPool},
		{redis.ErrClosed, ReasonConnection},
		{io.EOF, ReasonConnection},
		{errors.New("dial tcp: connection refused"), ReasonConnection},
		{proto("BUSY Redis is busy running a script"), ReasonBusy},
		{proto("OOM command not allowed when used memory > 'maxmemory'."), ReasonOutOfMemory},
		{proto("ERR Error running script (call to f_x): @user_script:1: OOM command not allowed when used memory > 'maxmemory'."), ReasonOutOfMemory},
		{proto("LOADING Redis is loading the dataset in memory"), ReasonLoading},
		{proto("CLUSTERDOWN The cluster is down"), ReasonCluster},
		{proto("TRYAGAIN Multiple keys request during rehashing of slot"), ReasonCluster},
		{proto("MOVED 3999 127.0.0.1:6381"), ReasonCluster},
		{proto("READONLY You can't write against a read only replica."), ReasonReadOnly},
		{proto("MISCONF Redis is configured to save RDB snapshots"), ReasonReadOnly},
		{proto("WRONGTYPE Operation against a key holding the wrong kind of value"), ReasonReply},
		{proto("NOPERM this user has no permissions"), ReasonReply},
	}
	for _, c := range cases {
		ce := classify(c.err)
		if ce.Reason != c.want {
			t.Errorf("classify(%v) = %v, want %v", c.err, ce.Reason, c.want)
		}
		if !errors.Is(ce, c.err) {
			t.Errorf("classify(%v) does not wrap it", c.err)
		}
		if errors.Is(ce, ErrUnavailable) != (c.want != ReasonReply) {
			t.Errorf("classify(%v): errors.Is(ErrUnavailable) = %v", c.err, errors.Is(ce, ErrUnavailable))
		}
		if classify(ce) != ce {
			t.Errorf("classify of a *CallError made a new one")
		}
	}
	for r := ReasonTimeout; r <= ReasonDecode; r++ {
		if r.String() == "unknown" {
			t.Errorf("Reason %d has no name", r)
		}
	}
	if Reason(200).String() != "unknown" {
		t.Error("an out-of-range Reason has a name")
	}
}

// proto is a server error reply as go-redis returns it.
type proto string

func (p proto) Error() string { return string(p) }
func (proto) RedisError()     {}

func TestShareLimit(t *testing.T) {
	cases := []struct {
		l    bulwark.Limit
		n    int
		want bulwark.Limit
	}{
		{bulwark.Limit{Events: 30, Period: time.Second}, 3, bulwark.Limit{Events: 10, Period: time.Second}},
		{bulwark.Limit{Events: 10, Period: time.Second, Burst: 20}, 3, bulwark.Limit{Events: 4, Period: time.Second, Burst: 7}},
		{bulwark.Limit{Events: 2, Period: time.Second, Burst: 2}, 5, bulwark.Limit{Events: 1, Period: time.Second, Burst: 1}},
		{bulwark.Limit{Events: 7, Period: time.Minute}, 1, bulwark.Limit{Events: 7, Period: time.Minute}},
	}
	for _, c := range cases {
		if got := shareLimit(c.l, c.n); got != c.want {
			t.Errorf("shareLimit(%v, %d) = %v, want %v", c.l, c.n, got, c.want)
		}
		if err := shareLimit(c.l, c.n).Validate(); err != nil {
			t.Errorf("share of %v invalid: %v", c.l, err)
		}
	}
}

type fixedCount int

func (f fixedCount) Replicas() int { return int(f) }

// nilClient is a Client that fails every call at once, as a client whose
// server refuses connections does. It has no Options method, so the store
// runs its calls detached and never batches them: Pipeline and Subscribe
// are never called.
type nilClient struct{ redis.UniversalClient }

func (nilClient) Process(ctx context.Context, cmd redis.Cmder) error {
	err := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	cmd.SetErr(err)
	return err
}

// TestPolicies: each failure policy, set on the store and per limiter, on a
// store whose every call fails; the fair share follows the replica
// counter, falling back to the configured count.
func TestPolicies(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	l := bulwark.Limit{Events: 12, Period: time.Hour}
	ctx := context.Background()
	count := func(lim bulwark.Limiter, key string) (admitted int, last bulwark.Decision) {
		for range 20 {
			d, err := lim.Allow(ctx, key, 1)
			if err != nil || !d.Degraded {
				t.Fatalf("decision %+v, %v; want degraded", d, err)
			}
			if d.Allowed {
				admitted++
			}
			last = d
		}
		return admitted, last
	}
	s, err := New(nilClient{}, WithClock(clk), WithReplicas(4), WithFailureThreshold(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	local, _ := s.FixedWindow("local", l)
	if n, d := count(local, "k"); n != 3 || d.Limit != 3 {
		t.Errorf("FailLocal with 4 replicas: admitted %d, Limit %d; want 3, 3", n, d.Limit)
	}
	open, _ := s.SlidingLog("open", l, WithLimiterFailurePolicy(FailOpen))
	if n, d := count(open, "k"); n != 20 || d.Limit != 12 || d.Remaining != 11 {
		t.Errorf("FailOpen: admitted %d, last %+v; want 20, Limit 12, Remaining 11", n, d)
	}
	closed, _ := s.TokenBucket("closed", l, WithLimiterFailurePolicy(FailClosed))
	if n, d := count(closed, "k"); n != 0 || d.RetryAfter != DefaultProbeInterval || d.Remaining != 0 {
		t.Errorf("FailClosed: admitted %d, last %+v; want 0, RetryAfter %v", n, d, DefaultProbeInterval)
	}
	if _, err := s.TokenBucket("bad", l, WithLimiterFailurePolicy(FailurePolicy(9))); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("unknown limiter policy: error %v, want ErrInvalidConfig", err)
	}
	// n above the share's capacity: denied locally, not an error.
	if d, err := local.Allow(ctx, "big", 5); err != nil || d.Allowed || !d.Degraded {
		t.Errorf("n above the share: %+v, %v; want a degraded denial", d, err)
	}

	// A store-wide FailOpen, and a counter that overrides WithReplicas
	// until it knows nothing (0).
	var rc fixedCount = 6
	s2, _ := New(nilClient{}, WithClock(clk), WithReplicas(4), WithReplicaCounter(&rc), WithFailurePolicy(FailOpen), WithFailureThreshold(1))
	defer s2.Close()
	o, _ := s2.FixedWindow("o", l)
	if n, _ := count(o, "k"); n != 20 {
		t.Errorf("store FailOpen admitted %d, want 20", n)
	}
	f, _ := s2.FixedWindow("f", l, WithLimiterFailurePolicy(FailLocal))
	if n, d := count(f, "k"); n != 2 || d.Limit != 2 {
		t.Errorf("counter says 6: admitted %d, Limit %d; want 2, 2", n, d.Limit)
	}
	rc = 0
	if n, d := count(f, "k2"); n != 3 || d.Limit != 3 {
		t.Errorf("counter knows nothing: admitted %d, Limit %d; want the configured 4 replicas' share 3, 3", n, d.Limit)
	}
	m, _ := s2.Multi("m", NamedLimit{Name: "a", Limit: l})
	if d, err := m.Allow(ctx, "k", 1); err != nil || !d.Allowed || !d.Degraded {
		t.Errorf("Multi with FailOpen: %+v, %v", d, err)
	}
}

// TestProberOnFakeClock: a degraded store probes on its clock's timers
// and, with Redis answering again, returns after the recovery threshold
// and the dwell; Close stops the prober. The client is a switch between
// failing and succeeding.
func TestProberOnFakeClock(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	sw := &switchClient{}
	sw.fail.Store(true)
	events := make(chan bulwark.Event, 64)
	s, err := New(sw, WithClock(clk), WithFailureThreshold(2), WithRecoveryThreshold(2),
		WithProbeInterval(100*time.Millisecond), WithMinDegraded(time.Second),
		WithObserver(bulwark.ObserverFunc(func(e bulwark.Event) {
			if e.Kind == bulwark.EventStoreHealth || e.Kind == bulwark.EventStoreCall {
				events <- e
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := s.TokenBucket("p", bulwark.Limit{Events: 5, Period: time.Second})
	ctx := context.Background()
	for range 2 {
		if d, err := tb.Allow(ctx, "k", 1); err != nil || !d.Degraded {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	// Two store calls and, before the second call's, the switch.
	<-events
	if e := <-events; e.Kind != bulwark.EventStoreHealth || !e.Degraded || !errors.Is(e.Err, ErrUnavailable) {
		t.Fatalf("event %+v, want a switch to degraded", e)
	}
	<-events
	if s.Healthy() || s.Switches() != 1 {
		t.Fatalf("healthy %v, switches %d", s.Healthy(), s.Switches())
	}
	// While degraded no call reaches the client.
	before := sw.calls.Load()
	for range 10 {
		if d, err := tb.Allow(ctx, "k", 1); err != nil || !d.Degraded {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if sw.calls.Load() != before {
		t.Errorf("degraded store sent %d calls", sw.calls.Load()-before)
	}
	// A done context is still honoured while degraded.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tb.Allow(cctx, "k", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx while degraded: %v", err)
	}
	probe := func() bulwark.Event {
		clk.WaitTimers(1)
		clk.Advance(100 * time.Millisecond)
		return <-events
	}
	if e := probe(); e.Kind != bulwark.EventStoreCall || e.Err == nil {
		t.Fatalf("failing probe event %+v", e)
	}
	sw.fail.Store(false)
	for range 8 { // 0.2s … 0.9s: probes succeed, dwell not over
		if e := probe(); e.Kind != bulwark.EventStoreCall || e.Err != nil {
			t.Fatalf("probe event %+v", e)
		}
	}
	if s.Healthy() {
		t.Fatal("healthy before the dwell time")
	}
	probe() // 1.0s
	if e := <-events; e.Kind != bulwark.EventStoreHealth || e.Degraded {
		t.Fatalf("event %+v, want a switch to healthy", e)
	}
	if !s.Healthy() || s.Switches() != 2 || s.HealthError() != nil {
		t.Errorf("healthy %v, switches %d, error %v", s.Healthy(), s.Switches(), s.HealthError())
	}
	if d, err := tb.Allow(ctx, "k", 1); err != nil || d.Degraded {
		t.Errorf("after recovery: %+v, %v", d, err)
	}
	// Degrade again and close while the prober waits.
	sw.fail.Store(true)
	for range 2 {
		_, _ = tb.Allow(ctx, "k", 1)
	}
	if s.Healthy() {
		t.Fatal("not degraded again")
	}
	clk.WaitTimers(1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Allow(ctx, "k", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestDegradedAllocs: a degraded decision of the local twin allocates
// nothing once the twin exists.
func TestDegradedAllocs(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	s, _ := New(nilClient{}, WithClock(clk), WithFailureThreshold(1))
	defer s.Close()
	tb, _ := s.TokenBucket("a", bulwark.Limit{Events: 1 << 20, Period: time.Second})
	ctx := context.Background()
	_, _ = tb.Allow(ctx, "k", 1)
	_, _ = tb.Allow(ctx, "k", 1)
	if s.Healthy() {
		t.Fatal("store healthy")
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = tb.Allow(ctx, "k", 1) }); n != 0 {
		t.Errorf("degraded Allow allocates %v times, want 0", n)
	}
}

// switchClient fails every call while fail is set and otherwise answers
// every script with an admitting reply, as Redis would.
type switchClient struct {
	redis.UniversalClient // never called: see nilClient
	fail                  atomic.Bool
	calls                 atomic.Int64
}

func (c *switchClient) Process(ctx context.Context, cmd redis.Cmder) error {
	c.calls.Add(1)
	if c.fail.Load() {
		err := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		cmd.SetErr(err)
		return err
	}
	// lua.TokenBucket's admission of one token of 5 per second: a debt of
	// one token, P = 200000 units (1 per µs).
	cmd.(interface{ SetVal(any) }).SetVal([]any{int64(1), int64(200000)})
	return nil
}
