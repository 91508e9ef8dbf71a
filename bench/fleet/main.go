package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the program's flags.
type options struct {
	replicas    []int
	topologies  []string
	modes       []string
	rates       []float64 // per replica, one per fleet size
	duration    time.Duration
	keys        int
	limitFrac   float64
	pool        int
	lanes       int
	timeout     time.Duration
	maxInFlight int
	headroom    float64
	maxLease    int
	addr        string
	cluster     []string
	memoryKeys  int
	jsonPath    string
	redisServer string
	deadline    time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	replicas := fs.String("replicas", "3,30,300", "fleet sizes to run, comma-separated")
	topo := fs.String("topology", "standalone,cluster", "standalone (one Redis) and/or cluster (3 masters)")
	modes := fs.String("modes", strings.Join(knownModes, ","), "modes to run, comma-separated")
	cluster := fs.String("cluster", "", "comma-separated master addresses of an existing Redis Cluster (default: start one)")
	rates := fs.String("rate", "200", "decisions/s offered by each replica: one value, or one per -replicas entry")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each run offers load")
	fs.IntVar(&o.keys, "keys", 100, "limiter keys the load is spread over (uniformly at random)")
	fs.Float64Var(&o.limitFrac, "limit-frac", 0.5, "each key's fleet-wide limit per second, as a fraction of the load offered to it")
	fs.IntVar(&o.pool, "pool", 4, "go-redis PoolSize of each replica's client (per node on a cluster)")
	fs.IntVar(&o.lanes, "lanes", 0, "batching lanes of the batched and tiered modes (0: pool-1)")
	fs.DurationVar(&o.timeout, "timeout", 200*time.Millisecond, "store time budget of one round trip (distributed.WithTimeout)")
	fs.IntVar(&o.maxInFlight, "max-inflight", 64, "decisions one replica may have in flight; more due at once are counted missed")
	fs.Float64Var(&o.headroom, "tier-headroom", 1.2, "tiered: the local tier admits this multiple of the replica's fair share")
	fs.IntVar(&o.maxLease, "max-lease", 0, "leased: tokens one replica holds per key (distributed.WithMaxLease; 0: the limiter's default, a tenth of the capacity)")
	fs.StringVar(&o.addr, "addr", "", "address of an existing Redis (default: start one)")
	fs.IntVar(&o.memoryKeys, "memory-keys", 100_000, "keys per limiter for the memory measurement (0: skip; always on a private server)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server binary for private servers")
	fs.DurationVar(&o.deadline, "deadline", 20*time.Minute, "start no run after this much time")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for f := range strings.SplitSeq(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("bad -replicas %q", *replicas)
		}
		o.replicas = append(o.replicas, n)
	}
	for f := range strings.SplitSeq(*rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return o, fmt.Errorf("bad -rate %q", *rates)
		}
		o.rates = append(o.rates, v)
	}
	switch len(o.rates) {
	case len(o.replicas):
	case 1:
		for len(o.rates) < len(o.replicas) {
			o.rates = append(o.rates, o.rates[0])
		}
	default:
		return o, fmt.Errorf("-rate has %d values for %d fleet sizes: give one, or one per size", len(o.rates), len(o.replicas))
	}
	for f := range strings.SplitSeq(*topo, ",") {
		f = strings.TrimSpace(f)
		if f != topoStandalone && f != topoCluster {
			return o, fmt.Errorf("bad -topology %q: want standalone and/or cluster", *topo)
		}
		o.topologies = append(o.topologies, f)
	}
	for f := range strings.SplitSeq(*modes, ",") {
		f = strings.TrimSpace(f)
		if !validMode(f) {
			return o, fmt.Errorf("bad -modes %q: known modes are %v", *modes, knownModes)
		}
		o.modes = append(o.modes, f)
	}
	if *cluster != "" {
		for a := range strings.SplitSeq(*cluster, ",") {
			o.cluster = append(o.cluster, strings.TrimSpace(a))
		}
	}
	if o.lanes == 0 {
		o.lanes = max(1, o.pool-1)
	}
	if o.maxLease < 0 {
		return o, fmt.Errorf("bad -max-lease %d", o.maxLease)
	}
	if o.memoryKeys < 0 {
		return o, fmt.Errorf("bad -memory-keys %d", o.memoryKeys)
	}
	return o, nil
}

// report is everything one invocation measured.
type report struct {
	Date     string      `json:"date"`
	Command  string      `json:"command"`
	Machine  string      `json:"machine"`
	LoadAvg  []string    `json:"loadavg_before_after"`
	Redis    string      `json:"redis"`
	Results  []result    `json:"results"`
	Memory   []memResult `json:"memory,omitempty"`
	Duration string      `json:"total_duration"`
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	// An interrupt stops the load and the remaining runs; the servers this
	// program started are stopped either way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runAll(ctx, o, os.Stdout, os.Stderr); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)

	}
}

// runAll runs every topology × fleet size × mode, then the memory
// measurement, and prints the report to out (progress to log).
func runAll(ctx context.Context, o options, out, log io.Writer) error {
	begin := time.Now()
	rep := report{
		Date:    begin.UTC().Format(time.RFC3339),
		Command: "fleet " + strings.Join(os.Args[1:], " "),
		Machine: fmt.Sprintf("%s/%s, %d CPUs (client and Redis share them), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		LoadAvg: []string{loadAvg()},
		Redis:   redisVersion(o.redisServer),
	}
	var private []*server
	defer func() { stopAll(private) }()
	for _, topo := range o.topologies {
		var addrs []string
		switch {
		case topo == topoStandalone && o.addr != "":
			addrs = []string{o.addr}
		case topo == topoCluster && len(o.cluster) > 0:
			addrs = o.cluster
		case topo == topoStandalone:
			s, err := startServer(o.redisServer, false)
			if err != nil {
				return err
			}
			private = append(private, s)
			addrs = []string{s.addr()}
		default:
			nodes, err := startCluster(o.redisServer, 3)
			if err != nil {
				return err
			}
			private = append(private, nodes...)
			for _, n := range nodes {
				addrs = append(addrs, n.addr())
			}
		}
		for i, n := range o.replicas {
			for _, mode := range o.modes {
				if ctx.Err() != nil {
					fmt.Fprintln(log, "fleet: interrupted; reporting the runs done so far")
					goto memory
				}
				if time.Since(begin) > o.deadline {
					fmt.Fprintf(log, "fleet: -deadline %v reached; skipping the remaining runs\n", o.deadline)
					goto memory
				}
				c := runConfig{
					Topology: topo, Addrs: addrs, Masters: addrs, Replicas: n, Mode: mode,
					Rate: o.rates[i], Duration: o.duration, Keys: o.keys, LimitFrac: o.limitFrac,
					PoolSize: o.pool, Lanes: o.lanes, Timeout: o.timeout, MaxInFlight: o.maxInFlight,
					TierHeadroom: o.headroom, MaxLease: o.maxLease,
					Prefix: fmt.Sprintf("fleet%d-%s-%d-%s", begin.Unix(), topo, n, mode),
				}
				t0 := time.Now()
				r, err := run(ctx, c)
				if err != nil {
					return fmt.Errorf("%s, %d replicas, %s: %w", topo, n, mode, err)
				}
				r.Wall = time.Since(t0)
				fmt.Fprintf(log, "fleet: %-10s %4d replicas %-11s %8.0f decisions/s, %.3f calls/decision, p99 %v (%.1fs)\n",
					topo, n, mode, r.PerSecond, r.CallsPerDecision, r.P99, r.Wall.Seconds())
				rep.Results = append(rep.Results, r)
			}
		}
	}
memory:
	if o.memoryKeys > 0 && ctx.Err() == nil {
		s, err := startServer(o.redisServer, false)
		if err != nil {
			return err
		}
		private = append(private, s)
		fmt.Fprintf(log, "fleet: memory: %d keys per limiter and layout\n", o.memoryKeys)
		if rep.Memory, err = measureMemory(ctx, s.addr(), o.memoryKeys); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	rep.LoadAvg = append(rep.LoadAvg, loadAvg())
	rep.Duration = time.Since(begin).Round(time.Second).String()
	writeMarkdown(out, &rep, o)
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(&rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func redisVersion(bin string) string {
	b, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func writeMarkdown(w io.Writer, rep *report, o options) {
	fmt.Fprintf(w, "Date: %s  \nCommand: `%s`  \nMachine: %s  \nLoad average (1/5/15 min) before: %s, after: %s  \nRedis: %s  \nTotal time: %s\n\n",
		rep.Date, rep.Command, rep.Machine, rep.LoadAvg[0], rep.LoadAvg[len(rep.LoadAvg)-1], rep.Redis, rep.Duration)
	if len(rep.Results) > 0 {
		fmt.Fprintf(w, "Load: %v decisions/s offered per replica (per fleet size %v) for %v, over %d keys; each key's fleet-wide limit is %.2f of its offered load. Pool %d per replica (per node), %d batching lanes, store timeout %v, at most %d decisions in flight per replica.\n\n",
			o.rates, o.replicas, o.duration, o.keys, o.limitFrac, o.pool, o.lanes, o.timeout, o.maxInFlight)
		fmt.Fprintln(w, "| topology | replicas | mode | limit/key | offered/s | decisions/s | non-degraded/s | missed | degraded | errors | Redis calls/dec | Redis reads/dec | usec/call | Redis CPU µs/call | Redis CPU µs/dec | Redis CPU % | client CPU µs/dec | admitted | bound | exact | admitted/exact | keys over | p50 | p99 | p99 non-degraded | run s |")
		fmt.Fprintln(w, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range rep.Results {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.0f | %.0f | %.0f | %d | %d | %d | %.3f | %.3f | %.2f | %.2f | %.2f | %.0f | %.1f | %d | %d | %d | %.3f | %d | %s | %s | %s | %.1f |\n",
				r.Topology, r.Replicas, r.Mode, r.Limit, r.OfferedPS, r.PerSecond, r.NonDegradedPS, r.Missed, r.Degraded, r.Errors,
				r.CallsPerDecision, r.ReadsPerDecision, r.UsecPerCall, r.CPUPerCall, r.CPUPerDecision, r.RedisCPUPercent, r.ClientCPUPerDec,
				r.Admitted, r.Bound, r.Exact, r.Accuracy, r.OverKeys, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P99Redis), r.Wall.Seconds())
		}
		fmt.Fprintln(w)
	}
	if len(rep.Memory) > 0 {
		fmt.Fprintln(w, "| limiter | layout | keys | sample key | encoding | MEMORY USAGE (median) | Δused_memory per key (client buffers excluded) |")
		fmt.Fprintln(w, "|---|---|---:|---|---|---:|---:|")
		for _, m := range rep.Memory {
			fmt.Fprintf(w, "| %s | %s | %d | `%s` | %s | %d B | %.1f B |\n",
				m.Algorithm, m.Layout, m.Keys, m.SampleKey, m.Encoding, m.MemoryUsage, m.PerKeyDelta)
		}
		fmt.Fprintln(w)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}
