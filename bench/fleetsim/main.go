// Command fleetsim simulates a fleet of replicas sharing per-tenant token
// buckets through one Redis (or one Redis Cluster), to size Redis for a
// fleet: it runs N replicas, each with its own client and store, offering
// a given load per replica, in each mode of asking Redis, and reports per
// run decisions/s, Redis calls and Redis CPU per decision, admitted versus
// allowed, and the p99 latency of a decision.
//
// Modes:
//
//	request   distributed.TokenBucket, batching off: one round trip per decision
//	batched   distributed.TokenBucket with the store's default batching lanes
//	leased    distributed.LeasedTokenBucket: leases of tokens spent locally
//	tiered    distributed.Tiered: a local bucket of the replica's share, then the shared one
//
// Usage:
//
//	go run ./fleetsim [-addr host:port | -cluster a,b,c] [-replicas 3,30,300]
//	    [-modes request,batched,leased,tiered] [-load 100 | -load 2000,200,20]
//	    [-keys 100]
//	    [-limit 50] [-burst 0] [-duration 3s]
//
// Without -addr or -cluster it starts a private redis-server (from PATH) on
// a free port. Every run lasts -duration (plus set-up), so the whole program
// is bounded by runs × (duration + a few seconds). Redis figures come from
// INFO of every master (CONFIG RESETSTAT before each run): calls and
// usec_per_call of EVALSHA and EVAL, and the used_cpu_sys + used_cpu_user
// delta, which counts the server's CPU time, not its waits for a core.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/local"
)

type config struct {
	addr, cluster string
	replicas      []int
	modes         []string
	loads         []float64 // decisions/s offered per replica, per fleet size
	keys          int
	limit         bulwark.Limit // per tenant key, fleet-wide
	duration      time.Duration
}

func main() {
	var c config
	var replicas, modes, loads string
	var events, burst int
	flag.StringVar(&c.addr, "addr", "", "Redis address (default: start a private redis-server)")
	flag.StringVar(&c.cluster, "cluster", "", "comma-separated Redis Cluster master addresses")
	flag.StringVar(&replicas, "replicas", "3,30,300", "fleet sizes to run")
	flag.StringVar(&modes, "modes", "request,batched,leased,tiered", "modes to run")
	flag.StringVar(&loads, "load", "100", "decisions/s offered by each replica: one value, or one per fleet size of -replicas")
	flag.IntVar(&c.keys, "keys", 100, "tenant keys the load is spread over")
	flag.IntVar(&events, "limit", 50, "fleet-wide limit per tenant key, per second")
	flag.IntVar(&burst, "burst", 0, "bucket capacity (0: the limit)")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "length of each run")
	flag.Parse()
	for _, f := range strings.Split(replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("bad -replicas %q", replicas)
		}
		c.replicas = append(c.replicas, n)
	}
	for _, f := range strings.Split(loads, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x <= 0 {
			fatalf("bad -load %q", loads)
		}
		c.loads = append(c.loads, x)
	}
	if len(c.loads) == 1 {
		c.loads = slices.Repeat(c.loads, len(c.replicas))
	}
	if len(c.loads) != len(c.replicas) {
		fatalf("-load has %d values for %d fleet sizes", len(c.loads), len(c.replicas))
	}
	c.modes = strings.Split(modes, ",")
	c.limit = bulwark.Limit{Events: events, Period: time.Second, Burst: burst}
	if err := c.limit.Validate(); err != nil {
		fatalf("%v", err)
	}
	if c.addr == "" && c.cluster == "" {
		addr, stop := startRedis()
		defer stop()
		c.addr = addr
	}
	topo := "standalone " + c.addr
	if c.cluster != "" {
		topo = "cluster " + c.cluster
	}
	fmt.Printf("# fleetsim %s; %s; load %v/s per replica (per fleet size %v) over %d keys; limit %v per key; %v per run\n",
		time.Now().UTC().Format("2006-01-02T15:04Z"), topo, c.loads, c.replicas, c.keys, c.limit, c.duration)
	fmt.Printf("# uptime: %s\n", uptime())
	fmt.Println("| replicas | mode | offered/s | decisions/s | Redis calls/decision | Redis CPU µs/decision | EVALSHA µs/call | admitted | allowed (bound) | p99 ms | degraded |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, n := range c.replicas {
		for _, m := range c.modes {
			r, err := run(c, n, c.loads[i], strings.TrimSpace(m))
			if err != nil {
				fatalf("%d replicas, %s: %v", n, m, err)
			}
			fmt.Println(r)
		}
	}
}

// result is one run's figures.
type result struct {
	replicas                int
	mode                    string
	offered, decisions      float64 // per second
	callsPer, cpuPer, usec  float64
	admitted, bound, denied int64
	p99                     time.Duration
	degraded                int64
}

func (r result) String() string {
	return fmt.Sprintf("| %d | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %d | %d | %.2f | %d |",
		r.replicas, r.mode, r.offered, r.decisions, r.callsPer, r.cpuPer, r.usec, r.admitted, r.bound,
		float64(r.p99.Microseconds())/1000, r.degraded)
}

// replica is one simulated process: its own client, store and limiter.
type replica struct {
	client redis.UniversalClient
	store  *distributed.Store
	lim    bulwark.Limiter
	close  func()
}

func newReplica(c config, prefix, mode string, fleet int) (*replica, error) {
	var client redis.UniversalClient
	if c.cluster != "" {
		client = redis.NewClusterClient(distributed.ClusterClientOptions(&redis.ClusterOptions{
			Addrs: strings.Split(c.cluster, ","), PoolSize: 4,
		}, time.Second))
	} else {
		client = redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: c.addr, PoolSize: 4}, time.Second))
	}
	opts := []distributed.Option{distributed.WithPrefix(prefix), distributed.WithTimeout(time.Second), distributed.WithReplicas(fleet)}
	if mode == "request" {
		opts = append(opts, distributed.WithBatching(0))
	}
	st, err := distributed.New(client, opts...)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	r := &replica{client: client, store: st, close: func() {}}
	switch mode {
	case "request", "batched":
		r.lim, err = st.TokenBucket("api", c.limit)
	case "leased":
		var lb *distributed.LeasedTokenBucket
		lb, err = st.LeasedTokenBucket("api", c.limit)
		if err == nil {
			r.lim, r.close = lb, func() { _ = lb.Close() }
		}
	case "tiered":
		// The local tier: this replica's share of the limit, so most
		// excess is denied without Redis.
		share := bulwark.Limit{Events: max(1, c.limit.Events/fleet), Period: c.limit.Period, Burst: max(1, c.limit.Capacity()/fleet)}
		var loc *local.TokenBucket
		var glob *distributed.TokenBucket
		if loc, err = local.NewTokenBucket(share); err == nil {
			if glob, err = st.TokenBucket("api", c.limit); err == nil {
				r.lim, err = distributed.NewTiered(loc, glob)
			}
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		_ = st.Close()
		_ = client.Close()
		return nil, err
	}
	return r, nil
}

func (r *replica) shutdown() {
	r.close()
	_ = r.store.Close()
	_ = r.client.Close()
}

func run(c config, n int, load float64, mode string) (result, error) {
	prefix := fmt.Sprintf("fleetsim-%d-%s-%d", n, mode, time.Now().UnixNano())
	reps := make([]*replica, 0, n)
	defer func() {
		for _, r := range reps {
			r.shutdown()
		}
	}()
	for range n {
		r, err := newReplica(c, prefix, mode, n)
		if err != nil {
			return result{}, err
		}
		reps = append(reps, r)
	}
	nodes := masters(c)
	defer func() {
		for _, nd := range nodes {
			_ = nd.Close()
		}
	}()
	ctx := context.Background()
	// Warm up: one decision from Redis per replica (connections made,
	// scripts loaded, a new cluster's slots known), waiting up to 20s.
	deadline := time.Now().Add(20 * time.Second)
	for i, r := range reps {
		for {
			d, err := r.lim.Allow(ctx, "warm-"+strconv.Itoa(i), 1)
			if err != nil {
				return result{}, err
			}
			if !d.Degraded && r.store.Healthy() {
				break
			}
			if time.Now().After(deadline) {
				return result{}, fmt.Errorf("replica %d: still degraded after 20s", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var cpu0 float64
	for _, nd := range nodes {
		nd.ConfigResetStat(ctx)
		cpu0 += cpuSeconds(ctx, nd)
	}

	var admitted, denied, degraded, total atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	var used sync.Map // keys that saw traffic
	start := time.Now()
	end := start.Add(c.duration)
	var wg sync.WaitGroup
	workers := max(1, int(load/400)) // each paces at most ~400/s
	interval := time.Duration(float64(time.Second) * float64(workers) / load)
	for i, r := range reps {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				local := make([]time.Duration, 0, int(c.duration/interval)+1)
				// Start at a random phase so replicas do not fire in step.
				next := start.Add(time.Duration(rng.Int64N(int64(interval))))
				for next.Before(end) {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
					key := "tenant-" + strconv.Itoa(rng.IntN(c.keys))
					used.Store(key, true)
					t0 := time.Now()
					d, err := r.lim.Allow(ctx, key, 1)
					local = append(local, time.Since(t0))
					total.Add(1)
					switch {
					case err != nil:
						degraded.Add(1)
					case d.Degraded:
						degraded.Add(1)
					case d.Allowed:
						admitted.Add(1)
					default:
						denied.Add(1)
					}
				}
				latMu.Lock()
				lats = append(lats, local...)
				latMu.Unlock()
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	var calls, usec, cpu1 float64
	for _, nd := range nodes {
		cl, us := evalStats(ctx, nd)
		calls += cl
		usec += us
		cpu1 += cpuSeconds(ctx, nd)
	}
	keysUsed := 0
	used.Range(func(any, any) bool { keysUsed++; return true })
	rate := float64(c.limit.Events) / c.limit.Period.Seconds()
	bound := int64(float64(keysUsed) * (float64(c.limit.Capacity()) + rate*elapsed.Seconds()))
	slices.Sort(lats)
	var p99 time.Duration
	if len(lats) > 0 {
		p99 = lats[len(lats)*99/100]
	}
	dec := float64(total.Load())
	res := result{
		replicas: n, mode: mode,
		offered:   load * float64(n),
		decisions: dec / elapsed.Seconds(),
		admitted:  admitted.Load(), denied: denied.Load(), degraded: degraded.Load(),
		bound: bound, p99: p99,
	}
	if dec > 0 {
		res.callsPer = calls / dec
		res.cpuPer = (cpu1 - cpu0) * 1e6 / dec
	}
	if calls > 0 {
		res.usec = usec / calls
	}
	return res, nil
}

// masters returns an admin client per master.
func masters(c config) []*redis.Client {
	addrs := []string{c.addr}
	if c.cluster != "" {
		addrs = strings.Split(c.cluster, ",")
	}
	var out []*redis.Client
	for _, a := range addrs {
		out = append(out, redis.NewClient(&redis.Options{Addr: a}))
	}
	return out
}

// evalStats returns the calls and total µs of EVALSHA and EVAL since the
// last CONFIG RESETSTAT.
func evalStats(ctx context.Context, c *redis.Client) (calls, usec float64) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		for _, f := range strings.Split(line[strings.IndexByte(line, ':')+1:], ",") {
			k, v, _ := strings.Cut(f, "=")
			x, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				calls += x
			case "usec":
				usec += x
			}
		}
	}
	return calls, usec
}

// cpuSeconds returns used_cpu_sys + used_cpu_user of the server.
func cpuSeconds(ctx context.Context, c *redis.Client) float64 {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var t float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			x, _ := strconv.ParseFloat(v, 64)
			t += x
		}
	}
	return t
}

// startRedis starts a private redis-server on a free port.
func startRedis() (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "fleetsim")
	if err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxclients", "10000",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		fatalf("starting redis-server: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for i := 0; c.Ping(context.Background()).Err() != nil; i++ {
		if i == 100 {
			fatalf("redis-server on %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	}
}

func uptime() string {
	b, err := exec.Command("uptime").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleetsim: "+format+"\n", args...)
	os.Exit(1)
}
