package distributed_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// panickyObserver records every transition, then panics, on every event.
type panickyObserver struct {
	mu          sync.Mutex
	events      int
	transitions []string
}

func (o *panickyObserver) Observe(e bulwark.Event) {
	o.mu.Lock()
	o.events++
	if e.Kind == bulwark.EventBreakerTransition && !e.Degraded {
		o.transitions = append(o.transitions, e.From.String()+">"+e.To.String())
	}
	o.mu.Unlock()
	panic(fmt.Sprintf("observer bug on %v", e.Kind))
}

func (o *panickyObserver) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.transitions...)
}

// TestBreakerObserverPanickingOnEveryEvent: an observer that panics on
// every event, including the transitions the breaker's own goroutine
// emits (loop → flush → exec → unlockAndEmit) and those emitted on a
// caller's goroutine, changes nothing the breaker does: it trips, goes
// half-open, closes, every transition still reaches the observer, and the
// process survives.
func TestBreakerObserverPanickingOnEveryEvent(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_700_000_000, 0))
	obs := &panickyObserver{}
	s, _, _ := testStore(t, nil, distributed.WithClock(clock), distributed.WithMinTTL(time.Hour), distributed.WithObserver(obs))
	cfg := bulwark.DefaultBreakerConfig()
	cfg.ConsecutiveFailures = 2
	cfg.HalfOpenCalls = 1
	b, err := s.Breaker("panicky", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, 5*time.Second, "state read", func() bool { return b.Generation() != 0 })
	for range 2 {
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(false) // the second is urgent: the loop sends it at once
	}
	// The loop's flush opens the breaker in Redis and emits the transition
	// on the loop's goroutine.
	eventually(t, 5*time.Second, "open", func() bool { return b.State(ctx) == bulwark.Open })
	if _, err := b.Allow(ctx); !errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow on the open breaker: %v, want ErrOpen", err)
	}
	clock.Advance(cfg.OpenFor)
	done, err := b.Allow(ctx) // the trial request: open > half-open, on this goroutine
	if err != nil {
		t.Fatalf("trial call: %v", err)
	}
	done(true) // sent by the loop, which closes the breaker
	eventually(t, 5*time.Second, "closed again", func() bool {
		return len(obs.seen()) == 3 && b.State(ctx) == bulwark.Closed
	})
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if got := obs.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
	if b.Degraded() {
		t.Fatal("the breaker turned degraded")
	}
	obs.mu.Lock()
	events := obs.events
	obs.mu.Unlock()
	if p := s.ObserverPanics(); p == 0 || p > uint64(events) {
		t.Fatalf("ObserverPanics() = %d, want between 1 and %d", p, events)
	}
}
