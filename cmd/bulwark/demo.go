package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
)

const demoSynopsis = `Usage: bulwark demo [--redis URL] [flags]

Runs three simulated replicas of a service in this process. Each has its own
Redis client and distributed.Store, and all of them share one global
fixed-window limit through Redis. Each replica offers more load than its part
of the limit; a table shows, per window, what each replica admitted, denied and
decided locally (degraded), and the global total against the limit.

The run has three phases of equal length: Redis up, Redis away (the network
between the replicas and Redis is cut), Redis back. While Redis is away the
replicas keep answering from their local twins (Decision.Degraded); when it is
back they return to it by themselves. The summary says whether the global
limit held while Redis answered, whether the degraded phase was seen, and
whether every replica recovered.

Without --redis an embedded Redis (miniredis) is started; with it, the demo
uses your Redis through an in-process relay that it cuts and restores (your
server is never stopped), under keys starting with --prefix that expire by
themselves.`

// demoConfig is the shape of one demo run.
type demoConfig struct {
	redisURL string
	prefix   string
	replicas int
	limit    int           // events per window, shared by all replicas
	window   time.Duration // the fixed window
	load     int           // requests each replica offers per window
	duration time.Duration // whole run, split into three phases
}

func (c demoConfig) validate() error {
	switch {
	case c.replicas < 1 || c.replicas > 9:
		return usagef("--replicas must be between 1 and 9, got %d", c.replicas)
	case c.limit < 1:
		return usagef("--limit must be at least 1, got %d", c.limit)
	case c.load < 1 || c.load > 100000:
		return usagef("--load must be between 1 and 100000, got %d", c.load)
	case c.window < 50*time.Millisecond:
		return usagef("--window must be at least 50ms, got %v", c.window)
	case c.window%time.Millisecond != 0:
		return usagef("--window must be a whole number of milliseconds, got %v", c.window)
	case c.duration < 3*c.window:
		return usagef("--duration must cover at least three windows (%v), got %v", 3*c.window, c.duration)
	}
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := demoConfig{}
	fs := newFlagSet("demo", demoSynopsis, stderr)
	fs.StringVar(&cfg.redisURL, "redis", "", "Redis URL (default: an embedded Redis)")
	fs.StringVar(&cfg.prefix, "prefix", "bulwark-demo", "key prefix of the demo's keys")
	fs.IntVar(&cfg.replicas, "replicas", 3, "number of simulated replicas")
	fs.IntVar(&cfg.limit, "limit", 100, "global limit: requests per window across all replicas")
	fs.DurationVar(&cfg.window, "window", time.Second, "length of the limit's fixed window")
	fs.IntVar(&cfg.load, "load", 60, "requests each replica offers per window")
	fs.DurationVar(&cfg.duration, "duration", 15*time.Second, "length of the whole run (three equal phases)")
	short := fs.Bool("short", false, "a quick run: --duration 3s --window 250ms (unless set explicitly)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo takes no arguments, got %q", pos)
	}
	if *short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			cfg.duration = 3 * time.Second
		}
		if !set["window"] {
			cfg.window = 250 * time.Millisecond
		}
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	var upstream, where string
	var opt *redis.Options
	if cfg.redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return fmt.Errorf("starting the embedded redis: %w", err)
		}
		defer mr.Close()
		upstream, where = mr.Addr(), "embedded Redis (miniredis) at "+mr.Addr()
		opt = &redis.Options{Addr: upstream}
	} else {
		c, err := connect(ctx, cfg.redisURL)
		if err != nil {
			return err
		}
		c.Close()
		opt, _ = parseRedisURL(cfg.redisURL)
		upstream, where = opt.Addr, "Redis at "+opt.Addr
	}
	return demo(ctx, cfg, opt, upstream, where, stdout)
}

// storeTimeout is the time budget of one Redis call of a replica. Taking
// Redis away closes its connections, so the demo's outage is noticed at
// once whatever the budget; a generous one keeps a slow moment of a loaded
// machine from being shown as a local decision.
const storeTimeout = 250 * time.Millisecond

// pinnedClock is a bulwark.Clock whose time the replica sets before each
// call. The demo passes each replica's wall-clock time to the scripts
// (distributed.WithClock) instead of letting them read Redis TIME, so that
// it knows the exact window of every decision and can add up the windows
// across replicas. Production stores keep the default (Redis TIME).
type pinnedClock struct{ us atomic.Int64 }

func (c *pinnedClock) Now() time.Time { return time.UnixMicro(c.us.Load()) }

// tally counts one replica's decisions in one window.
type tally struct{ admitted, denied, degraded int }

// demoRun is the state of one run, shared by the replicas and the printer.
type demoRun struct {
	cfg     demoConfig
	periodµ int64
	first   int64 // index of the first window
	downAt  int64 // index of the first window without Redis
	upAt    int64 // index of the first window with Redis back
	end     int64 // index past the last window

	mu     sync.Mutex
	counts map[int64][]tally // window -> per replica
	// recovered[i] is the time replica i first decided through Redis after
	// Redis came back; zero until then.
	recovered []time.Time
	restored  time.Time // when Redis came back
	members   distributed.ReplicaCounter
	progress  []atomic.Int64
}

func (r *demoRun) windowOf(t time.Time) int64 { return t.UnixMicro() / r.periodµ }

func (r *demoRun) windowStart(w int64) time.Time { return time.UnixMicro(w * r.periodµ) }

func (r *demoRun) phase(w int64) string {
	switch {
	case w < r.downAt:
		return "redis up"
	case w < r.upAt:
		return "redis away"
	}
	return "redis back"
}

func (r *demoRun) record(i int, t time.Time, d bulwark.Decision) {
	w := r.windowOf(t)
	if d.Allowed && !d.Degraded {
		// Count it in the window Redis counted it in. A call stamped just
		// before a window ended may reach Redis after another replica
		// opened the next window; the script then counts it there (a
		// key's time never goes backwards) and its ResetAfter runs to that
		// window's end: the first window end at or after t + ResetAfter.
		end := t.UnixMicro() + d.ResetAfter.Microseconds()
		w = (end+r.periodµ-1)/r.periodµ - 1
	}
	r.mu.Lock()
	c := r.counts[w]
	if c == nil {
		c = make([]tally, r.cfg.replicas)
		r.counts[w] = c
	}
	switch {
	case d.Allowed:
		c[i].admitted++
	default:
		c[i].denied++
	}
	if d.Degraded {
		c[i].degraded++
	} else if !r.restored.IsZero() && r.recovered[i].IsZero() {
		r.recovered[i] = time.Now()
	}
	r.mu.Unlock()
}

// demo runs the replicas against the Redis at upstream (through a relay
// that it cuts in the middle phase) and prints the table and the verdicts.
// It returns an error when the global limit was exceeded while Redis
// answered or when a replica never recovered.
func demo(ctx context.Context, cfg demoConfig, opt *redis.Options, upstream, where string, out io.Writer) error {
	px, err := newProxy(upstream)
	if err != nil {
		return fmt.Errorf("starting the relay to redis: %w", err)
	}
	defer px.Close()

	windows := int64(cfg.duration / cfg.window)
	r := &demoRun{
		cfg:       cfg,
		periodµ:   cfg.window.Microseconds(),
		counts:    make(map[int64][]tally),
		recovered: make([]time.Time, cfg.replicas),
		progress:  make([]atomic.Int64, cfg.replicas),
	}
	limiters := make([]*distributed.FixedWindow, cfg.replicas)
	clocks := make([]*pinnedClock, cfg.replicas)
	memberships := make([]*cluster.Membership, cfg.replicas)
	for i := range cfg.replicas {
		o := distributed.ClientOptions(opt, storeTimeout) // the settings a store's client should have
		o.Addr = px.Addr()
		o.PoolSize = 2
		o.DisableIdentity = true
		client := redis.NewClient(o)
		defer client.Close()
		clocks[i] = &pinnedClock{}
		// Each replica heartbeats into the fleet's member set, so that when
		// Redis goes away it knows how many replicas share the limit and
		// enforces its fair share, limit / replicas, on its own. The TTL
		// is generous so that a heartbeat delayed on a loaded machine does
		// not drop a live replica from the count.
		members, err := cluster.Join(client, cluster.WithPrefix(cfg.prefix), cluster.WithTTL(max(3*cfg.window, 5*time.Second)))
		if err != nil {
			return usagef("%v", err)
		}
		defer members.Close()
		memberships[i] = members
		store, err := distributed.New(client,
			distributed.WithPrefix(cfg.prefix),
			distributed.WithClock(clocks[i]),
			distributed.WithTimeout(storeTimeout),
			distributed.WithReplicaCounter(members),
			distributed.WithReplicas(cfg.replicas), // until the first heartbeat
			// Probe Redis often and allow recovery soon, so that the short
			// phases of the demo show the return to Redis.
			distributed.WithProbeInterval(cfg.window/10),
			distributed.WithMinDegraded(cfg.window/4),
			distributed.WithRecoveryThreshold(2))
		if err != nil {
			return usagef("%v", err)
		}
		defer store.Close()
		limiters[i], err = store.FixedWindow("api", bulwark.Limit{Events: cfg.limit, Period: cfg.window})
		if err != nil {
			return usagef("%v", err)
		}
	}

	r.members = memberships[0]
	formFleet(ctx, memberships, cfg.replicas)
	// Start at the next window boundary so every window is whole.
	r.first = r.windowOf(time.Now()) + 1
	r.downAt = r.first + windows/3
	r.upAt = r.downAt + windows/3
	r.end = r.first + windows

	fmt.Fprintf(out, "bulwark demo: %d replicas share one global limit of %d requests per %v through %s.\n",
		cfg.replicas, cfg.limit, cfg.window, where)
	fmt.Fprintf(out, "Each replica offers %d requests per window (%d in all). Redis is away in windows %d-%d.\n",
		cfg.load, cfg.load*cfg.replicas, r.downAt-r.first+1, r.upAt-r.first)
	fmt.Fprintf(out, "(Replicas pass their clock to the scripts so each decision is counted in its exact window.)\n\n")
	printHeader(out, cfg.replicas)

	runCtx, cancel := context.WithDeadline(ctx, r.windowStart(r.end))
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.drive(runCtx, i, limiters[i], clocks[i])
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.control(runCtx, px, out)
	}()
	printed := r.print(runCtx, out)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for w := printed; w < r.end; w++ { // windows the live printer had no time for
		r.printRow(out, w)
	}
	return r.summary(out)
}

// formFleet heartbeats every membership until each has seen all n
// replicas (or a few seconds have passed, or ctx ends). Each replica's
// first heartbeat runs in the background as it joins, possibly before the
// others have joined, and the next one comes a heartbeat interval later,
// which may be after Redis was taken away: that replica would then keep a
// count of one and enforce the whole limit alone instead of its share.
func formFleet(ctx context.Context, ms []*cluster.Membership, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		formed := true
		for _, m := range ms {
			if c, err := m.Heartbeat(ctx); err != nil || c < n {
				formed = false
			}
		}
		if formed || time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
			return
		}
	}
}

// drive offers the replica's load, spread over ten ticks per window, until
// ctx ends.
func (r *demoRun) drive(ctx context.Context, i int, lim bulwark.Limiter, clock *pinnedClock) {
	const ticks = 10
	tick := r.cfg.window / ticks
	for j := int64(0); ; j++ {
		at := r.windowStart(r.first).Add(time.Duration(j) * tick)
		if !sleepUntil(ctx, at) {
			return
		}
		k := int(j % ticks)
		n := r.cfg.load*(k+1)/ticks - r.cfg.load*k/ticks
		for range n {
			now := time.Now()
			if r.windowOf(now) >= r.end {
				return
			}
			clock.us.Store(now.UnixMicro())
			d, err := lim.Allow(ctx, "global", 1)
			if err != nil {
				return // ctx ended
			}
			r.record(i, now, d)
			r.progress[i].Store(now.UnixMicro())
		}
	}
}

// control cuts the link to Redis at the start of the middle phase and
// restores it at the start of the last.
func (r *demoRun) control(ctx context.Context, px *proxy, out io.Writer) {
	if !sleepUntil(ctx, r.windowStart(r.downAt)) {
		return
	}
	px.SetDown(true)
	if !sleepUntil(ctx, r.windowStart(r.upAt)) {
		return
	}
	r.mu.Lock()
	r.restored = time.Now()
	r.mu.Unlock()
	px.SetDown(false)
}

// print writes each window's row once every replica has moved past it,
// until ctx ends; it returns the first window not printed.
func (r *demoRun) print(ctx context.Context, out io.Writer) int64 {
	w := r.first
	for w < r.end {
		if !sleepUntil(ctx, r.windowStart(w+1).Add(r.cfg.window/20)) {
			return w
		}
		for r.passed(w + 1) {
			r.printRow(out, w)
			w++
			if w == r.end {
				break
			}
		}
	}
	return w
}

// passed reports whether every replica has made a call at or after t's
// window start w (so window w-1 is complete).
func (r *demoRun) passed(w int64) bool {
	start := r.windowStart(w).UnixMicro()
	for i := range r.progress {
		if r.progress[i].Load() < start {
			return false
		}
	}
	return true
}

func printHeader(out io.Writer, replicas int) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s  %-10s", "window", "phase")
	for i := range replicas {
		fmt.Fprintf(&b, "  %-17s", fmt.Sprintf("replica-%d", i+1))
	}
	fmt.Fprintf(&b, "  %s\n", "global")
	fmt.Fprintf(&b, "%-6s  %-10s", "", "")
	for range replicas {
		fmt.Fprintf(&b, "  %-17s", "adm  den  degr")
	}
	fmt.Fprintf(&b, "  %s\n", "admitted/limit")
	fmt.Fprint(out, b.String())
}

func (r *demoRun) printRow(out io.Writer, w int64) {
	r.mu.Lock()
	c := append([]tally(nil), r.counts[w]...)
	r.mu.Unlock()
	if c == nil {
		c = make([]tally, r.cfg.replicas)
	}
	var b strings.Builder
	switch w {
	case r.downAt:
		n := r.cfg.replicas
		if c := r.members.Replicas(); c > 0 {
			n = c
		}
		fmt.Fprintf(&b, "--- Redis taken away: each replica decides alone, with its fair share of the limit (%d/%d, %d live replicas by heartbeat) ---\n",
			r.cfg.limit, n, n)
	case r.upAt:
		b.WriteString("--- Redis back: the replicas return to it by themselves ---\n")
	}
	fmt.Fprintf(&b, "%6d  %-10s", w-r.first+1, r.phase(w))
	total, degraded := 0, 0
	for _, t := range c {
		fmt.Fprintf(&b, "  %-17s", fmt.Sprintf("%3d  %3d  %4d", t.admitted, t.denied, t.degraded))
		total += t.admitted
		degraded += t.degraded
	}
	fmt.Fprintf(&b, "  %4d/%d", total, r.cfg.limit)
	switch {
	case degraded > 0:
		fmt.Fprintf(&b, "  degraded (%d decided locally)", degraded)
	case total > r.cfg.limit:
		b.WriteString("  OVER THE LIMIT")
	}
	b.WriteByte('\n')
	fmt.Fprint(out, b.String())
}

// summary prints the verdicts. The limit is judged on the windows decided
// by Redis alone: a window with a degraded decision was (partly) decided by
// replicas that could not see each other.
func (r *demoRun) summary(out io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	maxTotal, judged, degraded := 0, 0, 0
	held := true
	for w := r.first; w < r.end; w++ {
		total, deg := 0, 0
		for _, t := range r.counts[w] {
			total += t.admitted
			deg += t.degraded
		}
		degraded += deg
		if deg > 0 || r.counts[w] == nil {
			continue
		}
		judged++
		maxTotal = max(maxTotal, total)
		if total > r.cfg.limit {
			held = false
		}
	}
	var errs []error
	fmt.Fprintln(out)
	switch {
	case judged == 0:
		fmt.Fprintln(out, "global limit held: unknown (no window was decided by Redis alone)")
		errs = append(errs, errors.New("demo: no window was decided by Redis alone"))
	case held:
		fmt.Fprintf(out, "global limit held: yes (max %d/%d per %v over the %d windows decided by Redis)\n", maxTotal, r.cfg.limit, r.cfg.window, judged)
	default:
		fmt.Fprintf(out, "global limit held: NO (max %d/%d per %v over the %d windows decided by Redis)\n", maxTotal, r.cfg.limit, r.cfg.window, judged)
		errs = append(errs, errors.New("demo: the global limit was exceeded while Redis answered"))
	}
	if degraded > 0 {
		fmt.Fprintf(out, "degraded phase: yes (%d decisions made locally, Decision.Degraded=true, while Redis was away)\n", degraded)
	} else {
		fmt.Fprintln(out, "degraded phase: no (every decision came from Redis)")
		errs = append(errs, errors.New("demo: no degraded decision was seen while Redis was away"))
	}
	var slowest time.Duration
	recovered := !r.restored.IsZero()
	for _, t := range r.recovered {
		if t.IsZero() {
			recovered = false
			break
		}
		slowest = max(slowest, t.Sub(r.restored))
	}
	if recovered {
		fmt.Fprintf(out, "recovery: yes (every replica decided through Redis again within %v of its return)\n", slowest.Round(time.Millisecond))
	} else {
		fmt.Fprintln(out, "recovery: NO (a replica never decided through Redis again)")
		errs = append(errs, errors.New("demo: a replica did not return to Redis"))
	}
	return errors.Join(errs...)
}

// sleepUntil waits until t or until ctx ends; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
