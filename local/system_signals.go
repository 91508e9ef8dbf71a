package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/internal/core"
)

// Signal is one reading of the process's health for a [SystemShedder]: CPU
// use, memory use, scheduler latency, or anything else. Read is called by
// one goroutine at a time, at most once per sampling interval of the
// shedder; a Read that fails (or panics) leaves the shedder's state for the
// signal as it was.
type Signal interface {
	// Name says what is measured ("cpu", "memory", "sched_latency"); it
	// names the signal in errors and events.
	Name() string
	// Read returns the current value, in the unit of the thresholds.
	Read() (float64, error)
}

// SignalFunc adapts a function to [Signal].
func SignalFunc(name string, read func() (float64, error)) Signal {
	return signalFunc{name: name, read: read}
}

type signalFunc struct {
	name string
	read func() (float64, error)
}

func (s signalFunc) Name() string           { return s.name }
func (s signalFunc) Read() (float64, error) { return s.read() }

// CPUSource says where a [CPUSignal] reads the CPU time spent.
type CPUSource string

// The CPU sources, in the order they are tried.
const (
	CPUCgroup1 CPUSource = "cgroup1" // cpuacct.usage; quota from cpu.cfs_quota_us / cpu.cfs_period_us
	CPUCgroup2 CPUSource = "cgroup2" // cpu.stat usage_usec; quota from cpu.max
	CPUHost    CPUSource = "host"    // /proc/stat: the whole machine's busy share
)

// CPUSignal reads the CPU use of the container the process runs in, as a
// fraction of the CPU it may use: CPU time spent by the container's
// cgroup since the previous Read, divided by the wall time passed times
// the CPUs available (the cgroup's CFS quota, or the CPUs the process may
// run on when there is none). 0.5 on a container limited to 2 CPUs means
// one CPU's worth of work. Without a cgroup CPU controller it reads the
// machine's busy share from /proc/stat. Values are clamped to [0, 1].
//
// Each Read measures the interval since the previous one (the first since
// NewCPUSignal), so its value is the average use over the shedder's
// sampling interval. Safe for concurrent use.
type CPUSignal struct {
	mu     sync.Mutex
	source CPUSource
	usage  string  // cgroup file of the usage counter
	cpus   float64 // CPUs available (cgroup sources)
	now    func() time.Time
	last   cpuSample
	value  float64 // the last value returned
}

// minCPUWindow is the shortest interval a CPUSignal measures over: the
// counters advance in ticks, so shorter intervals give noise.
const minCPUWindow = 10 * time.Millisecond

type cpuSample struct {
	at          time.Time
	busy, total float64 // cgroup: busy seconds, total unused; host: jiffies
}

var _ Signal = (*CPUSignal)(nil)

// NewCPUSignal finds the container's CPU accounting (cgroup v1, then v2,
// then the host's /proc/stat) and takes a first sample. It fails only when
// none of them can be read.
func NewCPUSignal() (*CPUSignal, error) { return newCPUSignal("/", time.Now, runtime.NumCPU()) }

func newCPUSignal(root string, now func() time.Time, numCPU int) (*CPUSignal, error) {
	cg := readCgroups(root)
	s := &CPUSignal{now: now, cpus: float64(numCPU)}
	switch {
	case cg.v1["cpuacct"] != "" && fileExists(filepath.Join(cg.v1["cpuacct"], "cpuacct.usage")):
		s.source, s.usage = CPUCgroup1, filepath.Join(cg.v1["cpuacct"], "cpuacct.usage")
		if dir := cg.v1["cpu"]; dir != "" {
			q, qerr := readInt(filepath.Join(dir, "cpu.cfs_quota_us"))
			p, perr := readInt(filepath.Join(dir, "cpu.cfs_period_us"))
			if qerr == nil && perr == nil && q > 0 && p > 0 {
				s.cpus = float64(q) / float64(p)
			}
		}
	case cg.v2 != "" && fileExists(filepath.Join(cg.v2, "cpu.stat")):
		s.source, s.usage = CPUCgroup2, filepath.Join(cg.v2, "cpu.stat")
		if b, err := os.ReadFile(filepath.Join(cg.v2, "cpu.max")); err == nil {
			if f := strings.Fields(string(b)); len(f) == 2 && f[0] != "max" {
				q, qerr := strconv.ParseFloat(f[0], 64)
				p, perr := strconv.ParseFloat(f[1], 64)
				if qerr == nil && perr == nil && q > 0 && p > 0 {
					s.cpus = q / p
				}
			}
		}
	default:
		s.source, s.usage = CPUHost, filepath.Join(root, "proc", "stat")
	}
	if s.cpus <= 0 {
		s.cpus = 1
	}
	first, err := s.sample()
	if err != nil {
		return nil, fmt.Errorf("bulwark: reading CPU use (%s): %w", s.source, err)
	}
	s.last = first
	return s, nil
}

// Name returns "cpu".
func (s *CPUSignal) Name() string { return "cpu" }

// Source says where the signal reads the CPU time.
func (s *CPUSignal) Source() CPUSource { return s.source }

// CPUs returns the CPUs the container may use (cgroup sources; the
// machine's for the host source).
func (s *CPUSignal) CPUs() float64 { return s.cpus }

// Read returns the CPU use since the previous Read, in [0, 1]. Within
// 10ms of the previous reading it returns that reading again (0 for the
// first), as shorter windows measure only noise.
func (s *CPUSignal) Read() (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.sample()
	if err != nil {
		return 0, err
	}
	if cur.at.Sub(s.last.at) < minCPUWindow {
		return s.value, nil
	}
	prev := s.last
	s.last = cur
	var v float64
	if s.source == CPUHost {
		if dt := cur.total - prev.total; dt > 0 {
			v = (cur.busy - prev.busy) / dt
		}
	} else if wall := cur.at.Sub(prev.at).Seconds(); wall > 0 {
		v = (cur.busy - prev.busy) / (wall * s.cpus)
	}
	s.value = min(max(v, 0), 1)
	return s.value, nil
}

// sample reads the counters once. Requires s.mu held (or s unshared).
func (s *CPUSignal) sample() (cpuSample, error) {
	at := s.now()
	switch s.source {
	case CPUCgroup1:
		ns, err := readInt(s.usage)
		return cpuSample{at: at, busy: float64(ns) / 1e9}, err
	case CPUCgroup2:
		us, err := readKeyed(s.usage, "usage_usec")
		return cpuSample{at: at, busy: float64(us) / 1e6}, err
	}
	b, err := os.ReadFile(s.usage)
	if err != nil {
		return cpuSample{}, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return cpuSample{}, fmt.Errorf("unexpected first line of %s: %q", s.usage, line)
	}
	var total, idle float64
	for i, x := range f[1:] {
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return cpuSample{}, fmt.Errorf("unexpected first line of %s: %q", s.usage, line)
		}
		if i == 7 || i == 8 { // guest and guest_nice are counted in user already
			continue
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return cpuSample{at: at, busy: total - idle, total: total}, nil
}

// MemorySignal reads the process's memory use as a fraction of its limit:
// the memory the Go runtime has mapped and not released
// (/memory/classes/total:bytes minus /memory/classes/heap/released:bytes
// of runtime/metrics, which is what GOMEMLIMIT counts) over the smallest
// of GOMEMLIMIT (debug.SetMemoryLimit), the cgroup's limit (memory.max or
// memory.limit_in_bytes) and, when neither is set, the machine's MemTotal
// (read once, by NewMemorySignal).
// The limit is looked up at every Read, so a changed GOMEMLIMIT counts at
// once. Safe for concurrent use.
type MemorySignal struct {
	mu       sync.Mutex
	samples  []metrics.Sample
	cgroup   string // file of the cgroup limit, "" when none
	memTotal int64  // MemTotal of /proc/meminfo in bytes, 0 when unknown
	memErr   error  // why memTotal is unknown
	gomemlim func() int64
}

var _ Signal = (*MemorySignal)(nil)

// NewMemorySignal finds the cgroup memory limit, if any.
func NewMemorySignal() (*MemorySignal, error) {
	return newMemorySignal("/", gomemlimit), nil
}

func newMemorySignal(root string, gomemlimit func() int64) *MemorySignal {
	cg := readCgroups(root)
	s := &MemorySignal{gomemlim: gomemlimit,
		samples: []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}}
	switch {
	case cg.v1["memory"] != "" && fileExists(filepath.Join(cg.v1["memory"], "memory.limit_in_bytes")):
		s.cgroup = filepath.Join(cg.v1["memory"], "memory.limit_in_bytes")
	case cg.v2 != "" && fileExists(filepath.Join(cg.v2, "memory.max")):
		s.cgroup = filepath.Join(cg.v2, "memory.max")
	}
	kb, err := readKeyed(filepath.Join(root, "proc", "meminfo"), "MemTotal:")
	s.memTotal, s.memErr = kb*1024, err
	return s
}

// Name returns "memory".
func (s *MemorySignal) Name() string { return "memory" }

// Limit returns the limit the next Read divides by, in bytes.
func (s *MemorySignal) Limit() (int64, error) {
	limit := int64(math.MaxInt64)
	if l := s.gomemlim(); l > 0 {
		limit = l
	}
	if s.cgroup != "" {
		b, err := os.ReadFile(s.cgroup)
		if err != nil {
			return 0, err
		}
		// "max" (v2) and values near 2^63 (v1) mean no limit.
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && v < 1<<62 {
			limit = min(limit, v)
		}
	}
	if limit == math.MaxInt64 {
		if s.memErr != nil || s.memTotal <= 0 {
			return 0, fmt.Errorf("bulwark: no memory limit set and no MemTotal: %v", s.memErr)
		}
		limit = s.memTotal
	}
	return limit, nil
}

// Used returns the bytes the runtime holds (see MemorySignal).
func (s *MemorySignal) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.samples)
	return int64(s.samples[0].Value.Uint64() - s.samples[1].Value.Uint64())
}

// Read returns Used / Limit.
func (s *MemorySignal) Read() (float64, error) {
	limit, err := s.Limit()
	if err != nil {
		return 0, err
	}
	return float64(s.Used()) / float64(limit), nil
}

// SchedLatencySignal reads the Go scheduler's latency: how long goroutines
// waited, runnable, before they ran (/sched/latencies:seconds of
// runtime/metrics). Each Read returns the given quantile of the waits
// recorded since the previous Read, in seconds (the upper bound of the
// histogram bucket it falls in; 0 when no goroutine was scheduled). A
// process whose goroutines outnumber the CPUs they can get shows it here
// before its latency shows it to clients. Safe for concurrent use.
type SchedLatencySignal struct {
	mu       sync.Mutex
	quantile float64
	sample   []metrics.Sample
	prev     []uint64
}

var _ Signal = (*SchedLatencySignal)(nil)

// NewSchedLatencySignal returns a signal reading quantile q of the
// scheduling latency, in (0, 1] (0.99 is a good start). An error wraps
// bulwark.ErrInvalidConfig for a q out of range.
func NewSchedLatencySignal(q float64) (*SchedLatencySignal, error) {
	if !(q > 0 && q <= 1) {
		return nil, core.ConfigError("scheduler latency quantile must be in (0,1], got %v", q)
	}
	s := &SchedLatencySignal{quantile: q, sample: []metrics.Sample{{Name: "/sched/latencies:seconds"}}}
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil, errors.New("bulwark: runtime/metrics has no /sched/latencies:seconds histogram")
	}
	s.prev = append([]uint64(nil), s.sample[0].Value.Float64Histogram().Counts...)
	return s, nil
}

// Name returns "sched_latency".
func (s *SchedLatencySignal) Name() string { return "sched_latency" }

// Read returns the quantile of the waits since the previous Read.
func (s *SchedLatencySignal) Read() (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.sample)
	h := s.sample[0].Value.Float64Histogram()
	var n uint64
	for i, c := range h.Counts {
		n += c - s.prev[i]
	}
	defer func() { s.prev = append(s.prev[:0], h.Counts...) }()
	if n == 0 {
		return 0, nil
	}
	rank := uint64(math.Ceil(s.quantile * float64(n)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c - s.prev[i]
		if seen >= rank {
			up := h.Buckets[i+1]
			if math.IsInf(up, 1) {
				up = h.Buckets[i]
			}
			return up, nil
		}
	}
	return h.Buckets[len(h.Buckets)-1], nil
}

// cgroups are the cgroup directories of the process: the v2 one and the v1
// one of each controller, found from /proc/self/cgroup and
// /proc/self/mountinfo below root.
type cgroups struct {
	v2 string
	v1 map[string]string
}

func readCgroups(root string) cgroups {
	cg := cgroups{v1: map[string]string{}}
	paths := map[string]string{} // controller (or "" for v2) -> path in its hierarchy
	if b, err := os.ReadFile(filepath.Join(root, "proc", "self", "cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			if parts[0] == "0" && parts[1] == "" {
				paths[""] = parts[2]
				continue
			}
			for _, c := range strings.Split(parts[1], ",") {
				paths[c] = parts[2]
			}
		}
	}
	f, err := os.Open(filepath.Join(root, "proc", "self", "mountinfo"))
	if err != nil {
		return cg
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 3 {
			continue
		}
		hroot, mnt := a[3], filepath.Join(root, a[4])
		switch b[0] {
		case "cgroup2":
			cg.v2 = cgroupDir(mnt, hroot, paths[""])
		case "cgroup":
			for _, opt := range strings.Split(b[2], ",") {
				if opt == "cpu" || opt == "cpuacct" || opt == "memory" {
					cg.v1[opt] = cgroupDir(mnt, hroot, paths[opt])
				}
			}
		}
	}
	return cg
}

// cgroupDir maps the process's path in a hierarchy to a directory under
// the hierarchy's mount point (mounted from hroot), falling back to the
// mount point itself when the path is outside what is mounted or missing
// (a container seeing only its own cgroup).
func cgroupDir(mnt, hroot, path string) string {
	if rel, ok := strings.CutPrefix(path, hroot); ok && path != "" {
		dir := filepath.Join(mnt, rel)
		if fileExists(dir) {
			return dir
		}
	}
	return mnt
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readKeyed returns the integer after key on the line starting with key.
func readKeyed(p, key string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == key {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q in %s", key, p)
}

// gomemlimit returns the runtime's memory limit (GOMEMLIMIT or
// debug.SetMemoryLimit; math.MaxInt64 when unset) from runtime/metrics.
func gomemlimit() int64 {
	s := [1]metrics.Sample{{Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s[:])
	if s[0].Value.Kind() != metrics.KindUint64 {
		return math.MaxInt64
	}
	return int64(min(s[0].Value.Uint64(), math.MaxInt64))
}
