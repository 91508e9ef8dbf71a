package local

import (
	"context"
	"testing"
)

// Admit on the in-flight Shedder alone, and on a SystemShedder with one
// signal (read every 250ms, wall clock) in front of it, with no overload:
// the cost the system rules add to every call.
func BenchmarkShedAdmit(b *testing.B) {
	inner, err := NewShedder(ShedderConfig{MaxInFlight: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	sys, err := NewSystemShedder(SystemShedderConfig{
		Rules:    []SystemRule{{Signal: SignalFunc("x", func() (float64, error) { return 0.1, nil }), High: 1, Low: 0.5}},
		InFlight: inner,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		admit func(Priority) (func(), error)
	}{{"inflight", inner.Admit}, {"system+inflight", sys.Admit}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					release, err := bc.admit(PriorityNormal)
					if err != nil {
						b.Fatal(err)
					}
					release()
				}
			})
		})
	}
}

// Reading each real signal once (what one call per interval pays).
func BenchmarkSignalRead(b *testing.B) {
	cpu, err := NewCPUSignal()
	if err != nil {
		b.Fatal(err)
	}
	mem, err := NewMemorySignal()
	if err != nil {
		b.Fatal(err)
	}
	lat, err := NewSchedLatencySignal(0.99)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []Signal{cpu, mem, lat} {
		b.Run(s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Acquire and release on a WaterMark below its high mark.
func BenchmarkWaterMarkAcquire(b *testing.B) {
	w, err := NewWaterMark(WaterMarkConfig{High: 1 << 20, Low: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := w.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
}
