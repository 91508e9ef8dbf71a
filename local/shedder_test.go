package local

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestShedderShedsByPriority(t *testing.T) {
	obs := &policyEvents{}
	s, err := NewShedder(ShedderConfig{MaxInFlight: 10}, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	// Default shares: low below 5 in flight, normal below 7, high below 9,
	// critical below 10.
	want := [NumPriorities]int{5, 7, 9, 10}
	for p := PriorityLow; p <= PriorityCritical; p++ {
		if got := s.Threshold(p); got != want[p] {
			t.Fatalf("threshold of %v = %d, want %d", p, got, want[p])
		}
	}
	// Fill up one critical slot at a time and see who still gets in: as
	// load grows, low work goes first and critical work last.
	var firstShed [NumPriorities]int
	var held []func()
	for load := 0; load <= 10; load++ {
		for p := PriorityLow; p <= PriorityCritical; p++ {
			release, err := s.Admit(p)
			if err != nil {
				if !errors.Is(err, ErrShed) || !errors.Is(err, bulwark.ErrBulkheadFull) {
					t.Fatalf("err = %v", err)
				}
				if firstShed[p] == 0 {
					firstShed[p] = load
				}
				continue
			}
			release()
		}
		if load < 10 {
			r, err := s.Admit(PriorityCritical)
			if err != nil {
				t.Fatalf("critical refused at load %d", load)
			}
			held = append(held, r)
		}
	}
	if firstShed != want {
		t.Fatalf("load at which each priority is first shed = %v, want %v", firstShed, want)
	}
	if got := s.InFlight(); got != 10 {
		t.Fatalf("in flight = %d", got)
	}
	for _, r := range held {
		r()
	}
	if s.InFlight() != 0 {
		t.Fatal("slots not released")
	}
	if len(obs.of(bulwark.EventRejected)) != 6+4+2+1 { // loads 5..10, 7..10, 9..10, 10
		t.Fatalf("rejected events = %d, want 13", len(obs.of(bulwark.EventRejected)))
	}
}

func TestShedderAsPolicyAndBulkhead(t *testing.T) {
	s, _ := NewShedder(ShedderConfig{MaxInFlight: 2, Shares: [NumPriorities]float64{0.5, 0.5, 1, 1}})
	ex, _ := bulwark.Compose[string](s)
	low := WithPriority(context.Background(), PriorityLow)
	high := WithPriority(context.Background(), PriorityHigh)
	var lowInner, highInner error
	_, err := ex.Run(low, func(context.Context) (string, error) {
		_, lowInner = ex.Run(low, func(context.Context) (string, error) { return "", nil })
		_, highInner = ex.Run(high, func(context.Context) (string, error) { return "", nil })
		return "ok", nil
	})
	if err != nil || !errors.Is(lowInner, ErrShed) || highInner != nil {
		t.Fatalf("outer %v, low %v, high %v; want the second low call shed and the high one run", err, lowInner, highInner)
	}
	if PriorityFrom(context.Background()) != PriorityNormal || PriorityFrom(high) != PriorityHigh {
		t.Fatal("PriorityFrom")
	}
	// As a Bulkhead.
	var bh bulwark.Bulkhead = s
	release, err := bh.Acquire(high)
	if err != nil {
		t.Fatal(err)
	}
	release()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bh.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on a done ctx: %v", err)
	}
	// Out-of-range priorities count as critical.
	if s.Threshold(Priority(200)) != 2 || Priority(200).String() != "Priority(200)" || PriorityLow.String() != "low" {
		t.Fatal("out-of-range priority")
	}
}

func TestShedderValidation(t *testing.T) {
	bad := []ShedderConfig{
		{MaxInFlight: 0},
		{MaxInFlight: 4, Shares: [NumPriorities]float64{0.5, 0.4, 0.9, 1}},
		{MaxInFlight: 4, Shares: [NumPriorities]float64{0.5, 0.6, 0.9, 0.95}},
		{MaxInFlight: 4, Shares: [NumPriorities]float64{0, 0.6, 0.9, 1}},
		{MaxInFlight: 4, Shares: [NumPriorities]float64{0.5, 0.6, 1.5, 1}},
	}
	for _, c := range bad {
		if _, err := NewShedder(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewShedder(%+v) err = %v", c, err)
		}
	}
}

func TestShedderAllocatesNothing(t *testing.T) {
	s, _ := NewShedder(ShedderConfig{MaxInFlight: 4})
	if n := testing.AllocsPerRun(100, func() {
		if r, err := s.Admit(PriorityHigh); err == nil {
			r()
		}
	}); n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}
