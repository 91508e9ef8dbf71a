package bulwarktest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// Call is one request to the code under test, as StartLoad makes it. It
// reports whether the answer was degraded (decided without Redis, e.g.
// bulwark.Decision.Degraded, or a response header such as the one
// bulwarkhttp.WithDegradedHeader sets) and any error (an error answer, a
// 5xx status, a timeout). ctx is cancelled when the load stops.
type Call func(ctx context.Context) (degraded bool, err error)

// Answer is the outcome of one Call.
type Answer struct {
	Worker     int       // which goroutine made the call, 0-based
	Start, End time.Time // when the call started and returned
	Degraded   bool
	Err        error
}

// Load calls a Call from several goroutines, back to back, until Stop, and
// records every answer.
type Load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	answers []Answer
	record  *Record
}

// StartLoad starts workers goroutines (at least 1) that call call back to
// back, pausing pause between two calls of one worker (0: none), until
// Stop. The test's cleanup stops the load. A Call that panics fails the
// answer with the panic's value instead of crashing the test binary.
func StartLoad(tb testing.TB, workers int, pause time.Duration, call Call) *Load {
	tb.Helper()
	if workers < 1 {
		tb.Fatalf("bulwarktest: StartLoad with %d workers: want at least 1", workers)
		return nil
	}
	if call == nil {
		tb.Fatalf("bulwarktest: StartLoad with a nil Call")
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel}
	for w := range workers {
		l.wg.Go(func() { l.work(ctx, w, pause, call) })
	}
	tb.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) work(ctx context.Context, w int, pause time.Duration, call Call) {
	var timer *time.Timer
	if pause > 0 {
		timer = time.NewTimer(pause)
		defer timer.Stop()
		<-timer.C
	}
	for ctx.Err() == nil {
		a := Answer{Worker: w, Start: time.Now()}
		a.Degraded, a.Err = safeCall(ctx, call)
		a.End = time.Now()
		if ctx.Err() != nil && a.Err != nil {
			return // cancelled by Stop: not an answer of the service
		}
		l.mu.Lock()
		l.answers = append(l.answers, a)
		l.mu.Unlock()
		if timer != nil {
			timer.Reset(pause)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

func safeCall(ctx context.Context, call Call) (degraded bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			degraded, err = false, fmt.Errorf("bulwarktest: the call panicked: %v", r)
		}
	}()
	return call(ctx)
}

// Count returns the number of answers so far.
func (l *Load) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

// WaitFor waits until an answer that started after since satisfies ok and
// returns it, failing the test after timeout. It polls the answers every
// millisecond or so; it is how a test waits for "the service is back on
// Redis" without sleeping:
//
//	back := load.WaitFor(t, healAt, 10*time.Second, func(a bulwarktest.Answer) bool { return !a.Degraded })
func (l *Load) WaitFor(tb testing.TB, since time.Time, timeout time.Duration, ok func(Answer) bool) Answer {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		l.mu.Lock()
		fresh := l.answers[seen:]
		seen = len(l.answers)
		for _, a := range fresh {
			if !a.Start.Before(since) && ok(a) {
				l.mu.Unlock()
				return a
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			tb.Fatalf("bulwarktest: no answer started after %s met the condition within %v (%d answers in all)",
				since.Format("15:04:05.000"), timeout, seen)
			return Answer{}
		}
		time.Sleep(time.Millisecond)
	}
}

// Stop ends the load, waits for its goroutines and returns the record of
// every answer. It is idempotent: later calls return the same record.
func (l *Load) Stop() *Record {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.mu.Lock()
		as := append([]Answer(nil), l.answers...)
		l.mu.Unlock()
		sort.SliceStable(as, func(i, j int) bool { return as[i].Start.Before(as[j].Start) })
		l.record = &Record{Answers: as}
	})
	return l.record
}

// Record is every answer of a stopped Load, by start time. Its methods
// check a property and fail the test, listing the offending answers, when
// it does not hold.
type Record struct {
	Answers []Answer
}

// Between returns the answers that started at or after from and ended at or
// before to: the ones that ran entirely within the window.
func (r *Record) Between(from, to time.Time) []Answer {
	var out []Answer
	for _, a := range r.Answers {
		if !a.Start.Before(from) && !a.End.After(to) {
			out = append(out, a)
		}
	}
	return out
}

// Degraded returns how many answers were degraded.
func (r *Record) Degraded() int {
	n := 0
	for _, a := range r.Answers {
		if a.Degraded {
			n++
		}
	}
	return n
}

// NoErrors checks that no answer failed: the service kept answering.
func (r *Record) NoErrors(tb testing.TB) {
	tb.Helper()
	var bad []Answer
	for _, a := range r.Answers {
		if a.Err != nil {
			bad = append(bad, a)
		}
	}
	if len(bad) > 0 {
		tb.Errorf("bulwarktest: %d of %d answers failed; first: %s", len(bad), len(r.Answers), describe(bad[0]))
	}
}

// DegradedDuring checks that at least one answer ran entirely between from
// and to (the service answered while Redis was away) and that every such
// answer was degraded (it said so).
func (r *Record) DegradedDuring(tb testing.TB, from, to time.Time) {
	tb.Helper()
	in := r.Between(from, to)
	if len(in) == 0 {
		tb.Errorf("bulwarktest: no answer ran between %s and %s (%d answers in all): the service did not answer while Redis was away",
			from.Format("15:04:05.000"), to.Format("15:04:05.000"), len(r.Answers))
		return
	}
	for _, a := range in {
		if !a.Degraded {
			tb.Errorf("bulwarktest: an answer while Redis was away (%s to %s) was not flagged degraded: %s (%d answers in the window)",
				from.Format("15:04:05.000"), to.Format("15:04:05.000"), describe(a), len(in))
			return
		}
	}
}

// BackWithin checks that the service returned to Redis within bound of
// heal: some answer that started after heal was not degraded, and every
// answer that started bound or more after heal was not degraded. It returns
// how long after heal the first non-degraded answer started (0 when there
// was none).
func (r *Record) BackWithin(tb testing.TB, heal time.Time, bound time.Duration) time.Duration {
	tb.Helper()
	var back time.Duration
	found := false
	after := 0
	for _, a := range r.Answers {
		if a.Start.Before(heal) {
			continue
		}
		after++
		if !a.Degraded && !found {
			back, found = a.Start.Sub(heal), true
		}
		if a.Degraded && a.Start.Sub(heal) >= bound {
			tb.Errorf("bulwarktest: an answer %v after the heal was still degraded (bound %v): %s",
				a.Start.Sub(heal).Round(time.Millisecond), bound, describe(a))
			return back
		}
	}
	if !found {
		tb.Errorf("bulwarktest: none of the %d answers after the heal came from Redis (all degraded)", after)
		return 0
	}
	if back > bound {
		tb.Errorf("bulwarktest: the first answer from Redis came %v after the heal, over the bound %v", back, bound)
	}
	return back
}

// MaxLatency checks that no answer took longer than d.
func (r *Record) MaxLatency(tb testing.TB, d time.Duration) {
	tb.Helper()
	for _, a := range r.Answers {
		if a.End.Sub(a.Start) > d {
			tb.Errorf("bulwarktest: an answer took %v, over %v: %s", a.End.Sub(a.Start).Round(time.Millisecond), d, describe(a))
			return
		}
	}
}

func describe(a Answer) string {
	return fmt.Sprintf("worker %d, %s to %s, degraded=%v, err=%v",
		a.Worker, a.Start.Format("15:04:05.000"), a.End.Format("15:04:05.000"), a.Degraded, a.Err)
}
