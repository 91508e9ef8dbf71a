package singleflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
	"github.com/redis/go-redis/v9"
)

// collapse runs callers goroutines on each group calling Do(key) with a
// function that counts its runs and holds until every group's flight has
// all its callers (or a remote group has its result), then checks that the
// function ran once and that every caller got its value.
func collapse(t *testing.T, groups []*Group[string], key string, callers int) {
	t.Helper()
	var runs atomic.Int64
	release := make(chan struct{})
	fn := func(ctx context.Context, token uint64) (string, error) {
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		return fmt.Sprintf("value-%d", token), nil
	}
	type out struct {
		res Result[string]
		err error
	}
	outs := make(chan out, len(groups)*callers)
	var wg sync.WaitGroup
	for _, g := range groups {
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := g.Do(ctxT(t, 30*time.Second), key, fn)
				outs <- out{r, err}
			}()
		}
	}
	eventually(t, 20*time.Second, "every caller to join its flight", func() bool {
		for _, g := range groups {
			if waitersOf(g, key) != callers {
				return false
			}
		}
		return runs.Load() == 1
	})
	close(release)
	wg.Wait()
	close(outs)
	var leaders, remotes int
	var value string
	for o := range outs {
		if o.err != nil {
			t.Fatalf("Do: %v", o.err)
		}
		if value == "" {
			value = o.res.Value
		}
		if o.res.Value != value || o.res.Degraded || o.res.Token == 0 || o.res.Value != fmt.Sprintf("value-%d", o.res.Token) {
			t.Fatalf("result %+v, want value %q from one run, not degraded", o.res, value)
		}
		if o.res.Leader {
			leaders++
		}
		if o.res.Remote {
			remotes++
		}
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("function ran %d times, want 1", got)
	}
	if leaders != callers || remotes != (len(groups)-1)*callers {
		t.Fatalf("leaders %d, remotes %d; want %d and %d", leaders, remotes, callers, (len(groups)-1)*callers)
	}
}

// Three replicas with 100 concurrent callers each run the function once;
// the waiting replicas are woken by pub/sub (their poll interval and the
// lease TTL are a minute, so only a wake-up brings them the result in time).
func TestThreeReplicasRunOnce(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			clients, prefix := be.open(t, 3)
			var groups []*Group[string]
			for _, c := range clients {
				groups = append(groups, openGroup(t, c, prefix, "users", String{},
					WithPollInterval(time.Minute), WithLeaseTTL(time.Minute)))
			}
			start := time.Now()
			collapse(t, groups, "user:42", 100)
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("took %v: the waiters were not woken", d)
			}
			redistest.CheckTTLs(t, clients[0], prefix, FenceTTL)
		})
	}
}

// A stored result is served within its TTL without running the function,
// and the function runs again once it expired.
func TestResultTTL(t *testing.T) {
	clients, prefix := replicas(t, 1)
	g := openGroup(t, clients[0], prefix, "ttl", String{}, WithResultTTL(200*time.Millisecond))
	var runs atomic.Int64
	fn := func(context.Context, uint64) (string, error) { return fmt.Sprint(runs.Add(1)), nil }
	ctx := ctxT(t, 10*time.Second)
	r, err := g.Do(ctx, "k", fn)
	if err != nil || r.Value != "1" || !r.Leader || r.Remote {
		t.Fatalf("first Do: %+v, %v", r, err)
	}
	r2, err := g.Do(ctx, "k", fn)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Value == "1" && (!r2.Remote || r2.Leader || r2.Token != r.Token) {
		t.Fatalf("second Do within the TTL: %+v, want the stored run %d", r2, r.Token)
	}
	eventually(t, 10*time.Second, "the result to expire and the function to run again", func() bool {
		r, err := g.Do(ctx, "k", fn)
		return err == nil && r.Leader && r.Value != "1"
	})
}

// Errors reach every replica: the leader's callers get fn's error, the
// others a RemoteError with its message; a panic is recovered and wraps
// ErrPanicked on both sides; a result above the size cap reaches the
// leader's callers and is ErrTooLarge elsewhere.
func TestOutcomesAcrossReplicas(t *testing.T) {
	clients, prefix := replicas(t, 2)
	a := openGroup(t, clients[0], prefix, "out", Bytes{}, WithMaxResultBytes(8), WithPollInterval(time.Minute))
	b := openGroup(t, clients[1], prefix, "out", Bytes{}, WithMaxResultBytes(8), WithPollInterval(time.Minute))
	boom := errors.New("boom")
	cases := []struct {
		name     string
		fn       func() ([]byte, error)
		local    func(error) bool
		remote   error
		localVal string
	}{
		{"error", func() ([]byte, error) { return nil, boom }, func(err error) bool { return errors.Is(err, boom) }, nil, ""},
		{"panic", func() ([]byte, error) { panic("kaput") }, func(err error) bool { return errors.Is(err, ErrPanicked) }, ErrPanicked, ""},
		{"too large", func() ([]byte, error) { return []byte("0123456789"), nil }, func(err error) bool { return err == nil }, ErrTooLarge, "0123456789"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.name
			started, release := make(chan struct{}), make(chan struct{})
			fn := func(context.Context, uint64) ([]byte, error) {
				close(started)
				<-release
				return c.fn()
			}
			la := make(chan error, 1)
			go func() {
				r, err := a.Do(ctxT(t, 20*time.Second), key, fn)
				if err == nil && string(r.Value) != c.localVal {
					err = fmt.Errorf("value %q, want %q", r.Value, c.localVal)
				}
				la <- err
			}()
			<-started
			lb := make(chan error, 1)
			go func() {
				_, err := b.Do(ctxT(t, 20*time.Second), key, func(context.Context, uint64) ([]byte, error) {
					return nil, errors.New("the second replica must not run")
				})
				lb <- err
			}()
			eventually(t, 10*time.Second, "the remote caller to wait", func() bool { return waitersOf(b, key) == 1 })
			close(release)
			if err := <-la; !c.local(err) {
				t.Fatalf("leader's caller: %v", err)
			}
			err := <-lb
			var re *RemoteError
			if !errors.As(err, &re) || !errors.Is(err, ErrRemote) {
				t.Fatalf("remote caller: %v, want a RemoteError", err)
			}
			if c.remote != nil && !errors.Is(err, c.remote) {
				t.Fatalf("remote caller: %v, want it to wrap %v", err, c.remote)
			}
			if c.name == "error" && re.Message != "boom" {
				t.Fatalf("remote message %q, want %q", re.Message, "boom")
			}
		})
	}
}

// A cancelled waiter returns at once; the other callers, on its replica
// and elsewhere, get the result; cancelling the caller whose function runs
// does not stop the run; a replica whose callers all left starts afresh.
func TestCancelledWaiterLeavesOthersUnharmed(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { cancelledWaiter(t, be.open) })
	}
}

func cancelledWaiter(t *testing.T, open func(testing.TB, int) ([]redis.UniversalClient, string)) {
	clients, prefix := open(t, 2)
	a := openGroup(t, clients[0], prefix, "cancel", String{}, WithPollInterval(time.Minute))
	b := openGroup(t, clients[1], prefix, "cancel", String{}, WithPollInterval(time.Minute))
	const key = "k"
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	fn := func(ctx context.Context, _ uint64) (string, error) {
		runs.Add(1)
		close(started)
		select {
		case <-release:
			return "v", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() { _, err := a.Do(leaderCtx, key, fn); leaderErr <- err }()
	<-started
	type out struct {
		r   Result[string]
		err error
	}
	others := make(chan out, 4)
	for _, g := range []*Group[string]{a, a, b, b} {
		go func() { r, err := g.Do(ctxT(t, 20*time.Second), key, fn); others <- out{r, err} }()
	}
	// Cancelled waiters: one on each replica.
	cancelled := make(chan error, 2)
	for _, g := range []*Group[string]{a, b} {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _, err := g.Do(ctx, key, fn); cancelled <- err }()
		want := 4
		if g == b {
			want = 3
		}
		eventually(t, 10*time.Second, "the waiter to join", func() bool { return waitersOf(g, key) == want })
		cancel()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
		}
	}
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader's caller: %v", err)
	}
	// A replica whose every caller left drops its flight; a new caller
	// there starts one that waits for the same run.
	c := openGroup(t, clients[1], prefix, "cancel", String{}, WithPollInterval(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { _, err := c.Do(ctx, key, fn); gone <- err }()
	eventually(t, 10*time.Second, "the lone waiter to join", func() bool { return waitersOf(c, key) == 1 })
	cancel()
	<-gone
	eventually(t, 10*time.Second, "the abandoned flight to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.flights) == 0
	})
	late := make(chan out, 1)
	go func() { r, err := c.Do(ctxT(t, 20*time.Second), key, fn); late <- out{r, err} }()
	eventually(t, 10*time.Second, "the late waiter to join", func() bool { return waitersOf(c, key) == 1 })

	close(release)
	for range 4 {
		o := <-others
		if o.err != nil || o.r.Value != "v" {
			t.Fatalf("other caller: %+v, %v", o.r, o.err)
		}
	}
	if o := <-late; o.err != nil || o.r.Value != "v" || !o.r.Remote {
		t.Fatalf("late caller: %+v, %v", o.r, o.err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("function ran %d times, want 1", n)
	}
}

// hostileKeys try to break the hash tag, the key layout and the topic.
var hostileKeys = []string{"plain", "a}b{c", "{}", "{", strings.Repeat("}", 100), "sp ace\nnew\x00line",
	"", strings.Repeat("x", 10_000), "\xff\xfe", "k:lease", "*?[]\\"}

// On a Redis Cluster, hostile keys stay in one slot per key (no CROSSSLOT),
// keys that differ never share a run, and wake-ups cross nodes.
func TestHostileKeysOnCluster(t *testing.T) {
	cl := redistest.SharedCluster(t)
	client := cl.Client(t)
	prefix := redistest.Prefix(t, client)
	other := cl.Client(t)
	var groups []*Group[string]
	for _, c := range []*redis.ClusterClient{client, other} {
		groups = append(groups, openGroup(t, c, prefix, "h{o}st\x00ile", String{}, WithPollInterval(time.Minute)))
	}
	for _, key := range hostileKeys {
		collapse(t, groups, key, 3)
	}
	// Distinct keys are distinct runs.
	seen := map[string]string{}
	for _, key := range hostileKeys {
		r, err := groups[0].Do(ctxT(t, 10*time.Second), key, func(_ context.Context, token uint64) (string, error) {
			return "fresh", nil
		})
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		v := fmt.Sprintf("%s/%d", r.Value, r.Token)
		if k, dup := seen[v]; dup {
			t.Fatalf("keys %q and %q share run %s", k, key, v)
		}
		seen[v] = key
	}
	redistest.CheckTTLs(t, client, prefix, FenceTTL)
}

// With Redis away every replica still collapses its own callers: the
// function runs once per replica, each result is flagged Degraded, and an
// EventFallback is emitted (a panicking observer is recovered and counted).
func TestRedisAwayCollapsesPerReplica(t *testing.T) {
	srv := redistest.Default(t).(*redis.Client)
	proxy := redistest.NewProxy(t, srv.Options().Addr)
	proxy.Refuse(true)
	var groups []*Group[string]
	rec := &recorder{}
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		rec.Observe(e)
		panic("observer")
	})
	for range 2 {
		c := proxy.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = time.Second })
		groups = append(groups, openGroup(t, c, "bwtest:away:", "away", String{}, WithObserver(obs)))
	}
	const callers = 50
	var runs atomic.Int64
	release := make(chan struct{})
	fn := func(ctx context.Context, token uint64) (string, error) {
		runs.Add(1)
		<-release
		return fmt.Sprintf("local-%d", token), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*callers)
	for _, g := range groups {
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := g.Do(ctxT(t, 30*time.Second), "k", fn)
				if err == nil && (!r.Degraded || !r.Leader || r.Remote || r.Value != "local-0") {
					err = fmt.Errorf("result %+v, want a degraded local run", r)
				}
				errs <- err
			}()
		}
	}
	eventually(t, 20*time.Second, "both replicas to run the function", func() bool {
		return runs.Load() == 2 && waitersOf(groups[0], "k") == callers && waitersOf(groups[1], "k") == callers
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("function ran %d times, want once per replica (2)", n)
	}
	if rec.Count(bulwark.EventFallback) != 2 {
		t.Fatalf("fallback events: %d, want 2", rec.Count(bulwark.EventFallback))
	}
	if p := groups[0].ObserverPanics() + groups[1].ObserverPanics(); p != 2 {
		t.Fatalf("observer panics counted: %d, want 2", p)
	}
}

// Close ends waiting calls with ErrClosed and cancels a running function
// with cause ErrClosed; its lease is given up, so another replica leads at
// once instead of after the lease TTL.
func TestCloseHandsOver(t *testing.T) {
	clients, prefix := replicas(t, 2)
	a, err := New(clients[0], "close", String{}, WithPrefix(prefix), WithLeaseTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b := openGroup(t, clients[1], prefix, "close", String{}, WithLeaseTTL(time.Minute), WithPollInterval(time.Minute))
	started := make(chan struct{})
	causes := make(chan error, 1)
	aErr := make(chan error, 1)
	go func() {
		_, err := a.Do(ctxT(t, 20*time.Second), "k", func(ctx context.Context, _ uint64) (string, error) {
			close(started)
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return "", ctx.Err()
		})
		aErr <- err
	}()
	<-started
	bRes := make(chan Result[string], 1)
	go func() {
		r, err := b.Do(ctxT(t, 20*time.Second), "k", func(context.Context, uint64) (string, error) { return "b", nil })
		if err != nil {
			t.Errorf("b: %v", err)
		}
		bRes <- r
	}()
	eventually(t, 10*time.Second, "b to wait", func() bool { return waitersOf(b, "k") == 1 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if c := <-causes; !errors.Is(c, ErrClosed) {
		t.Fatalf("cause: %v, want ErrClosed", c)
	}
	if err := <-aErr; err == nil {
		t.Fatal("the closed group's caller got no error")
	}
	if r := <-bRes; r.Value != "b" || !r.Leader {
		t.Fatalf("b: %+v, want b to lead after the hand-over", r)
	}
	if _, err := a.Do(context.Background(), "k", func(context.Context, uint64) (string, error) { return "", nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

// nilCodec is a codec type whose nil pointer is passed by mistake.
type nilCodec struct{}

func (*nilCodec) Encode(v []byte) ([]byte, error) { return v, nil }
func (*nilCodec) Decode(b []byte) ([]byte, error) { return b, nil }

func TestConfigErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	var nilClient *redis.Client
	bad := []struct {
		name string
		make func() error
	}{
		{"nil client", func() error { _, err := New[string](nil, "n", String{}); return err }},
		{"typed nil client", func() error { _, err := New[string](nilClient, "n", String{}); return err }},
		{"nil codec", func() error { _, err := New[string](c, "n", nil); return err }},
		{"empty name", func() error { _, err := New[string](c, "", String{}); return err }},
		{"brace prefix", func() error { _, err := New[string](c, "n", String{}, WithPrefix("a{")); return err }},
		{"short lease", func() error { _, err := New[string](c, "n", String{}, WithLeaseTTL(time.Millisecond)); return err }},
		{"keepalive", func() error {
			_, err := New[string](c, "n", String{}, WithLeaseTTL(time.Second), WithKeepAlive(time.Second))
			return err
		}},
		{"result ttl", func() error { _, err := New[string](c, "n", String{}, WithResultTTL(0)); return err }},
		{"error ttl", func() error { _, err := New[string](c, "n", String{}, WithErrorTTL(-1)); return err }},
		{"max bytes", func() error { _, err := New[string](c, "n", String{}, WithMaxResultBytes(0)); return err }},
		{"poll", func() error { _, err := New[string](c, "n", String{}, WithPollInterval(0)); return err }},
		{"timeout", func() error { _, err := New[string](c, "n", String{}, WithTimeout(-1)); return err }},
		{"typed nil clock", func() error { _, err := New[string](c, "n", String{}, WithClock((*fakeclock.Clock)(nil))); return err }},
		{"typed nil observer", func() error { _, err := New[string](c, "n", String{}, WithObserver((*recorder)(nil))); return err }},
		{"typed nil codec", func() error { _, err := New[[]byte](c, "n", (*nilCodec)(nil)); return err }},
	}
	for _, b := range bad {
		if err := b.make(); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", b.name, err)
		}
	}
	g, err := New[string](c, "n", String{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Do(context.Background(), "k", nil); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("nil fn: %v", err)
	}
}

func TestDecodeRejectsUnexpectedReplies(t *testing.T) {
	for _, v := range []any{nil, "x", []any{}, []any{int64(3), int64(1)}, []any{int64(1), int64(0)},
		[]any{int64(0), int64(-1)}, []any{int64(2), int64(1)}, []any{"1", int64(1)}} {
		if _, err := decodeClaim(v); err == nil {
			t.Errorf("decodeClaim(%#v): no error", v)
		}
	}
	g := &Group[string]{codec: String{}}
	for _, rec := range []string{"", "v", "v1", "vx:1", "q1:x", "v1x"} {
		if _, err := g.decodeRecord(rec); err == nil || errors.Is(err, ErrRemote) {
			t.Errorf("decodeRecord(%q): %v, want an unexpected-reply error", rec, err)
		}
	}
}

// Forget drops a stored result: the next call runs the function again.
func TestForget(t *testing.T) {
	clients, prefix := replicas(t, 2)
	a := openGroup(t, clients[0], prefix, "forget", String{}, WithResultTTL(time.Minute))
	b := openGroup(t, clients[1], prefix, "forget", String{}, WithResultTTL(time.Minute))
	var runs atomic.Int64
	fn := func(context.Context, uint64) (string, error) { return fmt.Sprint(runs.Add(1)), nil }
	ctx := ctxT(t, 10*time.Second)
	if r, err := a.Do(ctx, "k", fn); err != nil || r.Value != "1" {
		t.Fatalf("first: %+v, %v", r, err)
	}
	if r, err := b.Do(ctx, "k", fn); err != nil || r.Value != "1" || !r.Remote {
		t.Fatalf("stored: %+v, %v", r, err)
	}
	if ok, err := b.Forget(ctx, "k"); err != nil || !ok {
		t.Fatalf("Forget: %v, %v", ok, err)
	}
	if ok, err := b.Forget(ctx, "k"); err != nil || ok {
		t.Fatalf("second Forget: %v, %v; want nothing to drop", ok, err)
	}
	if r, err := a.Do(ctx, "k", fn); err != nil || r.Value != "2" || !r.Leader {
		t.Fatalf("after Forget: %+v, %v; want a new run", r, err)
	}
}

// A leader whose lease is taken away (here deleted behind its back) learns
// it at its next renewal: its function's ctx is cancelled with cause
// ErrLeaseLost, an EventLeaseLost is emitted, and its outcome is not
// stored, so it cannot overwrite a newer leader's.
func TestLeaseLostCancelsTheRun(t *testing.T) {
	clients, prefix := replicas(t, 1)
	rec := &recorder{}
	g := openGroup(t, clients[0], prefix, "lost", String{}, WithLeaseTTL(time.Second),
		WithKeepAlive(20*time.Millisecond), WithObserver(rec))
	keys := newKeySet(prefix, "lost", "k")
	ctx := ctxT(t, 20*time.Second)
	started := make(chan struct{})
	var cause error
	go func() {
		<-started
		if err := clients[0].Del(ctx, keys.claim[0]).Err(); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}()
	r, err := g.Do(ctx, "k", func(ctx context.Context, _ uint64) (string, error) {
		close(started)
		<-ctx.Done()
		cause = context.Cause(ctx)
		return "late", nil
	})
	if !errors.Is(cause, ErrLeaseLost) {
		t.Fatalf("cause %v, want ErrLeaseLost", cause)
	}
	if err != nil || r.Value != "late" || !r.Leader {
		t.Fatalf("the leader's own caller: %+v, %v", r, err)
	}
	if n := rec.Count(bulwark.EventLeaseLost); n != 1 {
		t.Fatalf("lease-lost events: %d, want 1", n)
	}
	if n, err := clients[0].Exists(ctx, keys.claim[1]).Result(); err != nil || n != 0 {
		t.Fatalf("a result was stored after the lease was lost (exists %d, %v)", n, err)
	}
}

// A lost wake-up (here the leader's publication goes to a channel nobody
// listens on) is covered by the poll backstop: the waiter takes the result
// within a poll interval, long before the lease would expire.
func TestLostWakeUpIsCoveredByThePoll(t *testing.T) {
	clients, prefix := replicas(t, 2)
	dropPublish := func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
		if s == lua.SingleflightComplete {
			args = append([]any(nil), args...)
			args[3] = prefix + "nowhere"
		}
		return s.Run(ctx, clients[0], keys, args...).Result()
	}
	leader := openGroup(t, clients[0], prefix, "lost-wake", String{}, WithRunner(dropPublish), WithLeaseTTL(time.Minute))
	waiter := openGroup(t, clients[1], prefix, "lost-wake", String{}, WithLeaseTTL(time.Minute), WithPollInterval(200*time.Millisecond))
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := leader.Do(ctxT(t, 20*time.Second), "k", func(context.Context, uint64) (string, error) {
			close(started)
			<-release
			return "v", nil
		})
		done <- err
	}()
	<-started
	got := make(chan Result[string], 1)
	go func() {
		r, err := waiter.Do(ctxT(t, 20*time.Second), "k", func(context.Context, uint64) (string, error) {
			return "", errors.New("the waiter must not run")
		})
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		got <- r
	}()
	eventually(t, 10*time.Second, "the waiter to wait", func() bool { return waitersOf(waiter, "k") == 1 })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Value != "v" || !r.Remote {
			t.Fatalf("waiter: %+v", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiter never took the result: the poll backstop did not run")
	}
}

// A Redis that stops answering (a blackholed link) costs each flight one
// call timeout, then the flight runs locally, flagged Degraded.
func TestHungRedisTimesOutToLocal(t *testing.T) {
	srv := redistest.Default(t).(*redis.Client)
	proxy := redistest.NewProxy(t, srv.Options().Addr)
	c := proxy.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true; o.MaxRetries = -1 })
	g := openGroup(t, c, "bwtest:hung:", "hung", String{}, WithTimeout(200*time.Millisecond))
	proxy.Blackhole(true)
	t.Cleanup(func() { proxy.CutAll() }) // before Close: a blackholed subscription would hold it up
	start := time.Now()
	r, err := g.Do(ctxT(t, 20*time.Second), "k", func(context.Context, uint64) (string, error) { return "local", nil })
	if err != nil || !r.Degraded || r.Value != "local" {
		t.Fatalf("Do: %+v, %v; want a degraded local run", r, err)
	}
	d := time.Since(start)
	t.Logf("Do took %v", d)
	if d > 10*time.Second {
		t.Fatalf("Do took %v with a 200ms call timeout", d)
	}
}
