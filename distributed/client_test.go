package distributed_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// countingClient is a client wrapper as a user writes one, for tracing or
// metrics: it embeds *redis.Client and overrides the three methods of
// distributed.Client, counting their calls.
type countingClient struct {
	*redis.Client
	processes, pipelines, subscribes atomic.Int64
}

func (c *countingClient) Process(ctx context.Context, cmd redis.Cmder) error {
	c.processes.Add(1)
	return c.Client.Process(ctx, cmd)
}

func (c *countingClient) Pipeline() redis.Pipeliner {
	c.pipelines.Add(1)
	return c.Client.Pipeline()
}

func (c *countingClient) Subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	c.subscribes.Add(1)
	return c.Client.Subscribe(ctx, channels...)
}

// fieldClient wraps a client in a field instead of embedding it: it has
// exactly the methods of distributed.Client, plus Options, which tells the
// store that deadlines are honoured (so it batches).
type fieldClient struct {
	c                     *redis.Client
	pipelines, subscribes atomic.Int64
}

func (f *fieldClient) Process(ctx context.Context, cmd redis.Cmder) error {
	return f.c.Process(ctx, cmd)
}

func (f *fieldClient) Pipeline() redis.Pipeliner {
	f.pipelines.Add(1)
	return f.c.Pipeline()
}

func (f *fieldClient) Subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	f.subscribes.Add(1)
	return f.c.Subscribe(ctx, channels...)
}

func (f *fieldClient) Options() *redis.Options { return f.c.Options() }

var (
	_ distributed.Client = (*countingClient)(nil)
	_ distributed.Client = (*fieldClient)(nil)
)

// wrapperCase is one client wrapper under test, with its counters.
type wrapperCase struct {
	client     distributed.Client
	pipelines  func() int64
	subscribes func() int64
}

func wrappers(t *testing.T) map[string]func() wrapperCase {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	newClient := func() *redis.Client {
		c := distributed.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return map[string]func() wrapperCase{
		"embedding": func() wrapperCase {
			w := &countingClient{Client: newClient()}
			return wrapperCase{w, w.pipelines.Load, w.subscribes.Load}
		},
		"field": func() wrapperCase {
			w := &fieldClient{c: newClient()}
			return wrapperCase{w, w.pipelines.Load, w.subscribes.Load}
		},
	}
}

// TestClientWrapperKeepsBatching: with a wrapper client, calls that find
// the store's only lane busy still leave together in pipelines, through
// the wrapper's Pipeline, and are decided by Redis.
func TestClientWrapperKeepsBatching(t *testing.T) {
	for name, mk := range wrappers(t) {
		t.Run(name, func(t *testing.T) {
			w := mk()
			plain := redistest.Default(t)
			prefix := redistest.Prefix(t, plain)
			s, err := distributed.New(w.client, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second), distributed.WithBatching(1))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tb, err := s.TokenBucket("wrapped", bulwark.PerSecond(1_000_000))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var degraded atomic.Int64
			// Rounds of concurrent calls until some queue behind the busy
			// lane (the first round nearly always does); bounded so a
			// broken store cannot loop forever.
			for round := 0; round < 50 && w.pipelines() == 0; round++ {
				var wg sync.WaitGroup
				for range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 10 {
							d, err := tb.Allow(ctx, "k", 1)
							if err != nil {
								t.Error(err)
								return
							}
							if d.Degraded || !d.Allowed {
								degraded.Add(1)
							}
						}
					}()
				}
				wg.Wait()
			}
			if w.pipelines() == 0 {
				t.Fatal("no call was batched through the wrapper's Pipeline")
			}
			if n := degraded.Load(); n != 0 {
				t.Fatalf("%d calls were denied or decided without Redis", n)
			}
		})
	}
}

// TestClientWrapperKeepsBroadcast: a breaker built on a store with a
// wrapper client hears another replica's transition through pub/sub (the
// wrapper's Subscribe), not only through its refreshes (an hour apart
// here).
func TestClientWrapperKeepsBroadcast(t *testing.T) {
	for name, mk := range wrappers(t) {
		t.Run(name, func(t *testing.T) {
			w := mk()
			plain := redistest.Default(t)
			prefix := redistest.Prefix(t, plain)
			s, err := distributed.New(w.client, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			other, _, _ := testStore(t, plain, distributed.WithPrefix(prefix))
			cfg := bulwark.DefaultBreakerConfig()
			cfg.OpenFor = time.Hour
			b, err := s.Breaker("wrapped", cfg, distributed.WithRefreshInterval(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if b.State(ctx) != bulwark.Closed {
				t.Fatal("not closed at first")
			}
			channel := prefix + ":br:events"
			eventually(t, 5*time.Second, "the wrapped store subscribed", func() bool {
				n, err := plain.PubSubNumSub(ctx, channel).Result()
				return err == nil && n[channel] > 0
			})
			if w.subscribes() == 0 {
				t.Fatal("the subscription did not go through the wrapper's Subscribe")
			}
			ob, err := other.Breaker("wrapped", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := ob.ForceOpen(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the transition heard through the wrapper", func() bool {
				return b.State(ctx) == bulwark.Open
			})
		})
	}
}

// panickyClient is a broken wrapper: its Process and its pipelines'
// Exec panic.
type panickyClient struct{ *redis.Client }

func (panickyClient) Process(context.Context, redis.Cmder) error { panic("wrapper bug in Process") }

func (c panickyClient) Pipeline() redis.Pipeliner { return panickyPipe{c.Client.Pipeline()} }

type panickyPipe struct{ redis.Pipeliner }

func (panickyPipe) Exec(context.Context) ([]redis.Cmder, error) { panic("wrapper bug in Exec") }

// TestClientWrapperPanicIsACallFailure: a wrapper that panics, on the
// caller's goroutine or on the store's own (batched pipelines, the
// prober), fails the call instead of killing the process: the decisions
// are made locally, the store turns degraded, and the panics are counted.
func TestClientWrapperPanicIsACallFailure(t *testing.T) {
	addr := redistest.Default(t).(*redis.Client).Options().Addr
	c := distributed.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s, err := distributed.New(panickyClient{c}, distributed.WithBatching(1), distributed.WithProbeInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tb, err := s.TokenBucket("broken", bulwark.PerSecond(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var local atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				d, err := tb.Allow(context.Background(), "k", 1)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Degraded {
					local.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if local.Load() != 16*20 {
		t.Fatalf("%d of %d decisions made locally, want all", local.Load(), 16*20)
	}
	if s.Healthy() {
		t.Fatal("the store is healthy on a client that panics on every call")
	}
	if s.ObserverPanics() == 0 {
		t.Fatal("the client's panics were not counted")
	}
}
