package distributed_test

// Fault-injection suite: real redis-server processes (internal/redistest)
// are killed, frozen, slowed, filled up, paused, cut and failed over while
// goroutines ask limiters for decisions. These tests measure time because
// the behaviour they prove is about time (how long a caller waits, how soon
// the store returns to Redis); the bounds and the measurements are logged.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

const (
	faultTimeout = 100 * time.Millisecond // the stores' call budget in this suite
	// faultMargin is the scheduling slack allowed on top of a timeout on a
	// loaded two-core machine running the race detector.
	faultMargin = 150 * time.Millisecond
)

// recorder is an observer keeping health switches and failed calls.
type recorder struct {
	mu       sync.Mutex
	switches []bulwark.Event
	reasons  map[distributed.Reason]int
	calls    int
}

func newRecorder() *recorder { return &recorder{reasons: map[distributed.Reason]int{}} }

func (r *recorder) Observe(e bulwark.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case bulwark.EventStoreHealth:
		r.switches = append(r.switches, e)
	case bulwark.EventStoreCall:
		r.calls++
		var ce *distributed.CallError
		if errors.As(e.Err, &ce) {
			r.reasons[ce.Reason]++
		}
	}
}

func (r *recorder) health() []bulwark.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.switches)
}

func (r *recorder) reason(x distributed.Reason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reasons[x]
}

// firstSwitch returns the time of the first switch to degraded (or to
// healthy) at or after since.
func (r *recorder) firstSwitch(degraded bool, since time.Time) (time.Time, bool) {
	for _, e := range r.health() {
		if e.Degraded == degraded && !e.Time.Before(since) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// sample is one decision made under load.
type sample struct {
	start, end time.Time
	d          bulwark.Decision
	err        error
}

func (s sample) latency() time.Duration { return s.end.Sub(s.start) }

// load runs workers goroutines asking for decisions until stopped. Each
// pauses 200µs between calls, to keep the machine usable for the servers.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
}

func startLoad(workers int, ask func(ctx context.Context, worker, i int) (bulwark.Decision, error)) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			var local []sample
			defer func() {
				l.mu.Lock()
				l.samples = append(l.samples, local...)
				l.mu.Unlock()
			}()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				d, err := ask(context.Background(), w, i)
				local = append(local, sample{start: start, end: time.Now(), d: d, err: err})
				time.Sleep(200 * time.Microsecond)
			}
		})
	}
	return l
}

func (l *load) finish() []sample {
	close(l.stop)
	l.wg.Wait()
	slices.SortFunc(l.samples, func(a, b sample) int { return a.start.Compare(b.start) })
	return l.samples
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the latencies.
func percentile(ss []sample, p float64) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(ss))
	for i, s := range ss {
		lat[i] = s.latency()
	}
	slices.Sort(lat)
	i := int(float64(len(lat))*p/100+0.5) - 1
	return lat[max(0, min(i, len(lat)-1))]
}

func between(ss []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range ss {
		if !s.start.Before(from) && s.end.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

func noErrors(t *testing.T, ss []sample) {
	t.Helper()
	n := 0
	for _, s := range ss {
		if s.err != nil {
			if n < 5 {
				t.Errorf("a caller got an error: %v", s.err)
			}
			n++
		}
	}
	if n > 0 {
		t.Errorf("%d of %d decisions returned an error, want 0", n, len(ss))
	}
}

// faultClient is the recommended client for a store with faultTimeout.
func faultClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: addr}, faultTimeout))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func faultStore(t *testing.T, c distributed.Client, prefix string, rec *recorder, opts ...distributed.Option) *distributed.Store {
	t.Helper()
	s, err := distributed.New(c, append([]distributed.Option{
		distributed.WithPrefix(prefix), distributed.WithTimeout(faultTimeout), distributed.WithObserver(rec),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestFaultKilled: Redis is SIGKILLed under a 32-goroutine load and
// restarted on the same port. No caller sees an error; every decision of
// the outage is degraded; once the store noticed, decisions take no I/O
// (p99 ≤ 1ms); after the restart Redis serves decisions again within 2s.
func TestFaultKilled(t *testing.T) {
	srv := redistest.StartServer(t)
	rec := newRecorder()
	s := faultStore(t, faultClient(t, srv.Addr()), "fault-kill", rec)
	tb, err := s.TokenBucket("kill", bulwark.Limit{Events: 1_000_000, Period: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(32, func(ctx context.Context, w, i int) (bulwark.Decision, error) {
		return tb.Allow(ctx, fmt.Sprintf("k%d", w), 1)
	})
	time.Sleep(300 * time.Millisecond) // healthy traffic first
	srv.Kill()
	killed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	restartAt := time.Now()
	srv.Restart()
	restarted := time.Now()
	recovered, ok := false, false
	var back time.Time
	for deadline := restarted.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s.Healthy() {
			back, recovered = time.Now(), true
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	ss := l.finish()
	noErrors(t, ss)
	if !recovered {
		t.Fatalf("store still degraded 5s after the restart: %v", s.HealthError())
	}

	detected, ok := rec.firstSwitch(true, killed.Add(-time.Second))
	if !ok {
		t.Fatal("no switch to degraded after the kill")
	}
	outage := between(ss, killed, restartAt)
	for _, x := range outage {
		if !x.d.Degraded {
			t.Fatalf("decision at +%v of the outage served by Redis: %+v", x.start.Sub(killed), x.d)
		}
	}
	afterDetection := between(ss, detected, restartAt)
	p99 := percentile(afterDetection, 99)
	if len(afterDetection) < 1000 || p99 > time.Millisecond {
		t.Errorf("after detection: %d decisions, p99 %v; want ≥ 1000 decisions and p99 ≤ 1ms", len(afterDetection), p99)
	}
	// First decision served by Redis after the restart.
	var firstRedis time.Time
	for _, x := range ss {
		if x.start.After(restarted) && !x.d.Degraded {
			firstRedis = x.end
			break
		}
	}
	if firstRedis.IsZero() || firstRedis.Sub(restarted) > 2*time.Second {
		t.Errorf("first Redis decision %v after the restart, want within 2s", firstRedis.Sub(restarted))
	}
	if worst := percentile(between(ss, killed.Add(-faultTimeout), detected.Add(faultTimeout)), 100); worst > faultTimeout+faultMargin {
		t.Errorf("slowest decision around the kill %v, want ≤ timeout %v + %v", worst, faultTimeout, faultMargin)
	}
	t.Logf("decisions %d; detection %v after the kill; outage decisions %d, p50 %v p99 %v max %v; healthy again %v and first Redis decision %v after the restart; switches %d",
		len(ss), detected.Sub(killed), len(afterDetection), percentile(afterDetection, 50), p99, percentile(afterDetection, 100),
		back.Sub(restarted), firstRedis.Sub(restarted), s.Switches())
}

// TestFaultHung: Redis frozen by SIGSTOP, and a proxy adding 2s of
// latency: no call waits longer than the store's timeout (plus scheduling
// slack), the store turns degraded, goroutines do not pile up, a caller's
// shorter deadline is honoured, and the store recovers once Redis answers.
// Both with the recommended client (ContextTimeoutEnabled) and with
// go-redis defaults (the store then runs calls detached).
func TestFaultHung(t *testing.T) {
	clients := map[string]func(addr string) *redis.Client{
		"recommended client": func(addr string) *redis.Client { return faultClient(t, addr) },
		"default client": func(addr string) *redis.Client {
			c := redis.NewClient(&redis.Options{Addr: addr}) // ReadTimeout 5s, no ContextTimeoutEnabled
			t.Cleanup(func() { _ = c.Close() })
			return c
		},
	}
	// SIGSTOP goes straight to the server, so the goroutine count is the
	// library's and go-redis's alone; the latency needs the in-process
	// proxy, whose own goroutines (several per connection) are logged only.
	faults := []struct {
		name          string
		proxied       bool
		inject, clear func(srv *redistest.Server, p *redistest.Proxy)
	}{
		{"SIGSTOP", false, func(srv *redistest.Server, _ *redistest.Proxy) { srv.Pause() }, func(srv *redistest.Server, _ *redistest.Proxy) { srv.Resume() }},
		{"2s latency", true, func(_ *redistest.Server, p *redistest.Proxy) { p.SetLatency(2 * time.Second) }, func(_ *redistest.Server, p *redistest.Proxy) { p.SetLatency(0) }},
	}
	for _, f := range faults {
		for cname, newClient := range clients {
			t.Run(f.name+"/"+cname, func(t *testing.T) {
				srv := redistest.StartServer(t)
				proxy := redistest.NewProxy(t, srv.Addr())
				addr := srv.Addr()
				if f.proxied {
					addr = proxy.Addr()
				}
				rec := newRecorder()
				s := faultStore(t, newClient(addr), "fault-hung", rec, distributed.WithMinDegraded(200*time.Millisecond))
				tb, _ := s.TokenBucket("hung", bulwark.Limit{Events: 1_000_000, Period: time.Second})
				var maxG atomic.Int64
				l := startLoad(32, func(ctx context.Context, w, i int) (bulwark.Decision, error) {
					if g := int64(runtime.NumGoroutine()); g > maxG.Load() {
						maxG.Store(g)
					}
					return tb.Allow(ctx, fmt.Sprintf("k%d", w), 1)
				})
				time.Sleep(200 * time.Millisecond)
				baseline := runtime.NumGoroutine() // with the load running and its connections open
				maxG.Store(0)
				f.inject(srv, proxy)
				injected := time.Now()
				time.Sleep(800 * time.Millisecond)

				// A caller with a deadline shorter than the store's budget,
				// while degraded: answered at once, never past its deadline.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				start := time.Now()
				d, err := tb.Allow(ctx, "short", 1)
				cancel()
				if err != nil || !d.Degraded || time.Since(start) > 20*time.Millisecond+faultMargin {
					t.Errorf("degraded call with a 20ms deadline: %+v, %v after %v", d, err, time.Since(start))
				}
				f.clear(srv, proxy)
				cleared := time.Now()
				back := waitHealthy(t, s, 5*time.Second)
				ss := l.finish()
				noErrors(t, ss)

				worst := percentile(ss, 100)
				if worst > faultTimeout+faultMargin {
					t.Errorf("slowest decision %v, want ≤ timeout %v + %v", worst, faultTimeout, faultMargin)
				}
				detected, ok := rec.firstSwitch(true, injected)
				if !ok {
					t.Fatal("store never degraded")
				}
				if dt := detected.Sub(injected); dt > faultTimeout+faultMargin {
					t.Errorf("degraded %v after the fault, want ≤ %v", dt, faultTimeout+faultMargin)
				}
				// Beyond the running load: at most one detached call per caller
				// stuck when the store degraded, the prober and a few go-redis
				// goroutines.
				if g := maxG.Load(); !f.proxied && g > int64(baseline)+32+8 {
					t.Errorf("goroutines peaked at %d (%d with the load running, 32 callers): they pile up", g, baseline)
				}
				degraded := between(ss, detected, cleared)
				t.Logf("decisions %d; slowest %v; degraded %v after the fault; p99 while degraded %v; goroutines baseline %d peak %d; healthy %v after clearing; reasons timeout=%d",
					len(ss), worst, detected.Sub(injected), percentile(degraded, 99), baseline, maxG.Load(), back, rec.reason(distributed.ReasonTimeout))
			})
		}
	}
}

// TestFaultFairShare: three stores as three replicas, each with a
// membership. With Redis killed each enforces a third of the limit; after
// one replica stops heartbeating the others count two within its TTL, and
// the next outage gives each half.
func TestFaultFairShare(t *testing.T) {
	srv := redistest.StartServer(t)
	const ttl, beat = time.Second, 200 * time.Millisecond
	type replica struct {
		store *distributed.Store
		mem   *cluster.Membership
		proxy *redistest.Proxy // the membership's own link, to silence it
		tb    *distributed.TokenBucket
	}
	var rs []*replica
	for range 3 {
		p := redistest.NewProxy(t, srv.Addr())
		mem, err := cluster.Join(faultClient(t, p.Addr()), cluster.WithPrefix("fair"), cluster.WithTTL(ttl), cluster.WithHeartbeatInterval(beat))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mem.Close() })
		s := faultStore(t, faultClient(t, srv.Addr()), "fair", newRecorder(),
			distributed.WithReplicaCounter(mem), distributed.WithMinDegraded(100*time.Millisecond))
		tb, _ := s.TokenBucket("share", bulwark.Limit{Events: 30, Period: time.Hour})
		rs = append(rs, &replica{store: s, mem: mem, proxy: p, tb: tb})
	}
	waitCount := func(want int, within time.Duration, live []*replica) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			ok := true
			for _, r := range live {
				ok = ok && r.mem.Replicas() == want
			}
			if ok {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("membership counts did not reach %d within %v", want, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	outage := func(live []*replica, key string, want int) {
		t.Helper()
		srv.Kill()
		for i, r := range live {
			admitted := 0
			for range 40 {
				d, err := r.tb.Allow(context.Background(), key, 1)
				if err != nil || !d.Degraded {
					t.Fatalf("replica %d with Redis down: %+v, %v", i, d, err)
				}
				if d.Allowed {
					admitted++
				}
			}
			if admitted != want {
				t.Errorf("replica %d admitted %d with Redis down, want its share %d", i, admitted, want)
			}
		}
		srv.Restart()
		for _, r := range live {
			waitHealthy(t, r.store, 5*time.Second)
		}
	}
	waitCount(3, 3*time.Second, rs)
	outage(rs, "a", 10)

	// Replica 2's heartbeats stop reaching Redis (as if it hung or was
	// partitioned): the others count two within TTL + one heartbeat.
	waitCount(3, 3*time.Second, rs)
	rs[2].proxy.Blackhole(true)
	rs[2].proxy.CutAll()
	left := waitCount(2, ttl+beat+time.Second, rs[:2])
	if left > ttl+beat+faultMargin {
		t.Errorf("silent replica left the count after %v, want within TTL %v + heartbeat %v", left, ttl, beat)
	}
	outage(rs[:2], "b", 15)
	t.Logf("silent replica left the count after %v (TTL %v, heartbeat %v)", left, ttl, beat)
}

// TestFaultRecoveryBound: what to expect after recovery. The twins'
// admissions are not written back to Redis, so a window of one period that
// straddles the recovery may admit up to twice the limit; windows wholly
// after recovery admit at most the limit again.
func TestFaultRecoveryBound(t *testing.T) {
	srv := redistest.StartServer(t)
	rec := newRecorder()
	s := faultStore(t, faultClient(t, srv.Addr()), "fault-bound", rec, distributed.WithMinDegraded(100*time.Millisecond))
	const events, period = 20, time.Second
	lim, _ := s.SlidingLog("bound", bulwark.Limit{Events: events, Period: period})
	l := startLoad(8, func(ctx context.Context, _, _ int) (bulwark.Decision, error) {
		return lim.Allow(ctx, "k", 1)
	})
	time.Sleep(1500 * time.Millisecond)
	srv.Kill()
	time.Sleep(1500 * time.Millisecond)
	srv.Restart()
	back := waitHealthy(t, s, 5*time.Second)
	recovered := time.Now()
	time.Sleep(2500 * time.Millisecond)
	ss := l.finish()
	noErrors(t, ss)

	var admitted []time.Time
	for _, x := range ss {
		if x.d.Allowed {
			admitted = append(admitted, x.end)
		}
	}
	slices.SortFunc(admitted, func(a, b time.Time) int { return a.Compare(b) })
	// Largest count in a window [t, t+span) over admissions starting in [from, to).
	maxIn := func(from, to time.Time, span time.Duration) int {
		best := 0
		for i, a := range admitted {
			if a.Before(from) || !a.Before(to) {
				continue
			}
			n := 0
			for _, b := range admitted[i:] {
				if b.Sub(a) >= span {
					break
				}
				n++
			}
			best = max(best, n)
		}
		return best
	}
	// Client-side stamps differ from Redis TIME by a round trip, so the
	// windows checked are a little shorter than the period.
	span := period - 20*time.Millisecond
	straddle := maxIn(recovered.Add(-period), recovered, span)
	after := maxIn(recovered.Add(period), recovered.Add(1500*time.Millisecond), span)
	if straddle > 2*events {
		t.Errorf("a window straddling recovery admitted %d, want ≤ 2×%d", straddle, events)
	}
	if after > events {
		t.Errorf("a window one period after recovery admitted %d, want ≤ %d", after, events)
	}
	t.Logf("healthy %v after the restart; most admitted in a %v window: %d straddling recovery, %d after one period (limit %d)",
		back, span, straddle, after, events)
}

// TestFaultLostReply: the request reaches Redis but the reply is lost; a
// default go-redis client (MaxRetries 3) would run the script again. Every
// algorithm and a Multi charge each call exactly once.
func TestFaultLostReply(t *testing.T) {
	srv := redistest.StartServer(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	retrying := redis.NewClient(&redis.Options{
		Addr: proxy.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: 3,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond,
	})
	t.Cleanup(func() { _ = retrying.Close() })
	s := faultStore(t, retrying, "lost", newRecorder(), distributed.WithTimeout(0))
	direct := faultStore(t, srv.Client(t), "lost", newRecorder())
	l := bulwark.Limit{Events: 10, Period: 24 * time.Hour}
	ctx := context.Background()
	check := func(name string, viaProxy, viaDirect bulwark.Limiter) {
		t.Helper()
		if d, err := viaProxy.Allow(ctx, "k", 1); err != nil || d.Degraded {
			t.Fatalf("%s first call: %+v, %v", name, d, err)
		}
		warm(t, retrying, 5)
		proxy.DropReplies(true)
		d, err := viaProxy.Allow(ctx, "k", 2)
		proxy.DropReplies(false)
		if err != nil || !d.Degraded {
			t.Fatalf("%s call with a lost reply: %+v, %v; want a degraded decision", name, d, err)
		}
		d, err = viaDirect.Allow(ctx, "k", 1)
		if err != nil || d.Degraded || d.Remaining != 10-1-2-1 {
			t.Errorf("%s after calls of 1, 2 (reply lost) and 1 token: %+v, %v; want Remaining 6", name, d, err)
		}
	}
	for _, a := range algorithms {
		p, _ := a.redis(s, "once", l)
		q, _ := a.redis(direct, "once", l)
		check(a.name, p, q)
	}
	mp, _ := s.Multi("once", distributed.NamedLimit{Name: "a", Limit: l}, distributed.NamedLimit{Name: "b", Limit: l})
	mq, _ := direct.Multi("once", distributed.NamedLimit{Name: "a", Limit: l}, distributed.NamedLimit{Name: "b", Limit: l})
	check("multi", mp, mq)
}

// TestFaultServerErrors: BUSY (a foreign script running past the busy
// threshold), OOM (maxmemory with noeviction) and CLIENT PAUSE. Each gives
// fast degraded decisions, typed reasons in the store's events, no error to
// callers, and a return to Redis once the fault is cleared.
func TestFaultServerErrors(t *testing.T) {
	cases := []struct {
		name   string
		reason distributed.Reason
		inject func(t *testing.T, srv *redistest.Server) (clear func())
	}{
		{"BUSY", distributed.ReasonBusy, func(t *testing.T, srv *redistest.Server) func() {
			srv.Do(t, "CONFIG", "SET", "busy-reply-threshold", "100")
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = srv.Exec(context.Background(), "EVAL", "while true do end", "0")
			}()
			time.Sleep(300 * time.Millisecond) // past the threshold: BUSY replies
			return func() {
				srv.Do(t, "SCRIPT", "KILL")
				<-done
			}
		}},
		{"OOM", distributed.ReasonOutOfMemory, func(t *testing.T, srv *redistest.Server) func() {
			srv.Do(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
			srv.Do(t, "CONFIG", "SET", "maxmemory", "1mb")
			c := srv.Client(t)
			for i := 0; ; i++ {
				err := c.Set(context.Background(), fmt.Sprintf("fill:%d", i), make([]byte, 4096), 0).Err()
				if err != nil {
					if !strings.HasPrefix(err.Error(), "OOM") {
						t.Fatalf("filling Redis: %v, want an OOM error", err)
					}
					break
				}
				if i > 10_000 {
					t.Fatal("maxmemory never refused a write")
				}
			}
			return func() { srv.Do(t, "CONFIG", "SET", "maxmemory", "0") }
		}},
		{"CLIENT PAUSE", distributed.ReasonTimeout, func(t *testing.T, srv *redistest.Server) func() {
			srv.Do(t, "CLIENT", "PAUSE", "700")
			return func() { srv.Do(t, "CLIENT", "UNPAUSE") }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			rec := newRecorder()
			s := faultStore(t, faultClient(t, srv.Addr()), "fault-srv", rec, distributed.WithMinDegraded(100*time.Millisecond))
			tb, _ := s.TokenBucket("srv", bulwark.Limit{Events: 1_000_000, Period: time.Second})
			if d, err := tb.Allow(context.Background(), "warm", 1); err != nil || d.Degraded {
				t.Fatalf("before the fault: %+v, %v", d, err)
			}
			clear := c.inject(t, srv)
			l := startLoad(8, func(ctx context.Context, w, i int) (bulwark.Decision, error) {
				return tb.Allow(ctx, fmt.Sprintf("k%d", w), 1)
			})
			time.Sleep(400 * time.Millisecond)
			if s.Healthy() {
				t.Errorf("store healthy during %s", c.name)
			}
			var ce *distributed.CallError
			if err := s.HealthError(); !errors.As(err, &ce) || !errors.Is(err, distributed.ErrUnavailable) || ce.Reason != distributed.ReasonDegraded {
				t.Errorf("HealthError() = %v, want a degraded *CallError matching ErrUnavailable", err)
			}
			clear()
			back := waitHealthy(t, s, 5*time.Second)
			ss := l.finish()
			noErrors(t, ss)
			if n := rec.reason(c.reason); n == 0 {
				t.Errorf("no store call failed with reason %v; reasons seen: %v", c.reason, rec.reasons)
			}
			worst := percentile(ss, 100)
			if worst > faultTimeout+faultMargin {
				t.Errorf("slowest decision %v, want ≤ %v", worst, faultTimeout+faultMargin)
			}
			degraded := 0
			for _, x := range ss {
				if x.d.Degraded {
					degraded++
				}
			}
			if degraded == 0 {
				t.Error("no degraded decision during the fault")
			}
			t.Logf("%s: decisions %d (%d degraded), slowest %v, healthy %v after clearing, reasons %v", c.name, len(ss), degraded, worst, back, rec.reasons)
		})
	}
}

// TestFaultFlapping: a proxy cuts every connection every 300ms for 5s,
// with a store that degrades on the first failure. The store switches no
// more often than its hysteresis allows: each degraded period lasts at
// least the minimum degraded time (doubling while the link keeps
// flapping), so there are at most two switches per minimum degraded time.
func TestFaultFlapping(t *testing.T) {
	srv := redistest.StartServer(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	rec := newRecorder()
	const minDegraded, run = 500 * time.Millisecond, 5 * time.Second
	s := faultStore(t, faultClient(t, proxy.Addr()), "flap", rec,
		distributed.WithFailureThreshold(1), distributed.WithMinDegraded(minDegraded), distributed.WithProbeInterval(50*time.Millisecond))
	tb, _ := s.TokenBucket("flap", bulwark.Limit{Events: 1_000_000, Period: time.Second})
	l := startLoad(8, func(ctx context.Context, w, i int) (bulwark.Decision, error) {
		return tb.Allow(ctx, fmt.Sprintf("k%d", w), 1)
	})
	cuts := 0
	for start := time.Now(); time.Since(start) < run; cuts++ {
		time.Sleep(300 * time.Millisecond)
		proxy.CutAll()
	}
	ss := l.finish()
	noErrors(t, ss)
	sw := rec.health()
	if len(sw) == 0 {
		t.Fatal("the cuts never degraded the store: the test proves nothing")
	}
	if bound := 2*int(run/minDegraded) + 1; len(sw) > bound {
		t.Errorf("%d switches in %v with min degraded %v, want ≤ %d", len(sw), run, minDegraded, bound)
	}
	for i := 0; i+1 < len(sw); i++ {
		if sw[i].Degraded && !sw[i+1].Degraded {
			if dwell := sw[i+1].Time.Sub(sw[i].Time); dwell < minDegraded {
				t.Errorf("degraded for %v, want ≥ %v", dwell, minDegraded)
			}
		}
	}
	t.Logf("%d cuts, %d switches in %v (min degraded %v)", cuts, len(sw), run, minDegraded)
}

// TestFaultClusterFailover: a master with a replica is killed under load.
// Decisions stay available (degraded while the slots are unserved), and
// after the replica takes over the limiters are served by Redis again
// through the same client.
func TestFaultClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	client := c.Client(t, func(o *redis.ClusterOptions) {
		*o = *distributed.ClusterClientOptions(o, faultTimeout)
	})
	rec := newRecorder()
	s := faultStore(t, client, "cfail", rec, distributed.WithMaxDegraded(2*time.Second), distributed.WithMinDegraded(200*time.Millisecond))
	tb, _ := s.TokenBucket("failover", bulwark.Limit{Events: 1_000_000, Period: time.Second})
	l := startLoad(8, func(ctx context.Context, w, i int) (bulwark.Decision, error) {
		return tb.Allow(ctx, fmt.Sprintf("k%d-%d", w, i%16), 1)
	})
	time.Sleep(300 * time.Millisecond)
	victim := c.Masters()[0]
	victim.Kill()
	killed := time.Now()
	c.WaitFailover(t, victim, 20*time.Second)
	failedOver := time.Now()
	// Every key is served by Redis again, through the same client.
	var back time.Time
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		allRedis := true
		for k := range 32 {
			d, err := tb.Allow(context.Background(), fmt.Sprintf("probe%d", k), 1)
			if err != nil {
				t.Fatal(err)
			}
			allRedis = allRedis && !d.Degraded
		}
		if allRedis {
			back = time.Now()
			break
		}
	}
	ss := l.finish()
	noErrors(t, ss)
	if back.IsZero() {
		t.Fatalf("keys still decided locally 20s after the failover: %v", s.HealthError())
	}
	if worst := percentile(ss, 100); worst > faultTimeout+faultMargin {
		t.Errorf("slowest decision %v, want ≤ %v (decisions stay available)", worst, faultTimeout+faultMargin)
	}
	t.Logf("failover %v after the kill; all keys on Redis %v after the failover; decisions %d, p99 %v, slowest %v; switches %d",
		failedOver.Sub(killed), back.Sub(failedOver), len(ss), percentile(ss, 99), percentile(ss, 100), s.Switches())
}
