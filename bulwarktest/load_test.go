package bulwarktest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeService answers degraded while away is set and fails while broken is
// set.
type fakeService struct{ away, broken, panics atomic.Bool }

func (s *fakeService) call(ctx context.Context) (bool, error) {
	if s.panics.Load() {
		panic("boom")
	}
	if s.broken.Load() {
		return false, errors.New("500")
	}
	return s.away.Load(), nil
}

func TestLoadRecordsAndChecks(t *testing.T) {
	var svc fakeService
	l := StartLoad(t, 3, 0, svc.call)
	start := time.Now()
	l.WaitFor(t, start, 10*time.Second, func(a Answer) bool { return !a.Degraded })
	svc.away.Store(true)
	awayAt := time.Now()
	l.WaitFor(t, awayAt, 10*time.Second, func(a Answer) bool { return a.Degraded })
	for l.Count() < 30 {
		time.Sleep(time.Millisecond)
	}
	backAt := time.Now()
	svc.away.Store(false)
	l.WaitFor(t, backAt, 10*time.Second, func(a Answer) bool { return !a.Degraded })
	rec := l.Stop()
	if rec != l.Stop() {
		t.Fatal("Stop returned another record the second time")
	}
	if rec.Degraded() == 0 || rec.Degraded() == len(rec.Answers) {
		t.Fatalf("%d of %d answers degraded, want some", rec.Degraded(), len(rec.Answers))
	}
	rec.NoErrors(t)
	rec.DegradedDuring(t, awayAt, backAt)
	rec.BackWithin(t, backAt, 10*time.Second)
	rec.MaxLatency(t, 10*time.Second)
	for i := 1; i < len(rec.Answers); i++ {
		if rec.Answers[i].Start.Before(rec.Answers[i-1].Start) {
			t.Fatal("answers not sorted by start")
		}
	}
}

func TestRecordReportsViolations(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	rec := &Record{Answers: []Answer{
		{Start: at(0), End: at(1)},
		{Start: at(10), End: at(11), Degraded: true},
		{Start: at(20), End: at(21)}, // not degraded while away
		{Start: at(30), End: at(31), Degraded: true, Err: errors.New("boom")},
		{Start: at(40), End: at(400)}, // slow
		{Start: at(500), End: at(501), Degraded: true},
	}}
	for name, tc := range map[string]struct {
		check func(tb testing.TB)
		want  string
	}{
		"errors":         {func(tb testing.TB) { rec.NoErrors(tb) }, "1 of 6 answers failed"},
		"degraded":       {func(tb testing.TB) { rec.DegradedDuring(tb, at(5), at(35)) }, "not flagged degraded"},
		"nothing-during": {func(tb testing.TB) { rec.DegradedDuring(tb, at(600), at(700)) }, "did not answer"},
		"not-back":       {func(tb testing.TB) { rec.BackWithin(tb, at(450), time.Second) }, "all degraded"},
		"back-late":      {func(tb testing.TB) { rec.BackWithin(tb, at(15), 10*time.Millisecond) }, "still degraded"},
		"latency":        {func(tb testing.TB) { rec.MaxLatency(tb, 100*time.Millisecond) }, "over 100ms"},
	} {
		f := (&fakeTB{TB: t}).run(tc.check)
		if !f.failed || !strings.Contains(f.text(), tc.want) {
			t.Errorf("%s: failed=%v %q; want a failure with %q", name, f.failed, f.text(), tc.want)
		}
	}
	if got := rec.BackWithin(t, at(15), time.Second); got != 5*time.Millisecond {
		t.Errorf("BackWithin = %v, want 5ms (the answer at 20ms)", got)
	}
	if n := len(rec.Between(at(5), at(35))); n != 3 {
		t.Errorf("Between(5ms, 35ms) = %d answers, want 3", n)
	}
}

func TestLoadRecoversPanics(t *testing.T) {
	var svc fakeService
	svc.panics.Store(true)
	l := StartLoad(t, 1, time.Millisecond, svc.call)
	a := l.WaitFor(t, time.Time{}, 10*time.Second, func(a Answer) bool { return a.Err != nil })
	if !strings.Contains(a.Err.Error(), "panicked: boom") {
		t.Fatalf("answer of a panicking call: %v", a.Err)
	}
	l.Stop()
}

func TestLoadBadArguments(t *testing.T) {
	var svc fakeService
	if f := (&fakeTB{TB: t}).run(func(tb testing.TB) { StartLoad(tb, 0, 0, svc.call) }); !f.failed {
		t.Fatal("StartLoad with 0 workers did not fail")
	}
	if f := (&fakeTB{TB: t}).run(func(tb testing.TB) { StartLoad(tb, 1, 0, nil) }); !f.failed {
		t.Fatal("StartLoad with a nil call did not fail")
	}
}
