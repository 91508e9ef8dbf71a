package local

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeTree writes files (path relative to root -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// steppedNow returns a clock function the test moves by hand.
func steppedNow() (now func() time.Time, advance func(time.Duration)) {
	var mu sync.Mutex
	t := time.Unix(1_800_000_000, 0)
	return func() time.Time { mu.Lock(); defer mu.Unlock(); return t },
		func(d time.Duration) { mu.Lock(); t = t.Add(d); mu.Unlock() }
}

// The CPU signal finds cgroup v1, v2 and the host's /proc/stat from the
// files a Linux machine has, takes the quota into account and turns
// counters into a use fraction.
func TestCPUSignalSources(t *testing.T) {
	t.Run("cgroup v1 with quota", func(t *testing.T) {
		root := t.TempDir()
		writeTree(t, root, map[string]string{
			"proc/self/cgroup": "4:memory:/app\n3:cpu,cpuacct:/app\n0::/\n",
			"proc/self/mountinfo": "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
				"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n",
			"sys/fs/cgroup/cpu,cpuacct/app/cpuacct.usage":     "1000000000\n",
			"sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us":  "150000\n",
			"sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us": "100000\n",
		})
		now, advance := steppedNow()
		s, err := newCPUSignal(root, now, 8)
		if err != nil {
			t.Fatal(err)
		}
		if s.Source() != CPUCgroup1 || s.CPUs() != 1.5 {
			t.Fatalf("source %s, CPUs %v; want cgroup1, 1.5", s.Source(), s.CPUs())
		}
		// 0.75 CPU-seconds in one second on 1.5 CPUs: 50%.
		writeTree(t, root, map[string]string{"sys/fs/cgroup/cpu,cpuacct/app/cpuacct.usage": "1750000000\n"})
		advance(time.Second)
		if v, err := s.Read(); err != nil || math.Abs(v-0.5) > 1e-9 {
			t.Fatalf("Read: %v, %v; want 0.5", v, err)
		}
	})
	t.Run("cgroup v2 in a container", func(t *testing.T) {
		root := t.TempDir()
		writeTree(t, root, map[string]string{
			// A cgroup namespace: the path is "/" and the mount is the container's own.
			"proc/self/cgroup":         "0::/\n",
			"proc/self/mountinfo":      "41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/cpu.stat":   "usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n",
			"sys/fs/cgroup/cpu.max":    "200000 100000\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
			"proc/meminfo":             "MemTotal:       16000000 kB\n",
		})
		now, advance := steppedNow()
		s, err := newCPUSignal(root, now, 8)
		if err != nil {
			t.Fatal(err)
		}
		if s.Source() != CPUCgroup2 || s.CPUs() != 2 {
			t.Fatalf("source %s, CPUs %v; want cgroup2, 2", s.Source(), s.CPUs())
		}
		writeTree(t, root, map[string]string{"sys/fs/cgroup/cpu.stat": "usage_usec 8000000\n"})
		advance(2 * time.Second)
		if v, err := s.Read(); err != nil || math.Abs(v-0.75) > 1e-9 {
			t.Fatalf("Read: %v, %v; want 0.75", v, err)
		}
		// Over the quota (throttling lags) reads as 1.
		writeTree(t, root, map[string]string{"sys/fs/cgroup/cpu.stat": "usage_usec 18000000\n"})
		advance(time.Second)
		if v, _ := s.Read(); v != 1 {
			t.Fatalf("Read over quota: %v, want 1", v)
		}
		m := newMemorySignal(root, func() int64 { return math.MaxInt64 })
		if l, err := m.Limit(); err != nil || l != 1<<30 {
			t.Fatalf("memory limit %v, %v; want memory.max 1GiB", l, err)
		}
		m = newMemorySignal(root, func() int64 { return 1 << 20 })
		if l, _ := m.Limit(); l != 1<<20 {
			t.Fatalf("memory limit %v, want GOMEMLIMIT 1MiB when smaller", l)
		}
	})
	t.Run("host", func(t *testing.T) {
		root := t.TempDir()
		writeTree(t, root, map[string]string{
			"proc/self/cgroup": "0::/\n",
			"proc/stat":        "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n",
			"proc/meminfo":     "MemTotal:       1000 kB\nMemFree: 10 kB\n",
		})
		now, advance := steppedNow()
		s, err := newCPUSignal(root, now, 2)
		if err != nil {
			t.Fatal(err)
		}
		advance(time.Second)
		if s.Source() != CPUHost {
			t.Fatalf("source %s, want host", s.Source())
		}
		// +300 busy of +400 jiffies: 75%.
		writeTree(t, root, map[string]string{"proc/stat": "cpu  300 0 200 750 150 0 0 0 0 0\n"})
		if v, err := s.Read(); err != nil || math.Abs(v-0.75) > 1e-9 {
			t.Fatalf("Read: %v, %v; want 0.75", v, err)
		}
		writeTree(t, root, map[string]string{"proc/stat": "garbage\n"})
		advance(time.Second)
		if _, err := s.Read(); err == nil {
			t.Fatal("no error for a malformed /proc/stat")
		}
		m := newMemorySignal(root, func() int64 { return math.MaxInt64 })
		if l, err := m.Limit(); err != nil || l != 1000*1024 {
			t.Fatalf("memory limit %v, %v; want MemTotal", l, err)
		}
	})
	t.Run("nothing readable", func(t *testing.T) {
		if _, err := newCPUSignal(t.TempDir(), time.Now, 2); err == nil {
			t.Fatal("no error without any CPU accounting")
		}
	})
}

// burn keeps n goroutines spinning until the returned stop is called (and
// at most limit), and waits for them to end.
func burn(n int, limit time.Duration) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	deadline := time.Now().Add(limit)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 1
			for !done.Load() && time.Now().Before(deadline) {
				for i := 0; i < 10000; i++ {
					x = x*31 + i
				}
			}
			_ = x
		}()
	}
	return func() { done.Store(true); wg.Wait() }
}

// untilShed reads s's signals every interval until low-priority work is
// shed or the deadline passes, and reports whether it was.
func untilShed(s *SystemShedder, deadline time.Duration) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if release, err := s.Admit(PriorityLow); err != nil {
			return true
		} else {
			release()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// The real CPU signal of this machine: goroutines burning every CPU push
// the container's (or host's) CPU use over 50%, and a system shedder
// watching it sheds low-priority work while critical work still passes.
// (On a machine busy already, the threshold is crossed the sooner.)
func TestCPUSignalRealBurner(t *testing.T) {
	cpu, err := NewCPUSignal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CPU source %s, %v CPUs", cpu.Source(), cpu.CPUs())
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: cpu, High: 0.5, Low: 0.2}}, Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := burn(2*runtime.NumCPU(), 15*time.Second)
	shed := untilShed(s, 15*time.Second)
	stop()
	if !shed {
		t.Fatalf("low-priority work never shed while burning; CPU readings %v", s.Values())
	}
	t.Logf("CPU use reading when shed: %.2f", s.Values()[0])
	if _, err := s.Admit(PriorityCritical); err != nil {
		t.Fatalf("critical work shed: %v", err)
	}
}

// The real memory signal: with GOMEMLIMIT set just above what the process
// uses, a heap grown by most of the gap pushes the signal over its
// threshold; freed, it falls back under the low mark.
func TestMemorySignalRealHeapGrower(t *testing.T) {
	mem, err := NewMemorySignal()
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	used := mem.Used()
	const room = 96 << 20
	old := debug.SetMemoryLimit(used + room)
	defer debug.SetMemoryLimit(old)
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: mem, High: 0.8, Low: 0.6}}, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Refresh()
	if s.Shedding(PriorityLow) {
		t.Fatalf("shedding before the heap grew: memory at %.2f of the limit", s.Values()[0])
	}
	var heap [][]byte
	for i := 0; i < 88 && !s.Shedding(PriorityLow); i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 { // touch every page
			b[j] = 1
		}
		heap = append(heap, b)
		s.Refresh()
	}
	if !s.Shedding(PriorityLow) {
		t.Fatalf("not shedding after growing the heap by %d MiB: memory at %.2f of the limit", len(heap), s.Values()[0])
	}
	t.Logf("shed at %.2f of the limit after %d MiB", s.Values()[0], len(heap))
	runtime.KeepAlive(heap)
	heap = nil
	runtime.GC()
	debug.FreeOSMemory()
	s.Refresh()
	if s.Shedding(PriorityLow) {
		t.Fatalf("still shedding after the heap was freed: memory at %.2f of the limit", s.Values()[0])
	}
}

// The real scheduler latency: many more spinning goroutines than CPUs make
// runnable goroutines wait for a CPU, pushing the p99 scheduling latency
// over 1ms.
func TestSchedLatencySignalRealBurner(t *testing.T) {
	lat, err := NewSchedLatencySignal(0.99)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: lat, High: 0.001, Low: 0.0002}}, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := burn(8*runtime.GOMAXPROCS(0), 15*time.Second)
	shed := untilShed(s, 15*time.Second)
	stop()
	if !shed {
		t.Fatalf("never shed while burning; latency readings %v", s.Values())
	}
	t.Logf("p99 scheduling latency when shed: %v", time.Duration(s.Values()[0]*float64(time.Second)))
	if _, err := NewSchedLatencySignal(0); err == nil {
		t.Fatal("quantile 0 accepted")
	}
}
