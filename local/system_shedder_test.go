package local

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// fakeSignal is a Signal whose value the test sets.
type fakeSignal struct {
	mu    sync.Mutex
	name  string
	v     float64
	err   error
	panic bool
	reads int
}

func (f *fakeSignal) Name() string { return f.name }

func (f *fakeSignal) Read() (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.panic {
		panic("signal")
	}
	return f.v, f.err
}

func (f *fakeSignal) set(v float64) { f.mu.Lock(); f.v = v; f.mu.Unlock() }

func (f *fakeSignal) readCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.reads }

// admitted says which priorities a shedder admits now, releasing at once.
func admitted(t *testing.T, s *SystemShedder) [NumPriorities]bool {
	t.Helper()
	var out [NumPriorities]bool
	for p := PriorityLow; p <= PriorityCritical; p++ {
		release, err := s.Admit(p)
		if err == nil {
			release()
			out[p] = true
			continue
		}
		if !errors.Is(err, ErrSystemOverload) || !errors.Is(err, ErrShed) || !errors.Is(err, bulwark.ErrBulkheadFull) {
			t.Fatalf("Admit(%v): %v", p, err)
		}
	}
	return out
}

// The thresholds, their hysteresis and the headroom of each priority, as
// a step table: CPU rule {High 0.8, Low 0.6}, default headroom (low 1,
// normal 1.1, high 1.25, critical never).
func TestSystemShedderThresholdsHysteresisPriorities(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	cpu := &fakeSignal{name: "cpu"}
	obs := &policyEvents{}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: cpu, High: 0.8, Low: 0.6}},
		Interval: time.Second}, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	all := [NumPriorities]bool{true, true, true, true}
	steps := []struct {
		v    float64
		want [NumPriorities]bool // low, normal, high, critical admitted
	}{
		{0.5, all},
		{0.79, all},
		{0.8, [4]bool{false, true, true, true}},    // low on at 0.8
		{0.7, [4]bool{false, true, true, true}},    // not below 0.6: still on
		{0.89, [4]bool{false, false, true, true}},  // normal on at 0.88 (0.8×1.1)
		{0.99, [4]bool{false, false, true, true}},  // high needs 1.0
		{1.0, [4]bool{false, false, false, true}},  // high on; critical never
		{0.76, [4]bool{false, false, false, true}}, // high off only below 0.75 (0.6×1.25)
		{0.74, [4]bool{false, false, true, true}},  // high off
		{0.65, [4]bool{false, true, true, true}},   // normal off below 0.66
		{0.6, [4]bool{false, true, true, true}},    // low still on at 0.6
		{0.59, all},                                // low off below 0.6
		{0.79, all},                                // and stays off until 0.8
	}
	for i, st := range steps {
		cpu.set(st.v)
		clk.Advance(time.Second)
		if got := admitted(t, s); got != st.want {
			t.Fatalf("step %d (cpu %v): admitted %v, want %v", i, st.v, got, st.want)
		}
		if got := s.Values()[0]; got != st.v {
			t.Fatalf("step %d: Values %v, want %v", i, got, st.v)
		}
	}
	if n := len(obs.of(bulwark.EventLimitChanged)); n != 6 {
		t.Fatalf("limit-changed events: %d, want 6 (one per change of state)", n)
	}
	if n := len(obs.of(bulwark.EventRejected)); n == 0 {
		t.Fatal("no rejected events")
	}
}

// Signals are read at most once per interval, whatever the call rate;
// Refresh reads at once.
func TestSystemShedderSamplesOncePerInterval(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	sig := &fakeSignal{name: "x"}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: sig, High: 1, Low: 0.5}},
		Interval: 100 * time.Millisecond}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		admitted(t, s)
	}
	if n := sig.readCount(); n != 1 {
		t.Fatalf("reads: %d, want 1", n)
	}
	sig.set(2)
	admitted(t, s)
	if s.Shedding(PriorityLow) {
		t.Fatal("shedding before the interval passed")
	}
	clk.Advance(100 * time.Millisecond)
	if got := admitted(t, s); got[PriorityLow] {
		t.Fatal("low work admitted with the signal at 2")
	}
	sig.set(0)
	s.Refresh()
	if s.Shedding(PriorityLow) {
		t.Fatal("Refresh did not read the signal")
	}
}

// Several rules: a priority is shed while any rule sheds it. A failing or
// panicking signal keeps its last state and is counted; a panicking
// observer is recovered and counted.
func TestSystemShedderRulesAndFailures(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	mem, lat := &fakeSignal{name: "memory"}, &fakeSignal{name: "sched_latency"}
	obs := bulwark.ObserverFunc(func(bulwark.Event) { panic("observer") })
	s, err := NewSystemShedder(SystemShedderConfig{
		Rules:    []SystemRule{{Signal: mem, High: 0.9, Low: 0.8}, {Signal: lat, High: 0.01, Low: 0.002}},
		Headroom: [NumPriorities]float64{1, 1, 2, math.Inf(1)}, Interval: time.Millisecond,
	}, WithClock(clk), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	step := func(m, l float64, want [NumPriorities]bool) {
		t.Helper()
		mem.set(m)
		lat.set(l)
		clk.Advance(time.Millisecond)
		if got := admitted(t, s); got != want {
			t.Fatalf("memory %v, latency %v: admitted %v, want %v", m, l, got, want)
		}
	}
	step(0.5, 0.001, [4]bool{true, true, true, true})
	step(0.95, 0.001, [4]bool{false, false, true, true})
	step(0.5, 0.015, [4]bool{false, false, true, true}) // memory off, latency on
	step(0.5, 0.02, [4]bool{false, false, false, true})
	mem.mu.Lock()
	mem.err = errors.New("unreadable")
	mem.mu.Unlock()
	lat.mu.Lock()
	lat.panic = true
	lat.mu.Unlock()
	step(0, 0, [4]bool{false, false, false, true}) // states kept
	if s.SignalErrors() != 2 {
		t.Fatalf("signal errors: %d, want 2", s.SignalErrors())
	}
	if s.ObserverPanics() == 0 {
		t.Fatal("observer panics not counted")
	}
}

// With InFlight set, admitted calls also count against the in-flight
// shedder; Run, Acquire and AcquirePriority use the ctx's priority.
func TestSystemShedderComposesInFlight(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	sig := &fakeSignal{name: "cpu"}
	inner, err := NewShedder(ShedderConfig{MaxInFlight: 2, Shares: [NumPriorities]float64{0.5, 0.5, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: sig, High: 0.8, Low: 0.5}}, InFlight: inner}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Acquire(context.Background()) // normal
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(context.Background()); !errors.Is(err, ErrShed) || errors.Is(err, ErrSystemOverload) {
		t.Fatalf("second normal call: %v, want the in-flight shedder's ErrShed", err)
	}
	if inner.InFlight() != 1 {
		t.Fatalf("in flight: %d", inner.InFlight())
	}
	r1()
	ex, err := bulwark.Compose[string](s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ex.Run(WithPriority(context.Background(), PriorityHigh), func(context.Context) (string, error) { return "ran", nil })
	if err != nil || got != "ran" {
		t.Fatalf("Run: %q, %v", got, err)
	}
	sig.set(1)
	clk.Advance(time.Second)
	if _, err := s.AcquirePriority(context.Background(), -5); !errors.Is(err, ErrSystemOverload) {
		t.Fatalf("low priority under overload: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
}

func TestSystemShedderConfigErrors(t *testing.T) {
	sig := &fakeSignal{name: "x"}
	var typedNil *fakeSignal
	for name, c := range map[string]SystemShedderConfig{
		"no rules":     {},
		"nil signal":   {Rules: []SystemRule{{High: 1}}},
		"typed nil":    {Rules: []SystemRule{{Signal: typedNil, High: 1}}},
		"zero high":    {Rules: []SystemRule{{Signal: sig}}},
		"inf high":     {Rules: []SystemRule{{Signal: sig, High: math.Inf(1)}}},
		"nan high":     {Rules: []SystemRule{{Signal: sig, High: math.NaN()}}},
		"low at high":  {Rules: []SystemRule{{Signal: sig, High: 1, Low: 1}}},
		"negative low": {Rules: []SystemRule{{Signal: sig, High: 1, Low: -1}}},
		"interval":     {Rules: []SystemRule{{Signal: sig, High: 1}}, Interval: time.Microsecond},
		"headroom < 1": {Rules: []SystemRule{{Signal: sig, High: 1}}, Headroom: [4]float64{0.5, 1, 1, 1}},
		"decreasing":   {Rules: []SystemRule{{Signal: sig, High: 1}}, Headroom: [4]float64{1, 2, 1.5, 3}},
	} {
		if _, err := NewSystemShedder(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// Admit allocates nothing, reading signals or not.
func TestSystemShedderAdmitAllocatesNothing(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	sig := &fakeSignal{name: "x"}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: sig, High: 1, Low: 0.5}}}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		clk.Advance(time.Second)
		release, err := s.Admit(PriorityNormal)
		if err == nil {
			release()
		}
	}); n != 0 {
		t.Fatalf("allocations per Admit: %v", n)
	}
}

// Many goroutines admitting while the signal moves and the clock runs:
// no race, and every admitted call is released into the in-flight count.
func TestSystemShedderConcurrent(t *testing.T) {
	sig := &fakeSignal{name: "x"}
	inner, err := NewShedder(ShedderConfig{MaxInFlight: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSystemShedder(SystemShedderConfig{Rules: []SystemRule{{Signal: sig, High: 0.8, Low: 0.4}},
		Interval: time.Millisecond, InFlight: inner})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if g == 0 && i%100 == 0 {
					sig.set(float64(i%700) / 500)
					_ = s.Values()
				}
				if release, err := s.Admit(Priority(i % NumPriorities)); err == nil {
					release()
				}
			}
		}()
	}
	wg.Wait()
	if inner.InFlight() != 0 {
		t.Fatalf("in flight at the end: %d", inner.InFlight())
	}
}
