package distributed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// clockBreaker returns a breaker on a store driven by clock, with no
// background flush or refresh during the test.
func clockBreaker(t *testing.T, client redis.UniversalClient, clock bulwark.Clock, cfg bulwark.BreakerConfig) *Breaker {
	t.Helper()
	s, err := New(client, WithPrefix(redistest.Prefix(t, client)), WithClock(clock), WithMinTTL(time.Hour), WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b, err := s.Breaker("clock", cfg, WithFlushInterval(time.Hour), WithRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clockConfig() bulwark.BreakerConfig {
	return bulwark.BreakerConfig{Window: time.Second, MinimumCalls: 5, FailureRate: 0.5, OpenFor: 500 * time.Millisecond, HalfOpenCalls: 1}
}

// TestBreakerStaleReopenMessage: ForceOpen twice within one open period
// publishes two messages of one generation. The first, handled after the
// second ForceOpen's reply (pub/sub is late under load), must not bring
// back the earlier open period, nor read its deadline against the later
// clock: once the second period is over the breaker goes half-open.
func TestBreakerStaleReopenMessage(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := clockConfig()
	b := clockBreaker(t, redistest.Default(t), clock, cfg)
	ctx := context.Background()

	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	gen, opened := b.gen, b.openedAt
	b.mu.Unlock()
	clock.Advance(100 * time.Millisecond)
	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	reopened := clock.Now()
	clock.Advance(450 * time.Millisecond)
	of := cfg.OpenFor.Microseconds()
	b.onMessage(cluster.Message{Topic: b.topic, Payload: fmt.Sprintf("1 %d %d %d %d", gen, opened, opened+of, opened)})

	b.mu.Lock()
	gotOpened, gotUntil := b.openedAt, b.openUntil
	b.mu.Unlock()
	if want := core.Micros(reopened); gotOpened != want {
		t.Errorf("opened after the stale message: got %d, want %d", gotOpened, want)
	}
	if want := reopened.Add(cfg.OpenFor); !gotUntil.Equal(want) {
		t.Errorf("open until after the stale message: got %v, want %v", gotUntil, want)
	}
	clock.Set(reopened.Add(cfg.OpenFor))
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatalf("Allow when the second open period is over: %v", err)
	}
	done(true)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.State(ctx); got != bulwark.Closed {
		t.Errorf("state after the trial succeeded: got %v, want closed", got)
	}
}

// TestBreakerDeadlineWhileClockMoves: with an injected clock the script's
// now is the reading sent with the request, so the open deadline in the
// reply is exact, however far the clock moved while the reply was in
// flight (as it does for a round trip made by the breaker's own goroutine
// while a test advances the clock).
func TestBreakerDeadlineWhileClockMoves(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := clockConfig()
	var moving atomic.Bool
	client := redistest.Default(t)
	client.AddHook(advanceHook{clock: clock, on: &moving, by: 200 * time.Millisecond})
	b := clockBreaker(t, client, clock, cfg)
	ctx := context.Background()
	if got := b.State(ctx); got != bulwark.Closed {
		t.Fatalf("initial state: got %v", got)
	}

	moving.Store(true)
	opened := clock.Now()
	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	moving.Store(false)
	b.mu.Lock()
	until := b.openUntil
	b.mu.Unlock()
	if want := opened.Add(cfg.OpenFor); !until.Equal(want) {
		t.Errorf("open until: got %v, want %v (the reply's deadline read against a later clock)", until, want)
	}
	clock.Set(opened.Add(cfg.OpenFor))
	done, err := b.Allow(ctx)
	if errors.Is(err, bulwark.ErrOpen) {
		t.Fatalf("Allow when the open period is over: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	done(true)
}

// advanceHook moves a fake clock forward after each command while on.
type advanceHook struct {
	clock *fakeclock.Clock
	on    *atomic.Bool
	by    time.Duration
}

func (h advanceHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h advanceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.on.Load() {
			h.clock.Advance(h.by)
		}
		return err
	}
}

func (h advanceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
