package local

import (
	"context"
	"errors"
	"testing"
)

func TestShedderAcquirePriority(t *testing.T) {
	s, err := NewShedder(ShedderConfig{MaxInFlight: 10}) // thresholds 5, 7, 9, 10
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var held []func()
	for range 5 {
		release, err := s.AcquirePriority(ctx, int(PriorityCritical))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	// Five in flight: low (and anything below it) is shed, normal and up are admitted.
	for _, tc := range []struct {
		priority int
		admitted bool
	}{
		{-3, false}, {int(PriorityLow), false}, {int(PriorityNormal), true}, {int(PriorityHigh), true},
		{int(PriorityCritical), true}, {99, true},
	} {
		release, err := s.AcquirePriority(ctx, tc.priority)
		if got := err == nil; got != tc.admitted {
			t.Errorf("AcquirePriority(%d) err = %v, admitted %v, want %v", tc.priority, err, got, tc.admitted)
		}
		if err == nil {
			release()
		} else if !errors.Is(err, ErrShed) {
			t.Errorf("AcquirePriority(%d) err = %v, want ErrShed", tc.priority, err)
		}
	}
	for _, r := range held {
		r()
	}
	if n := s.InFlight(); n != 0 {
		t.Errorf("in flight after releases = %d, want 0", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AcquirePriority(cctx, int(PriorityCritical)); !errors.Is(err, context.Canceled) {
		t.Errorf("AcquirePriority with a done ctx: err = %v, want context.Canceled", err)
	}
}
