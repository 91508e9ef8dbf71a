package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/local"
)

// Modes of asking Redis, one limiter set-up each.
const (
	modePerRequest = "per-request" // distributed.TokenBucket, batching off
	modeBatched    = "batched"     // distributed.TokenBucket, batching lanes on
	modeTiered     = "tiered"      // distributed.Tiered: local share, then the batched bucket
	modeLeased     = "leased"      // distributed.LeasedTokenBucket on the batched store
)

var knownModes = []string{modePerRequest, modeBatched, modeTiered, modeLeased}

// Topologies.
const (
	topoStandalone = "standalone"
	topoCluster    = "cluster"
)

// runConfig is one row of the report: a fleet of Replicas replicas in one
// mode against one Redis deployment.
type runConfig struct {
	Topology string   // topoStandalone or topoCluster
	Addrs    []string // standalone: the server; cluster: seed nodes
	Masters  []string // servers whose INFO is read (every master)
	Replicas int
	Mode     string
	Rate     float64       // decisions/s offered by each replica
	Duration time.Duration // how long the load is offered
	Keys     int           // limiter keys the load is spread over
	// LimitFrac sets each key's fleet-wide limit to this fraction of the
	// load offered to it (rounded, at least 1/s), so that the limiter
	// denies and accuracy can be judged.
	LimitFrac    float64
	PoolSize     int           // go-redis PoolSize of every replica (per node on a cluster)
	Lanes        int           // batching lanes of the batched and tiered modes
	Timeout      time.Duration // store time budget of a round trip
	MaxInFlight  int           // per replica; a decision due while this many are in flight is counted missed
	TierHeadroom float64       // tiered: the local tier admits this × the replica's fair share
	MaxLease     int           // leased: distributed.WithMaxLease (0: the limiter's default)
	Prefix       string        // key prefix, unique per run
}

func (c *runConfig) validate() error {
	switch {
	case c.Topology != topoStandalone && c.Topology != topoCluster:
		return fmt.Errorf("unknown topology %q", c.Topology)
	case len(c.Addrs) == 0 || len(c.Masters) == 0:
		return errors.New("no Redis address")
	case c.Replicas < 1:
		return fmt.Errorf("replicas must be at least 1, got %d", c.Replicas)
	case !validMode(c.Mode):
		return fmt.Errorf("unknown mode %q (known: %v)", c.Mode, knownModes)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("rate must be positive, got %v", c.Rate)
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, got %v", c.Duration)
	case c.Keys < 1:
		return fmt.Errorf("keys must be at least 1, got %d", c.Keys)
	case !(c.LimitFrac > 0):
		return fmt.Errorf("limit fraction must be positive, got %v", c.LimitFrac)
	case c.PoolSize < 1:
		return fmt.Errorf("pool size must be at least 1, got %d", c.PoolSize)
	case c.Lanes < 1:
		return fmt.Errorf("lanes must be at least 1, got %d", c.Lanes)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout must be positive, got %v", c.Timeout)
	case c.MaxInFlight < 1:
		return fmt.Errorf("max in flight must be at least 1, got %d", c.MaxInFlight)
	case c.MaxLease < 0:
		return fmt.Errorf("max lease must not be negative, got %d", c.MaxLease)
	case !(c.TierHeadroom > 0):
		return fmt.Errorf("tier headroom must be positive, got %v", c.TierHeadroom)
	case c.Prefix == "":
		return errors.New("empty key prefix")
	}
	return nil
}

func validMode(m string) bool {
	for _, k := range knownModes {
		if k == m {
			return true
		}
	}
	return false
}

// limitFor is the fleet-wide limit of every key.
func (c *runConfig) limitFor() bulwark.Limit {
	perKey := c.Rate * float64(c.Replicas) / float64(c.Keys)
	return bulwark.Limit{Events: max(1, int(math.Round(c.LimitFrac*perKey))), Period: time.Second}
}

// localLimitFor is the tiered mode's local tier: TierHeadroom × the
// replica's fair share (1/Replicas) of the global limit g, with a burst of
// the same share of g's capacity (at least 1, at most g's).
func (c *runConfig) localLimitFor(g bulwark.Limit) bulwark.Limit {
	ev := max(1, int(math.Round(float64(g.Events)*c.TierHeadroom)))
	burst := int(math.Ceil(float64(g.Capacity()) * c.TierHeadroom / float64(c.Replicas)))
	return bulwark.Limit{Events: ev, Period: g.Period * time.Duration(c.Replicas), Burst: min(max(1, burst), g.Capacity())}
}

// result is the report of one run.
type result struct {
	Topology string  `json:"topology"`
	Replicas int     `json:"replicas"`
	Mode     string  `json:"mode"`
	Limit    string  `json:"limit_per_key"`
	Keys     int     `json:"keys"`
	Seconds  float64 `json:"seconds"` // from the first decision's start to the last one's end

	Offered   int64   `json:"offered"`    // decisions due by the schedule
	Missed    int64   `json:"missed"`     // due while the replica had MaxInFlight in flight: not asked
	Decisions int64   `json:"decisions"`  // Allow calls that returned a decision
	Errors    int64   `json:"errors"`     // Allow calls that returned an error
	Degraded  int64   `json:"degraded"`   // decisions made without Redis (fail-open twin)
	OfferedPS float64 `json:"offered_ps"` // offered / the time the schedule ran
	PerSecond float64 `json:"decisions_ps"`
	// NonDegradedPS counts the decisions not made by the fail-open twin:
	// by Redis, or (tiered) denied by the local tier.
	NonDegradedPS float64 `json:"non_degraded_ps"`

	ScriptCalls      int64   `json:"redis_script_calls"` // Δ EVALSHA+EVAL(+_RO, FCALL) calls, all masters
	CallsPerDecision float64 `json:"redis_calls_per_decision"`
	ReadsPerDecision float64 `json:"redis_reads_per_decision"` // Δ total_reads_processed / decision: round trips
	UsecPerCall      float64 `json:"redis_usec_per_call"`      // commandstats: Δusec / Δcalls of the script commands
	CPUPerDecision   float64 `json:"redis_cpu_us_per_decision"`
	CPUPerCall       float64 `json:"redis_cpu_us_per_call"` // Δ(used_cpu_sys + used_cpu_user) / Δ script calls
	// RedisCPUPercent is the servers' CPU time over the run's time, summed
	// over the masters: 100 is one core busy.
	RedisCPUPercent float64 `json:"redis_cpu_percent"`
	ClientCPUPerDec float64 `json:"client_cpu_us_per_decision"` // this process (all replicas)

	Admitted  int64   `json:"admitted"`
	Bound     int64   `json:"bound"`      // Σ over keys asked of ⌊Burst + Rate·T⌋
	Exact     int64   `json:"exact"`      // what an exact token bucket admits on the same arrivals
	Accuracy  float64 `json:"accuracy"`   // admitted / exact
	OverKeys  int     `json:"over_keys"`  // keys that admitted more than their bound
	OverTotal int64   `json:"over_total"` // Σ of those excesses

	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// P99Redis is the p99 of the decisions not made by the fail-open twin.
	P99Redis time.Duration `json:"p99_non_degraded_ns"`

	// ClientLogLines is how many lines go-redis logged during the load
	// (failed dials after a timeout closed a connection, mostly).
	ClientLogLines int64 `json:"client_log_lines"`

	Setup time.Duration `json:"setup_ns"` // building and warming the replicas
	Wall  time.Duration `json:"wall_ns"`  // the whole run, set-up and close included
}

// replica is one simulated service replica: a client, a store and a
// limiter of its own, as a real replica has.
type replica struct {
	client   redis.UniversalClient
	store    *distributed.Store
	warm     *distributed.TokenBucket
	lim      bulwark.Limiter
	leased   *distributed.LeasedTokenBucket // closed first: gives back the tokens in hand
	inflight atomic.Int64
	issued   int64 // owned by the pacer
	phase    float64
}

func newReplica(c *runConfig) (*replica, error) {
	var client redis.UniversalClient
	if c.Topology == topoCluster {
		client = redis.NewClusterClient(distributed.ClusterClientOptions(&redis.ClusterOptions{
			Addrs: c.Addrs, PoolSize: c.PoolSize, MaxIdleConns: c.PoolSize,
		}, c.Timeout))
	} else {
		client = redis.NewClient(distributed.ClientOptions(&redis.Options{
			Addr: c.Addrs[0], PoolSize: c.PoolSize, MaxIdleConns: c.PoolSize,
		}, c.Timeout))
	}
	lanes := c.Lanes
	if c.Mode == modePerRequest {
		lanes = 0
	}
	store, err := distributed.New(client,
		distributed.WithPrefix(c.Prefix),
		distributed.WithTimeout(c.Timeout),
		distributed.WithReplicas(c.Replicas),
		distributed.WithBatching(lanes),
	)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	r := &replica{client: client, store: store}
	fail := func(err error) (*replica, error) {
		r.close()
		return nil, err
	}
	if r.warm, err = store.TokenBucket("warm", bulwark.PerSecond(1_000_000)); err != nil {
		return fail(err)
	}
	g := c.limitFor()
	global, err := store.TokenBucket("fleet", g)
	if err != nil {
		return fail(err)
	}
	switch c.Mode {
	case modeLeased:
		var opts []distributed.LeaseOption
		if c.MaxLease > 0 {
			opts = append(opts, distributed.WithMaxLease(min(c.MaxLease, g.Capacity())))
		}
		if r.leased, err = store.LeasedTokenBucket("fleet", g, opts...); err != nil {
			return fail(err)
		}
		r.lim = r.leased
	case modeTiered:
		loc, err := local.NewTokenBucket(c.localLimitFor(g))
		if err != nil {
			return fail(err)
		}
		t, err := distributed.NewTiered(loc, global)
		if err != nil {
			return fail(err)
		}
		r.lim = t
	default:
		r.lim = global
	}
	return r, nil
}

func (r *replica) close() {
	if r.leased != nil {
		_ = r.leased.Close()
	}
	if r.store != nil {
		_ = r.store.Close()
	}
	_ = r.client.Close()
}

// warmUp opens the replica's connections (PoolSize to every node, so no
// dial happens during the measurement: real replicas connect long before a
// load peak), then makes its first decisions (on a limiter of its own, so
// the measured buckets start full), which loads the script on every node.
// It waits until the replica's store is healthy and decides from Redis.
func (r *replica) warmUp(ctx context.Context, pool int) error {
	open := func(ctx context.Context, c *redis.Client) error {
		for {
			var wg sync.WaitGroup
			errs := make([]error, pool)
			for i := range pool {
				wg.Go(func() { errs[i] = c.Ping(ctx).Err() })
			}
			wg.Wait()
			err := errors.Join(errs...)
			if err == nil && c.PoolStats().TotalConns >= uint32(pool) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("opening %d connections to %s: %w (last: %v)", pool, c.Options().Addr, ctx.Err(), err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	var err error
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachShard(ctx, open)
	case *redis.Client:
		err = open(ctx, c)
	}
	if err != nil {
		return err
	}
	for {
		ok := true
		for i := range 16 {
			d, err := r.warm.Allow(ctx, "w"+strconv.Itoa(i), 1)
			if err != nil {
				return err
			}
			ok = ok && !d.Degraded
		}
		if ok && r.store.Healthy() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica did not decide from Redis during warm-up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forEach runs f on every replica, at most par at once, and returns the
// first error.
func forEach(reps []*replica, par int, f func(int, *replica) error) error {
	sem := make(chan struct{}, par)
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, r := range reps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i, r)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// counters are the tallies of one run, updated by every decision.
type counters struct {
	decisions, errors, degraded atomic.Int64
	lastEnd                     atomic.Int64 // UnixNano of the latest decision's end
	admitted                    []atomic.Int64
	asked                       []atomic.Int64
	arrivals                    []keyArrivals
	lat, latRedis               hist
}

// keyArrivals are the start times of the decisions asked for one key, so
// that an exact limiter can be replayed on them.
type keyArrivals struct {
	mu sync.Mutex
	at []int64 // UnixNano
}

// exactAdmits replays an exact token bucket of limit l, full at the start,
// on the arrival times (sorted in place) and returns how many it admits:
// what a limiter deciding every request at its arrival, with no delay and
// no error, would admit.
func exactAdmits(at []int64, l bulwark.Limit) int64 {
	slices.Sort(at)
	capacity := float64(l.Capacity())
	perNano := float64(l.Events) / float64(l.Period.Nanoseconds())
	tokens := capacity
	var last int64
	var n int64
	for i, t := range at {
		if i > 0 {
			tokens = min(capacity, tokens+float64(t-last)*perNano)
		}
		last = t
		if tokens >= 1 {
			tokens--
			n++
		}
	}
	return n
}

func (c *counters) noteEnd(t time.Time) {
	n := t.UnixNano()
	for {
		old := c.lastEnd.Load()
		if n <= old || c.lastEnd.CompareAndSwap(old, n) {
			return
		}
	}
}

// clientLog counts the lines go-redis logs (failed dials and the like)
// instead of printing them; each run reports its count.
type clientLog struct{ lines atomic.Int64 }

func (l *clientLog) Printf(context.Context, string, ...any) { l.lines.Add(1) }

var goRedisLog = new(clientLog)

func init() { redis.SetLogger(goRedisLog) }

// run builds the fleet, offers the load and reports. It stops every
// replica it built before it returns.
func run(ctx context.Context, c runConfig) (result, error) {
	if err := c.validate(); err != nil {
		return result{}, err
	}
	wallStart := time.Now()
	admins := make([]*redis.Client, len(c.Masters))
	for i, a := range c.Masters {
		admins[i] = redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, PoolSize: 1})
		defer admins[i].Close()
	}

	reps := make([]*replica, c.Replicas)
	defer func() {
		var wg sync.WaitGroup
		for _, r := range reps {
			if r != nil {
				wg.Go(r.close)
			}
		}
		wg.Wait()
	}()
	for i := range reps {
		r, err := newReplica(&c)
		if err != nil {
			return result{}, fmt.Errorf("replica %d: %w", i, err)
		}
		reps[i] = r
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := forEach(reps, 16, func(_ int, r *replica) error { return r.warmUp(wctx, c.PoolSize) })
	cancel()
	if err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	setup := time.Since(wallStart)

	rng := rand.New(rand.NewPCG(uint64(c.Replicas), uint64(len(c.Mode))))
	for _, r := range reps {
		r.phase = rng.Float64()
	}
	cnt := &counters{admitted: make([]atomic.Int64, c.Keys), asked: make([]atomic.Int64, c.Keys), arrivals: make([]keyArrivals, c.Keys)}
	keys := make([]string, c.Keys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}

	before, err := statsOf(ctx, admins)
	if err != nil {
		return result{}, err
	}
	cpu0 := processCPU()
	log0 := goRedisLog.lines.Load()

	// The pacer: an open-loop schedule of Rate decisions/s per replica,
	// each at its own phase, checked every millisecond. Each due decision
	// runs on a goroutine of its own, so a slow Redis does not slow the
	// schedule; a replica already running MaxInFlight decisions counts the
	// due one as missed.
	var wg sync.WaitGroup
	var offered, missed int64
	var sched time.Duration // how much of the schedule ran: Duration unless interrupted
	start := time.Now()
	cnt.lastEnd.Store(start.UnixNano())
	tick := time.NewTicker(time.Millisecond)
	for done := false; !done; {
		var now time.Time
		select {
		case now = <-tick.C:
		case <-ctx.Done():
			now, done = time.Now(), true
		}
		el := now.Sub(start)
		if el >= c.Duration {
			el, done = c.Duration, true
		}
		sched = el
		for _, r := range reps {
			due := int64(el.Seconds()*c.Rate + r.phase)
			for ; r.issued < due; r.issued++ {
				offered++
				if r.inflight.Load() >= int64(c.MaxInFlight) {
					missed++
					continue
				}
				k := rng.IntN(c.Keys)
				r.inflight.Add(1)
				wg.Add(1)
				go decide(ctx, r, keys[k], k, cnt, &wg)
			}
		}
	}
	tick.Stop()
	wg.Wait() // every call is bounded by the store's timeout
	cpu := processCPU() - cpu0
	logLines := goRedisLog.lines.Load() - log0
	// Read the servers even when ctx was cancelled mid-run (an interrupt
	// ends the load early; the run is still reported).
	sctx, cancelStats := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	after, err := statsOf(sctx, admins)
	cancelStats()
	if err != nil {
		return result{}, err
	}
	d := after.sub(before)

	res := result{
		Topology: c.Topology, Replicas: c.Replicas, Mode: c.Mode,
		Limit: c.limitFor().String(), Keys: c.Keys,
		Offered: offered, Missed: missed,
		Decisions: cnt.decisions.Load(), Errors: cnt.errors.Load(), Degraded: cnt.degraded.Load(),
		ScriptCalls: d.scriptCalls,
		P50:         cnt.lat.quantile(0.50), P99: cnt.lat.quantile(0.99), P99Redis: cnt.latRedis.quantile(0.99),
		Setup: setup, ClientLogLines: logLines,
	}
	t := time.Duration(cnt.lastEnd.Load() - start.UnixNano())
	res.Seconds = t.Seconds()
	if sched > 0 {
		res.OfferedPS = float64(offered) / sched.Seconds()
	}
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Decisions) / res.Seconds
		res.NonDegradedPS = float64(res.Decisions-res.Degraded) / res.Seconds
		res.RedisCPUPercent = d.cpu * 100 / res.Seconds
	}
	if res.Decisions > 0 {
		n := float64(res.Decisions)
		res.CallsPerDecision = float64(d.scriptCalls) / n
		res.ReadsPerDecision = float64(d.reads) / n
		res.CPUPerDecision = d.cpu * 1e6 / n
		res.ClientCPUPerDec = float64(cpu.Microseconds()) / n
	}
	if d.scriptCalls > 0 {
		res.UsecPerCall = float64(d.scriptUsec) / float64(d.scriptCalls)
		res.CPUPerCall = d.cpu * 1e6 / float64(d.scriptCalls)
	}
	g := c.limitFor()
	perKey := int64(math.Floor(float64(g.Capacity()) + float64(g.Events)*t.Seconds()/g.Period.Seconds()))
	for k := range keys {
		a, asked := cnt.admitted[k].Load(), cnt.asked[k].Load()
		res.Admitted += a
		if asked == 0 {
			continue
		}
		res.Bound += perKey
		res.Exact += exactAdmits(cnt.arrivals[k].at, g)
		if a > perKey {
			res.OverKeys++
			res.OverTotal += a - perKey
		}
	}
	if res.Exact > 0 {
		res.Accuracy = float64(res.Admitted) / float64(res.Exact)
	}
	res.Wall = time.Since(wallStart) // close is added by the deferred stop; measured by the caller
	return res, nil
}

// decide makes one decision for replica r and tallies it.
func decide(ctx context.Context, r *replica, key string, k int, cnt *counters, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.inflight.Add(-1)
	t0 := time.Now()
	d, err := r.lim.Allow(ctx, key, 1)
	t1 := time.Now()
	cnt.lat.add(t1.Sub(t0))
	cnt.noteEnd(t1)
	if err != nil {
		cnt.errors.Add(1)
		return
	}
	if !d.Degraded {
		cnt.latRedis.add(t1.Sub(t0))
	}
	cnt.decisions.Add(1)
	cnt.asked[k].Add(1)
	ka := &cnt.arrivals[k]
	ka.mu.Lock()
	ka.at = append(ka.at, t0.UnixNano())
	ka.mu.Unlock()
	if d.Allowed {
		cnt.admitted[k].Add(1)
	}
	if d.Degraded {
		cnt.degraded.Add(1)
	}
}
