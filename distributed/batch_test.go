package distributed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
)

// The tests below force calls through the batch path: a go-redis hook
// (gate) holds the one call that occupies the store's only lane, the test
// queues more calls behind it and waits until the store holds them, then
// lets the held call go. Its round trip ends, and everything queued leaves
// as one pipeline, which the gate counts.

// gate is a go-redis hook that can hold the next script command before it
// is sent (or fail it), hold the next pipeline, and records the size of
// every pipeline of script commands that passes.
type gate struct {
	mu      sync.Mutex
	cmd     *hold // armed for the next single script command
	pipe    *hold // armed for the next pipeline
	sizes   []int
	scripts atomic.Int64 // single script commands that passed
}

// hold is one armed hold: held is closed once a command waits in the hook;
// the test closes release after setting err (nil: send it).
type hold struct {
	held    chan struct{}
	release chan struct{}
	err     error
}

func newHold() *hold { return &hold{held: make(chan struct{}), release: make(chan struct{})} }

// wait blocks until the hold caught its command.
func (h *hold) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no command reached the hook")
	}
}

// let releases the held command: sent when err is nil, else failed with err.
func (h *hold) let(err error) {
	h.err = err
	close(h.release)
}

func (g *gate) holdNextCall() *hold {
	h := newHold()
	g.mu.Lock()
	g.cmd = h
	g.mu.Unlock()
	return h
}

func (g *gate) holdNextPipeline() *hold {
	h := newHold()
	g.mu.Lock()
	g.pipe = h
	g.mu.Unlock()
	return h
}

func (g *gate) pipelines() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

func isScriptCmd(cmd redis.Cmder) bool {
	n := cmd.Name()
	return n == "evalsha" || n == "eval"
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScriptCmd(cmd) {
			return next(ctx, cmd)
		}
		g.scripts.Add(1)
		g.mu.Lock()
		h := g.cmd
		g.cmd = nil
		g.mu.Unlock()
		if h != nil {
			close(h.held)
			<-h.release
			if h.err != nil {
				cmd.SetErr(h.err)
				return h.err
			}
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || !isScriptCmd(cmds[0]) {
			return next(ctx, cmds) // a new connection's handshake
		}
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		h := g.pipe
		g.pipe = nil
		g.mu.Unlock()
		if h != nil {
			close(h.held)
			<-h.release
			if h.err != nil {
				for _, cmd := range cmds {
					cmd.SetErr(h.err)
				}
				return h.err
			}
		}
		return next(ctx, cmds)
	}
}

// batchMode is a way of batching the tests below run in: the lanes (one
// lane: the held call goes out as its own command) or the dispatcher (the
// held call goes out as a pipeline of its own, which the gate counts:
// held lists the pipelines it adds).
type batchMode struct {
	name string
	opt  distributed.Option
	held []int
}

var batchModes = []batchMode{
	{"lanes", distributed.WithBatching(1), nil},
	{"dispatcher", distributed.WithDispatcher(), []int{1}},
}

// want returns the pipelines the gate sees in mode m: the held call's, then
// those of the queued calls.
func (m batchMode) want(queued ...int) []int { return append(slices.Clone(m.held), queued...) }

// holdFirst arms g for the call that will hold the store's only lane.
func (m batchMode) holdFirst(g *gate) *hold {
	if m.held != nil {
		return g.holdNextPipeline()
	}
	return g.holdNextCall()
}

type allowResult struct {
	d   bulwark.Decision
	err error
}

// goAllow runs lim.Allow(ctx, key, n) on a goroutine of its own.
func goAllow(ctx context.Context, lim bulwark.Limiter, key string, n int) chan allowResult {
	ch := make(chan allowResult, 1)
	go func() {
		d, err := lim.Allow(ctx, key, n)
		ch <- allowResult{d, err}
	}()
	return ch
}

// waitQueued waits until n calls of s wait for a lane.
func waitQueued(t *testing.T, s *distributed.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for distributed.QueuedCalls(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", distributed.QueuedCalls(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// batchClient returns a client built with ClientOptions (batching needs
// ContextTimeoutEnabled) with a gate hook.
func batchClient(t *testing.T, addr string, edit ...func(*redis.Options)) (*redis.Client, *gate) {
	t.Helper()
	o := &redis.Options{Addr: addr}
	for _, f := range edit {
		f(o)
	}
	c := redis.NewClient(distributed.ClientOptions(o, 5*time.Second))
	t.Cleanup(func() { _ = c.Close() })
	g := &gate{}
	c.AddHook(g)
	return c, g
}

// queueBehind starts one call of lim that takes the store's only lane and
// is held in g's hook, then n calls of lim (n tokens each, on keys(i))
// that queue behind it. It returns the held call's hold and result and the
// queued calls' results.
func queueBehind(t *testing.T, m batchMode, s *distributed.Store, g *gate, lim bulwark.Limiter, ctx func(i int) context.Context, keys func(i int) string, n int) (*hold, chan allowResult, []chan allowResult) {
	t.Helper()
	h := m.holdFirst(g)
	first := goAllow(context.Background(), lim, keys(-1), 1)
	h.wait(t)
	rest := make([]chan allowResult, n)
	for i := range rest {
		rest[i] = goAllow(ctx(i), lim, keys(i), 1)
		waitQueued(t, s, i+1) // one at a time: the queue's order is i's
	}
	return h, first, rest
}

func background(int) context.Context { return context.Background() }

// TestBatchingPipelinesQueuedCalls: calls that find the only lane busy
// leave together as one pipeline when it frees up, and each is applied
// exactly once: a bucket of 10 admits exactly 10 of 21 calls.
func TestBatchingPipelinesQueuedCalls(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			c, g := batchClient(t, addr)
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt)
			for _, a := range algorithms {
				t.Run(a.name, func(t *testing.T) {
					l := bulwark.Limit{Events: 10, Period: 24 * time.Hour}
					lim, err := a.redis(s, "batch", l)
					if err != nil {
						t.Fatal(err)
					}
					before := len(g.pipelines())
					h, first, rest := queueBehind(t, m, s, g, lim, background, func(int) string { return "k" }, 20)
					h.let(nil)
					admitted := 0
					for _, ch := range append([]chan allowResult{first}, rest...) {
						r := <-ch
						if r.err != nil || r.d.Degraded {
							t.Fatalf("batched call: %+v, %v", r.d, r.err)
						}
						if r.d.Allowed {
							admitted++
						}
					}
					if admitted != 10 {
						t.Errorf("admitted %d of 21 calls, want exactly 10", admitted)
					}
					if got := g.pipelines()[before:]; !slices.Equal(got, m.want(a.sent(20))) {
						t.Errorf("pipelines of %v commands, want one of %d", got, a.sent(20))
					}
				})
			}
			if !s.Healthy() {
				t.Error("store unhealthy after successful batches")
			}
		})
	}
}

// TestBatchingNoScriptInPipeline: the pipeline itself meets NOSCRIPT (the
// script cache is flushed while the pipeline is held), and every command
// goes out again with EVAL, in a second pipeline, applied once each.
func TestBatchingNoScriptInPipeline(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			c, g := batchClient(t, srv.Addr())
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt)
			for _, a := range algorithms {
				t.Run(a.name, func(t *testing.T) {
					lim, err := a.redis(s, "noscript", bulwark.Limit{Events: 10, Period: 24 * time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					// Load the script first (another key), so that the held call
					// meets no NOSCRIPT: in dispatcher mode its EVAL would be a
					// pipeline of its own.
					if d, err := lim.Allow(context.Background(), "warm", 1); err != nil || d.Degraded {
						t.Fatalf("warm-up call: %+v, %v", d, err)
					}
					before := len(g.pipelines())
					h, first, rest := queueBehind(t, m, s, g, lim, background, func(int) string { return "k" }, 12)
					ph := g.holdNextPipeline()
					h.let(nil)
					if r := <-first; r.err != nil || r.d.Degraded || !r.d.Allowed {
						t.Fatalf("held call: %+v, %v", r.d, r.err)
					}
					ph.wait(t)
					srv.Do(t, "SCRIPT", "FLUSH")
					ph.let(nil)
					admitted := 1
					for _, ch := range rest {
						r := <-ch
						if r.err != nil || r.d.Degraded {
							t.Fatalf("queued call after SCRIPT FLUSH: %+v, %v", r.d, r.err)
						}
						if r.d.Allowed {
							admitted++
						}
					}
					if admitted != 10 {
						t.Errorf("admitted %d of 13 calls, want exactly 10", admitted)
					}
					if got := g.pipelines()[before:]; !slices.Equal(got, m.want(a.sent(12), a.sent(12))) {
						t.Errorf("pipelines of %v commands, want %d EVALSHA then %[2]d EVAL", got, a.sent(12))
					}
				})
			}
		})
	}
}

// TestBatchingLostReply: the pipeline reaches Redis but its replies are
// lost, on a client that retries (MaxRetries 3, read timeout 100ms below
// the store's budget). go-redis retries a pipeline of ordinary commands on
// another connection, which would apply every script again; the store's
// pipelines hold non-retryable commands, so each call is applied exactly
// once. The failed pipeline counts as one failure: with a threshold of 3,
// the held call's failure and the pipeline's leave the store healthy,
// where one failure per command (1 + 4) would have degraded it.
func TestBatchingLostReply(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			proxy := redistest.NewProxy(t, srv.Addr())
			retrying, g := batchClient(t, proxy.Addr(), func(o *redis.Options) {
				o.ReadTimeout = 100 * time.Millisecond
				o.MaxRetries = 3
				o.MinRetryBackoff, o.MaxRetryBackoff = time.Millisecond, time.Millisecond
			})
			s, _, prefix := testStore(t, retrying, distributed.WithTimeout(2*time.Second),
				m.opt, distributed.WithFailureThreshold(3))
			direct, err := distributed.New(srv.Client(t), distributed.WithPrefix(prefix))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			l := bulwark.Limit{Events: 10, Period: 24 * time.Hour}
			check := func(name string, sent int, viaProxy, viaDirect bulwark.Limiter) {
				t.Helper()
				if d, err := viaProxy.Allow(ctx, "k", 1); err != nil || d.Degraded {
					t.Fatalf("%s first call: %+v, %v", name, d, err)
				}
				warm(t, retrying, 8)
				before := len(g.pipelines())
				h, first, rest := queueBehind(t, m, s, g, viaProxy, background, func(int) string { return "k" }, 4)
				proxy.DropReplies(true)
				h.let(nil)
				for _, ch := range append([]chan allowResult{first}, rest...) {
					if r := <-ch; r.err != nil || !r.d.Degraded {
						t.Fatalf("%s call with a lost reply: %+v, %v; want a degraded decision", name, r.d, r.err)
					}
				}
				proxy.DropReplies(false)
				if got := g.pipelines()[before:]; !slices.Equal(got, m.want(sent)) {
					t.Fatalf("%s: pipelines of %v commands, want one of %d", name, got, sent)
				}
				if !s.Healthy() {
					t.Errorf("%s: store degraded after two failed round trips (threshold 3): a pipeline counted more than once", name)
				}
				d, err := viaDirect.Allow(ctx, "k", 1)
				if err != nil || d.Degraded || d.Remaining != 10-1-5-1 {
					t.Errorf("%s after 1 call, 5 with lost replies (4 in one pipeline) and 1: %+v, %v; want Remaining 3", name, d, err)
				}
			}
			for _, a := range algorithms {
				p, _ := a.redis(s, "once", l)
				q, _ := a.redis(direct, "once", l)
				check(a.name, a.sent(4), p, q)
			}
			mp, _ := s.Multi("once", distributed.NamedLimit{Name: "a", Limit: l}, distributed.NamedLimit{Name: "b", Limit: l})
			mq, _ := direct.Multi("once", distributed.NamedLimit{Name: "a", Limit: l}, distributed.NamedLimit{Name: "b", Limit: l})
			check("multi", 4, mp, mq)

			// The same lost replies with a pipeline of ordinary script commands:
			// go-redis retries it, and the script runs more than once.
			args := []any{"", "0", 1, "1", "86400000000", "10"}
			key := prefix + "plain"
			warm(t, retrying, 8)
			pipe := retrying.Pipeline()
			pipe.EvalSha(ctx, lua.TokenBucket.Hash(), []string{key}, args...)
			proxy.DropReplies(true)
			_, _ = pipe.Exec(ctx)
			proxy.DropReplies(false)
			v, err := lua.TokenBucket.Run(ctx, srv.Client(t), []string{key}, args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if v[1] >= 8 {
				t.Errorf("plain retried pipeline: remaining %d after 2 calls; the demonstration expected retries to apply it more than once", v[1])
			}
			t.Logf("plain go-redis pipeline retries: remaining %d of 10 after 2 calls", v[1])
		})
	}
}

// TestBatchingCancel: a queued caller whose context ends returns at once
// and its call is not sent; a caller whose context ends while its pipeline
// is in flight returns at once too (its script still runs, as with a lost
// reply).
func TestBatchingCancel(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			c, g := batchClient(t, addr)
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt)
			tb, _ := s.TokenBucket("cancel", bulwark.Limit{Events: 10, Period: 24 * time.Hour})
			ctxs := make([]context.Context, 3)
			cancels := make([]context.CancelFunc, 3)
			for i := range ctxs {
				ctxs[i], cancels[i] = context.WithCancel(context.Background())
				defer cancels[i]()
			}
			h, first, rest := queueBehind(t, m, s, g, tb, func(i int) context.Context { return ctxs[i] }, func(int) string { return "k" }, 3)

			// Queued, not sent yet: the held call still holds the only lane.
			cancels[0]()
			if r := <-rest[0]; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("canceled queued call: %+v, %v; want context.Canceled", r.d, r.err)
			}
			ph := g.holdNextPipeline()
			h.let(nil)
			if r := <-first; r.err != nil || r.d.Degraded {
				t.Fatalf("held call: %+v, %v", r.d, r.err)
			}
			ph.wait(t)
			// In flight: the pipeline waits in the hook.
			cancels[1]()
			if r := <-rest[1]; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("call canceled in flight: %+v, %v; want context.Canceled", r.d, r.err)
			}
			ph.let(nil)
			if r := <-rest[2]; r.err != nil || r.d.Degraded || r.d.Remaining != 10-3 {
				t.Fatalf("last call: %+v, %v; want Remaining 7 (held, in flight, last)", r.d, r.err)
			}
			if got := g.pipelines(); !slices.Equal(got, m.want(1)) {
				t.Errorf("pipelines of %v commands, want one of 1 (the call canceled in the queue is not sent, and the other two are one merged command)", got)
			}
		})
	}
}

// TestBatchingDegraded: calls queued when the store turns degraded are
// decided at once by the failure policy, without I/O.
func TestBatchingDegraded(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			c, g := batchClient(t, addr)
			s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt,
				distributed.WithFailureThreshold(1), distributed.WithProbeInterval(time.Hour))
			tb, _ := s.TokenBucket("degrade", bulwark.Limit{Events: 3, Period: 24 * time.Hour})
			h, first, rest := queueBehind(t, m, s, g, tb, background, func(int) string { return "k" }, 5)
			h.let(&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")})
			var allowed []bool
			for _, ch := range append([]chan allowResult{first}, rest...) {
				r := <-ch
				if r.err != nil || !r.d.Degraded {
					t.Fatalf("call with Redis failing: %+v, %v; want a degraded decision", r.d, r.err)
				}
				allowed = append(allowed, r.d.Allowed)
			}
			if s.Healthy() {
				t.Error("store healthy after a failure with threshold 1")
			}
			if got := g.pipelines(); !slices.Equal(got, m.want()) {
				t.Errorf("pipelines of %v commands sent by a degraded store, want none", got)
			}
			if n := countTrue(allowed); n != 3 {
				t.Errorf("degraded decisions admitted %d of 6, want the twin's 3", n)
			}
		})
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// TestBatchingClose: calls queued when the store closes return ErrClosed,
// and Close waits for a pipeline in flight (the leak check in TestMain checks that
// no goroutine outlives the store).
func TestBatchingClose(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			addr := redistest.Default(t).(*redis.Client).Options().Addr
			t.Run("queued", func(t *testing.T) {
				c, g := batchClient(t, addr)
				s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt)
				tb, _ := s.TokenBucket("close", bulwark.Limit{Events: 10, Period: 24 * time.Hour})
				h, first, rest := queueBehind(t, m, s, g, tb, background, func(int) string { return "k" }, 3)
				// In dispatcher mode the held call is the writer's: Close
				// waits for it. Wait until the store says it is closed.
				closed := make(chan error, 1)
				go func() { closed <- s.Close() }()
				deadline := time.Now().Add(10 * time.Second)
				for {
					// Before Close, the probe queues and leaves on its
					// context's end, unsent.
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
					_, err := tb.Allow(ctx, "probe", 1)
					cancel()
					if errors.Is(err, distributed.ErrClosed) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("store not closed after 10s")
					}
					time.Sleep(time.Millisecond)
				}
				h.let(nil)
				if r := <-first; r.err != nil || r.d.Degraded {
					t.Fatalf("held call: %+v, %v", r.d, r.err)
				}
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
				for _, ch := range rest {
					if r := <-ch; !errors.Is(r.err, distributed.ErrClosed) {
						t.Errorf("call queued at Close: %+v, %v; want ErrClosed", r.d, r.err)
					}
				}
				if got := g.pipelines(); !slices.Equal(got, m.want()) {
					t.Errorf("pipelines of %v commands sent after Close, want none", got)
				}
			})
			t.Run("in flight", func(t *testing.T) {
				c, g := batchClient(t, addr)
				s, _, _ := testStore(t, c, distributed.WithTimeout(5*time.Second), m.opt)
				tb, _ := s.TokenBucket("close", bulwark.Limit{Events: 10, Period: 24 * time.Hour})
				h, first, rest := queueBehind(t, m, s, g, tb, background, func(int) string { return "k" }, 3)
				ph := g.holdNextPipeline()
				h.let(nil)
				<-first
				ph.wait(t)
				closed := make(chan struct{})
				go func() {
					_ = s.Close()
					close(closed)
				}()
				for _, ch := range rest {
					select {
					case <-ch:
						t.Fatal("a call of the held pipeline returned")
					case <-closed:
						t.Fatal("Close returned while a pipeline was in flight")
					default:
					}
				}
				ph.let(nil)
				<-closed
				for _, ch := range rest {
					if r := <-ch; r.err != nil || r.d.Degraded {
						t.Errorf("call in flight at Close: %+v, %v; want its Redis decision", r.d, r.err)
					}
				}
			})
		})
	}
}

// TestBatchingExactUnderLoad: 64 goroutines share one key through the
// default lanes, then through the dispatcher; every algorithm admits
// exactly its limit.
func TestBatchingExactUnderLoad(t *testing.T) {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			opts := []distributed.Option{distributed.WithTimeout(5 * time.Second)}
			if m.held != nil {
				opts = append(opts, m.opt) // else the default lanes
			}
			exactUnderLoad(t, addr, opts)
		})
	}
}

func exactUnderLoad(t *testing.T, addr string, opts []distributed.Option) {
	c, g := batchClient(t, addr, func(o *redis.Options) { o.PoolSize = 16 })
	s, _, _ := testStore(t, c, opts...)
	const goroutines, calls, limit = 64, 8, 100
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			lim, err := a.redis(s, "load", bulwark.Limit{Events: limit, Period: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			var admitted, degraded atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range calls {
						d, err := lim.Allow(context.Background(), "hot", 1)
						if err != nil {
							t.Error(err)
							return
						}
						if d.Degraded {
							degraded.Add(1)
						}
						if d.Allowed {
							admitted.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if admitted.Load() != limit || degraded.Load() != 0 {
				t.Errorf("admitted %d of %d calls (%d degraded), want exactly %d, none degraded",
					admitted.Load(), goroutines*calls, degraded.Load(), limit)
			}
		})
	}
	sizes := g.pipelines()
	total := 0
	for _, n := range sizes {
		total += n
	}
	t.Logf("%d pipelines carried %d of %d calls", len(sizes), total, len(algorithms)*goroutines*calls)
}

// TestBatchingCluster: a pipeline over keys on every master of a cluster
// (go-redis splits it per node), on a new cluster and again after SCRIPT
// FLUSH on every node: the commands that met NOSCRIPT go again as EVAL,
// and every call is applied exactly once.
func TestBatchingCluster(t *testing.T) {
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			cl := redistest.StartCluster(t, 3, 0) // its own: the test flushes scripts
			cc := redis.NewClusterClient(distributed.ClusterClientOptions(&redis.ClusterOptions{Addrs: cl.Addrs()}, 5*time.Second))
			t.Cleanup(func() { _ = cc.Close() })
			g := &gate{}
			cc.AddHook(g)
			s, _, _ := testStore(t, cc, distributed.WithTimeout(5*time.Second), m.opt)
			tb, _ := s.TokenBucket("cluster", bulwark.Limit{Events: 10, Period: 24 * time.Hour})
			const n = 30
			key := func(i int) string { return fmt.Sprintf("user-%d", i+1) }
			masters := map[string]bool{}
			held := cl.MasterFor("{cluster:" + key(-1) + "}").Addr()
			elsewhere := 0 // keys not on the held call's master
			for i := range n {
				m := cl.MasterFor("{cluster:" + key(i) + "}").Addr()
				masters[m] = true
				if m != held {
					elsewhere++
				}
			}
			if len(masters) != 3 {
				t.Fatalf("keys on %d masters, want 3", len(masters))
			}
			for round := range 2 {
				if round == 1 {
					for _, m := range cl.Masters() {
						m.Do(t, "SCRIPT", "FLUSH")
					}
				}
				before := len(g.pipelines())
				h, first, rest := queueBehind(t, m, s, g, tb, background, key, n)
				h.let(nil)
				if r := <-first; r.err != nil || r.d.Degraded {
					t.Fatalf("round %d: held call: %+v, %v", round, r.d, r.err)
				}
				for i, ch := range rest {
					r := <-ch
					if r.err != nil || r.d.Degraded || r.d.Remaining != 10-1-round {
						t.Errorf("round %d: key %q: %+v, %v; want Remaining %d", round, key(i), r.d, r.err, 10-1-round)
					}
				}
				// The held call loaded the script on its own master only (a new
				// cluster, then SCRIPT FLUSH): the commands for the other masters
				// met NOSCRIPT and went again as EVAL. In dispatcher mode the
				// held call is a pipeline: EVALSHA, then EVAL.
				want := m.want(n, elsewhere)
				if m.held != nil {
					want = append(m.want(m.held...), n, elsewhere)
				}
				if got := g.pipelines()[before:]; !slices.Equal(got, want) {
					t.Errorf("round %d: pipelines of %v commands, want %v (the last after NOSCRIPT)", round, got, want)
				}
			}
		})
	}
}

// TestBatchingTimeout: with Redis hung (the proxy answers nothing), every
// caller of a batching store returns within the store's time budget (1s
// here, with generous slack for a loaded machine, and far below the
// client's own 5s timeouts), whether its call went out first or queued
// behind a pipeline in flight, with a degraded decision.
func TestBatchingTimeout(t *testing.T) {
	srv := redistest.StartServer(t)
	for _, m := range batchModes {
		t.Run(m.name, func(t *testing.T) {
			proxy := redistest.NewProxy(t, srv.Addr())
			c, _ := batchClient(t, proxy.Addr())
			s, _, _ := testStore(t, c, distributed.WithTimeout(time.Second), m.opt,
				distributed.WithFailureThreshold(1000))
			tb, _ := s.TokenBucket("timeout", bulwark.Limit{Events: 100, Period: time.Hour})
			if d, err := tb.Allow(context.Background(), "k", 1); err != nil || d.Degraded {
				t.Fatalf("first call: %+v, %v", d, err)
			}
			warm(t, c, 4)
			proxy.Blackhole(true)
			const n = 8
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					d, err := tb.Allow(context.Background(), "k", 1)
					if took := time.Since(start); took > 3*time.Second {
						t.Errorf("call returned after %v with a store budget of 1s", took)
					}
					if err != nil || !d.Degraded {
						t.Errorf("call to a hung Redis: %+v, %v; want a degraded decision", d, err)
					}
				}()
			}
			wg.Wait()
			// Let the key cleanup through, on new connections.
			proxy.Blackhole(false)
			proxy.CutAll()
		})
	}
}

// TestDispatcherOption: the later of WithBatching and WithDispatcher wins,
// and a client that ignores deadlines gets neither.
func TestDispatcherOption(t *testing.T) {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	c, _ := batchClient(t, addr)
	for _, tc := range []struct {
		name string
		opts []distributed.Option
		want bool
	}{
		{"dispatcher", []distributed.Option{distributed.WithDispatcher()}, true},
		{"batching off, then dispatcher", []distributed.Option{distributed.WithBatching(0), distributed.WithDispatcher()}, true},
		{"dispatcher, then lanes", []distributed.Option{distributed.WithDispatcher(), distributed.WithBatching(2)}, false},
		{"default", nil, false},
	} {
		s, err := distributed.New(c, tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := distributed.Dispatching(s); got != tc.want {
			t.Errorf("%s: dispatching %v, want %v", tc.name, got, tc.want)
		}
		_ = s.Close()
	}
	plain := redis.NewClient(&redis.Options{Addr: addr}) // ignores deadlines
	defer plain.Close()
	s, err := distributed.New(plain, distributed.WithDispatcher())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if distributed.Dispatching(s) {
		t.Error("dispatching on a client that ignores context deadlines")
	}
}
