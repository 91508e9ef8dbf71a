package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// tinyConfig is a run small enough for a test: 3 replicas offering 150
// decisions/s each for a second, over 10 keys limited to half their load.
// The timeout is generous so that a loaded machine does not turn the stores
// degraded (which would decide without Redis).
func tinyConfig(addr, mode string) runConfig {
	return runConfig{
		Topology: topoStandalone, Addrs: []string{addr}, Masters: []string{addr},
		Replicas: 3, Mode: mode, Rate: 150, Duration: time.Second, Keys: 10,
		LimitFrac: 0.5, PoolSize: 3, Lanes: 2, Timeout: 2 * time.Second,
		MaxInFlight: 64, TierHeadroom: 1.2, Prefix: "fleettest-" + mode,
	}
}

// checkSane checks what every run's report must satisfy, whatever the
// machine's speed.
func checkSane(t *testing.T, c runConfig, r result) {
	t.Helper()
	if r.Decisions == 0 {
		t.Fatalf("%s: no decisions: %+v", c.Mode, r)
	}
	if r.Errors != 0 || r.Degraded != 0 {
		t.Errorf("%s: %d errors and %d degraded decisions with a 2s timeout", c.Mode, r.Errors, r.Degraded)
	}
	if r.Offered != r.Decisions+r.Errors+r.Missed {
		t.Errorf("%s: offered %d != decisions %d + errors %d + missed %d", c.Mode, r.Offered, r.Decisions, r.Errors, r.Missed)
	}
	// The schedule offers Rate per replica over Duration, give or take one
	// decision per replica for the phases.
	want := int64(c.Rate * c.Duration.Seconds() * float64(c.Replicas))
	if r.Offered < want-int64(c.Replicas) || r.Offered > want+int64(c.Replicas) {
		t.Errorf("%s: offered %d decisions, want %d ± %d", c.Mode, r.Offered, want, c.Replicas)
	}
	if r.Admitted == 0 || r.Admitted > r.Bound || r.OverKeys != 0 {
		t.Errorf("%s: admitted %d, bound %d (Burst + Rate·T per key), %d keys over", c.Mode, r.Admitted, r.Bound, r.OverKeys)
	}
	if r.Admitted >= r.Decisions {
		t.Errorf("%s: admitted all %d decisions under a limit of half the load", c.Mode, r.Decisions)
	}
	if r.Exact == 0 || r.Accuracy <= 0 {
		t.Errorf("%s: exact %d, accuracy %v", c.Mode, r.Exact, r.Accuracy)
	}
	if !(r.CallsPerDecision > 0 && r.CallsPerDecision <= 1.05) {
		t.Errorf("%s: %v Redis calls per decision, want in (0, 1.05]", c.Mode, r.CallsPerDecision)
	}
	if r.ReadsPerDecision <= 0 || r.UsecPerCall <= 0 || r.CPUPerDecision <= 0 || r.RedisCPUPercent <= 0 {
		t.Errorf("%s: reads/decision %v, usec/call %v, CPU µs/decision %v: want all positive", c.Mode, r.ReadsPerDecision, r.UsecPerCall, r.CPUPerDecision)
	}
	if r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("%s: p50 %v, p99 %v", c.Mode, r.P50, r.P99)
	}
	if r.PerSecond <= 0 || r.Seconds < c.Duration.Seconds()*0.9 {
		t.Errorf("%s: %v decisions/s over %vs", c.Mode, r.PerSecond, r.Seconds)
	}
}

func TestRunModes(t *testing.T) {
	srv := redistest.StartServer(t)
	for _, mode := range knownModes {
		t.Run(mode, func(t *testing.T) {
			c := tinyConfig(srv.Addr(), mode)
			r, err := run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, c, r)
			switch mode {
			case modeTiered, modeLeased:
				// The local tier denies part of the load without asking
				// Redis; a lease serves several decisions, and a key Redis
				// denied is denied locally until its RetryAfter.
				if r.CallsPerDecision >= 1 {
					t.Errorf("%s: %v Redis calls per decision, want < 1", mode, r.CallsPerDecision)
				}
			default:
				// Every decision is one script call: the scripts were loaded
				// during warm-up, so no NOSCRIPT retry is counted.
				if r.ScriptCalls != r.Decisions {
					t.Errorf("%s: %d script calls for %d decisions", mode, r.ScriptCalls, r.Decisions)
				}
			}
		})
	}
}

// TestRunAll runs the program's whole path on servers it starts itself: a
// standalone server and a 3-master cluster, one mode, a short run, and the
// memory measurement, and checks the printed report and its JSON.
func TestRunAll(t *testing.T) {
	bin := redistest.RequireServer(t)
	jsonPath := filepath.Join(t.TempDir(), "fleet.json")
	o, err := parseFlags([]string{
		"-replicas", "2", "-duration", "500ms", "-rate", "100", "-keys", "5",
		"-topology", "standalone,cluster", "-modes", "batched", "-timeout", "2s",
		"-memory-keys", "1000", "-json", jsonPath, "-redis-server", bin,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	if err := runAll(context.Background(), o, &out, &log); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	text := out.String()
	for _, want := range []string{"| standalone | 2 | batched |", "| cluster | 2 | batched |", "| token_bucket | default prefix", "Load average"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results in the JSON, want 2", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Decisions == 0 || r.Admitted > r.Bound || r.ScriptCalls == 0 {
			t.Errorf("%s: decisions %d, admitted %d, bound %d, script calls %d", r.Topology, r.Decisions, r.Admitted, r.Bound, r.ScriptCalls)
		}
	}
	if len(rep.Memory) != len(memAlgorithms)*len(memLayouts) {
		t.Fatalf("%d memory results, want %d", len(rep.Memory), len(memAlgorithms)*len(memLayouts))
	}
	for _, m := range rep.Memory {
		// A key of a few dozen bytes holding a short string or a one-entry
		// sorted set takes more than 32 bytes and far less than 1 KiB. The
		// used_memory delta of only 1000 keys moves with the server's own
		// allocations by tens of kilobytes (either way), so it is only
		// checked to be of the right magnitude here; the report's figures
		// come from 100k keys.
		if m.MemoryUsage < 32 || m.MemoryUsage > 1024 || m.PerKeyDelta < -1024 || m.PerKeyDelta > 1024 {
			t.Errorf("%s, %s: MEMORY USAGE %d B, Δused_memory %v B per key", m.Algorithm, m.Layout, m.MemoryUsage, m.PerKeyDelta)
		}
		if m.Keys != 1000 || m.Encoding == "" {
			t.Errorf("%s, %s: %d keys, encoding %q", m.Algorithm, m.Layout, m.Keys, m.Encoding)
		}
	}
}

func TestExactAdmits(t *testing.T) {
	l := bulwark.Limit{Events: 2, Period: time.Second} // burst 2
	s := int64(time.Second)
	cases := []struct {
		name string
		at   []int64
		want int64
	}{
		{"none", nil, 0},
		{"burst then empty", []int64{0, 0, 0, 0}, 2},
		{"refill of half a second", []int64{0, 0, 0, s / 2, s / 2}, 3},
		{"unsorted input", []int64{s / 2, 0, s / 2, 0, 0}, 3},
		{"refill capped at burst", []int64{0, 10 * s, 10 * s, 10 * s}, 3},
	}
	for _, c := range cases {
		if got := exactAdmits(c.at, l); got != c.want {
			t.Errorf("%s: admitted %d, want %d", c.name, got, c.want)
		}
	}
}

func TestHistQuantile(t *testing.T) {
	var h hist
	if h.quantile(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	h.add(-time.Second) // clamped to 0
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if diff := got - c.want; diff < -c.want/16 || diff > c.want/16 {
			t.Errorf("q%v = %v, want %v within 1/16", c.q, got, c.want)
		}
	}
	for v := uint64(0); v < 1<<20; v = v*9/8 + 1 {
		i := histIndex(v)
		if lo, hi := histLow(i), histLow(i+1); v < lo || v >= hi {
			t.Fatalf("value %d in bucket %d [%d, %d)", v, i, lo, hi)
		}
	}
}

func TestParseStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=10,usec=200,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_eval:calls=2,usec=100,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=12,usec=12,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n" +
		"# Stats\r\ntotal_reads_processed:7\r\n# Memory\r\nused_memory:1024\r\n"
	st, err := parseStats(info)
	if err != nil {
		t.Fatal(err)
	}
	want := serverStats{scriptCalls: 12, scriptUsec: 300, cpu: 3.75, reads: 7, usedMemory: 1024}
	if st != want {
		t.Errorf("parsed %+v, want %+v", st, want)
	}
	if _, err := parseStats("# CPU\r\nused_cpu_sys:1\r\n"); err == nil {
		t.Error("INFO without the CPU, stats and memory fields parsed")
	}
}

func TestConfigErrors(t *testing.T) {
	good := tinyConfig("127.0.0.1:1", modeBatched)
	if err := good.validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	bad := map[string]func(*runConfig){
		"topology": func(c *runConfig) { c.Topology = "ring" },
		"mode":     func(c *runConfig) { c.Mode = "leased-ish" },
		"replicas": func(c *runConfig) { c.Replicas = 0 },
		"rate":     func(c *runConfig) { c.Rate = 0 },
		"duration": func(c *runConfig) { c.Duration = 0 },
		"keys":     func(c *runConfig) { c.Keys = 0 },
		"fraction": func(c *runConfig) { c.LimitFrac = -1 },
		"pool":     func(c *runConfig) { c.PoolSize = 0 },
		"lanes":    func(c *runConfig) { c.Lanes = 0 },
		"timeout":  func(c *runConfig) { c.Timeout = 0 },
		"inflight": func(c *runConfig) { c.MaxInFlight = 0 },
		"headroom": func(c *runConfig) { c.TierHeadroom = 0 },
		"lease":    func(c *runConfig) { c.MaxLease = -1 },
		"prefix":   func(c *runConfig) { c.Prefix = "" },
		"addrs":    func(c *runConfig) { c.Addrs = nil },
	}
	for name, f := range bad {
		c := good
		f(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: bad config accepted", name)
		}
		if _, err := run(context.Background(), c); err == nil {
			t.Errorf("%s: run accepted a bad config", name)
		}
	}
	for _, args := range [][]string{
		{"-replicas", "3,x"}, {"-replicas", "0"}, {"-topology", "ring"},
		{"-modes", "batched,nope"}, {"-memory-keys", "-1"}, {"-no-such-flag"},
		{"-rate", "0"}, {"-max-lease", "-1"}, {"-rate", "x"}, {"-replicas", "3,30,300", "-rate", "1,2"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("flags %q accepted", args)
		}
	}
	o, err := parseFlags([]string{"-pool", "3"}, io.Discard)
	if err != nil || o.lanes != 2 || len(o.modes) != len(knownModes) || !slices.Equal(o.rates, []float64{200, 200, 200}) {
		t.Errorf("defaults with -pool 3: lanes %d, modes %v, rates %v, err %v", o.lanes, o.modes, o.rates, err)
	}
	o, err = parseFlags([]string{"-replicas", "3,300", "-rate", "1000,10"}, io.Discard)
	if err != nil || !slices.Equal(o.rates, []float64{1000, 10}) {
		t.Errorf("-rate per fleet size: %v, %v", o.rates, err)
	}
}

func TestLimits(t *testing.T) {
	c := tinyConfig("127.0.0.1:1", modeTiered) // 3 × 150/s over 10 keys: 45/s per key
	g := c.limitFor()
	if g != (bulwark.Limit{Events: 23, Period: time.Second}) { // round(0.5 × 45)
		t.Errorf("limit per key %v, want 23/1s", g)
	}
	l := c.localLimitFor(g) // 1.2 × a third of 23/s, burst ⌈23 × 1.2 / 3⌉
	if l != (bulwark.Limit{Events: 28, Period: 3 * time.Second, Burst: 10}) {
		t.Errorf("local tier %v, want 28/3s burst 10", l)
	}
	if err := errors.Join(g.Validate(), l.Validate()); err != nil {
		t.Error(err)
	}
	c.Replicas, c.Rate = 300, 1 // 30/s per key: a limit of 15/s, a local burst of 1
	if l := c.localLimitFor(c.limitFor()); l.Burst != 1 || l.Period != 300*time.Second {
		t.Errorf("local tier of 300 replicas %v", l)
	}
}
