package semaphore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestNewRejectsBadConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	defer c.Close()
	cases := []struct {
		name     string
		client   Client
		semName  string
		capacity int64
		opts     []Option
	}{
		{"nil client", nil, "s", 1, nil},
		{"empty name", c, "", 1, nil},
		{"capacity 0", c, "s", 0, nil},
		{"negative capacity", c, "s", -3, nil},
		{"capacity too large", c, "s", MaxCapacity + 1, nil},
		{"prefix with brace", c, "s", 1, []Option{WithPrefix("a{b}:")}},
		{"ttl too short", c, "s", 1, []Option{WithLeaseTTL(time.Millisecond)}},
		{"ttl negative", c, "s", 1, []Option{WithLeaseTTL(-time.Second)}},
		{"ttl too long", c, "s", 1, []Option{WithLeaseTTL(MaxLeaseTTL + time.Second)}},
		{"keepalive negative", c, "s", 1, []Option{WithKeepAlive(-time.Second)}},
		{"keepalive equals ttl", c, "s", 1, []Option{WithLeaseTTL(time.Second), WithKeepAlive(time.Second)}},
		{"keepalive above ttl", c, "s", 1, []Option{WithLeaseTTL(time.Second), WithKeepAlive(2 * time.Second)}},
		{"keepalive below 1ms", c, "s", 1, []Option{WithKeepAlive(time.Microsecond)}},
		{"poll interval 0", c, "s", 1, []Option{WithPollInterval(0)}},
		{"poll interval too long", c, "s", 1, []Option{WithPollInterval(MaxPollInterval + time.Second)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(tc.client, tc.semName, tc.capacity, tc.opts...)
			if !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("New: got (%v, %v), want an error wrapping ErrInvalidConfig", w, err)
			}
		})
	}
	w, err := New(c, "s", 1, nil, WithKeepAlive(0), WithLeaseTTL(MinLeaseTTL))
	if err != nil {
		t.Fatalf("New with keepalive off and the shortest TTL: %v", err)
	}
	_ = w.Close()
}

func TestInvalidWeightMakesNoCall(t *testing.T) {
	var calls atomic.Int64
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	w, err := New(c, "s", 4, WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
		calls.Add(1)
		return nil, errors.New("unreachable")
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	for _, n := range []int64{0, -1, 5, 1 << 40} {
		if _, err := w.Acquire(ctx, n); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("Acquire(%d): got %v, want ErrInvalidArgument", n, err)
		}
		if _, ok, err := w.TryAcquire(ctx, n); ok || !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("TryAcquire(%d): got (%v, %v), want ErrInvalidArgument", n, ok, err)
		}
	}
	for _, id := range []string{"", "xyz", strings.Repeat("A", 32), strings.Repeat("0", 31), strings.Repeat("g", 32)} {
		if err := w.ReleaseID(ctx, id); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("ReleaseID(%q): got %v, want ErrInvalidArgument", id, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.Acquire(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire on a cancelled ctx: got %v, want context.Canceled", err)
	}
	if _, _, err := w.TryAcquire(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("TryAcquire on a cancelled ctx: got %v, want context.Canceled", err)
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("Redis calls: got %d, want 0", got)
	}
}

func TestAcquireReleaseWeights(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	w := e.open(t, 5, WithObserver(rec), WithName("db"))
	ctx := ctxT(t, 10*time.Second)

	a := mustAcquire(t, w, 2)
	b := mustAcquire(t, w, 3)
	if got := available(t, w); got != 0 {
		t.Fatalf("Available with 2+3 of 5 held: got %d, want 0", got)
	}
	if l, ok, err := w.TryAcquire(ctx, 1); ok || err != nil {
		t.Fatalf("TryAcquire(1) when full: got (%v, %v, %v), want (nil, false, nil)", l, ok, err)
	}
	if a.Weight() != 2 || b.Weight() != 3 {
		t.Errorf("weights: got %d, %d, want 2, 3", a.Weight(), b.Weight())
	}
	if a.ID() == b.ID() || !validID(a.ID()) || !validID(b.ID()) {
		t.Errorf("ids: got %q and %q, want two distinct 32-hex-digit ids", a.ID(), b.ID())
	}
	if b.Token() <= a.Token() {
		t.Errorf("tokens: got %d then %d, want increasing", a.Token(), b.Token())
	}

	holders, err := w.Holders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) != 2 {
		t.Fatalf("Holders: got %d, want 2: %+v", len(holders), holders)
	}
	byID := map[string]LeaseInfo{}
	for _, h := range holders {
		byID[h.ID] = h
	}
	for _, l := range []*Lease{a, b} {
		h, ok := byID[l.ID()]
		if !ok || h.Weight != l.Weight() || h.Token != l.Token() || h.ExpiresIn <= 0 || h.ExpiresIn > bulwark.DefaultLeaseTTL {
			t.Errorf("Holders entry for %s: got %+v (found %v), want weight %d token %d expiry in (0, %v]",
				l.ID(), h, ok, l.Weight(), l.Token(), bulwark.DefaultLeaseTTL)
		}
	}

	mustRelease(t, a)
	if got := available(t, w); got != 2 {
		t.Fatalf("Available after releasing 2: got %d, want 2", got)
	}
	if _, ok, err := w.TryAcquire(ctx, 3); ok || err != nil {
		t.Fatalf("TryAcquire(3) with 2 free: got (%v, %v), want (false, nil)", ok, err)
	}
	c, ok, err := w.TryAcquire(ctx, 2)
	if !ok || err != nil {
		t.Fatalf("TryAcquire(2) with 2 free: got (%v, %v), want (true, nil)", ok, err)
	}
	if c.Token() <= b.Token() {
		t.Errorf("token after release: got %d, want above %d", c.Token(), b.Token())
	}
	mustRelease(t, b)
	mustRelease(t, c)
	if got := available(t, w); got != 5 {
		t.Fatalf("Available after releasing everything: got %d, want 5", got)
	}
	if keys := redistest.Keys(t, e.client, e.prefix); len(keys) != 1 || !strings.HasSuffix(keys[0], ":fence") {
		t.Errorf("keys left when idle: got %v, want only the fence key", keys)
	}

	if got := rec.Count(bulwark.EventBulkheadAcquired); got != 3 {
		t.Errorf("acquired events: got %d, want 3", got)
	}
	if got := rec.Count(bulwark.EventBulkheadReleased); got != 3 {
		t.Errorf("released events: got %d, want 3", got)
	}
	ev, ok := rec.Last(bulwark.EventBulkheadRejected)
	if !ok || !errors.Is(ev.Err, bulwark.ErrBulkheadFull) || ev.Pattern != "semaphore" || ev.Name != "db" || ev.Limit != 5 {
		t.Errorf("rejected event: got %+v (found %v), want semaphore/db, limit 5, ErrBulkheadFull", ev, ok)
	}
	select {
	case <-a.Lost():
		t.Error("Lost closed after a successful Release")
	default:
	}
}

func TestReleaseTwiceAndUnknownIDs(t *testing.T) {
	e := newEnv(t)
	w := e.open(t, 2)
	ctx := ctxT(t, 10*time.Second)
	l := mustAcquire(t, w, 1)
	other := mustAcquire(t, w, 1)
	mustRelease(t, l)
	if err := l.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Release: got %v, want ErrLeaseLost", err)
	}
	if got := available(t, w); got != 1 {
		t.Fatalf("Available after a double release: got %d, want 1 (no double free)", got)
	}
	if err := w.ReleaseID(ctx, l.ID()); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("ReleaseID of a released lease: got %v, want ErrLeaseLost", err)
	}
	if err := w.ReleaseID(ctx, newID()); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("ReleaseID of an unknown id: got %v, want ErrLeaseLost", err)
	}
	if got := available(t, w); got != 1 {
		t.Fatalf("Available after releasing unknown ids: got %d, want 1", got)
	}

	// An operator frees another holder's lease; the holder learns it on
	// its next Release.
	if err := w.ReleaseID(ctx, other.ID()); err != nil {
		t.Fatalf("ReleaseID of a live lease: %v", err)
	}
	if err := other.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Release after ReleaseID: got %v, want ErrLeaseLost", err)
	}
	select {
	case <-other.Lost():
	default:
		t.Error("Lost not closed after Release found the lease gone")
	}
	if got := available(t, w); got != 2 {
		t.Fatalf("Available: got %d, want 2", got)
	}
}

func TestConcurrentReleaseFreesOnce(t *testing.T) {
	e := newEnv(t)
	w := e.open(t, 3)
	l := mustAcquire(t, w, 2)
	keep := mustAcquire(t, w, 1)
	var wg sync.WaitGroup
	var nils, lost atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := l.Release(context.Background()); {
			case err == nil:
				nils.Add(1)
			case errors.Is(err, ErrLeaseLost):
				lost.Add(1)
			default:
				t.Errorf("Release: %v", err)
			}
		}()
	}
	wg.Wait()
	if nils.Load() != 1 || lost.Load() != 7 {
		t.Errorf("concurrent releases: got %d nil and %d ErrLeaseLost, want 1 and 7", nils.Load(), lost.Load())
	}
	if got := available(t, w); got != 2 {
		t.Errorf("Available: got %d, want 2", got)
	}
	mustRelease(t, keep)
}

// A blocked Acquire is woken by the release itself: its poll interval and
// the lease expiry are both far beyond the test's deadline.
func TestWakeUpOnRelease(t *testing.T) {
	e := newEnv(t)
	w := e.open(t, 1, WithPollInterval(time.Minute))
	holder := mustAcquire(t, w, 1)
	for round := range 3 {
		got := make(chan *Lease, 1)
		errc := make(chan error, 1)
		go func() {
			l, err := w.Acquire(ctxT(t, 20*time.Second), 1)
			errc <- err
			got <- l
		}()
		eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, w) == 1 })
		start := time.Now()
		mustRelease(t, holder)
		if err := <-errc; err != nil {
			t.Fatalf("round %d: blocked Acquire: %v", round, err)
		}
		holder = <-got
		t.Logf("round %d: release to acquire %v", round, time.Since(start))
	}
	mustRelease(t, holder)
}

// Waiters are served in arrival order: a newcomer, and a small waiter queued
// behind a large one, do not overtake.
func TestWaitersServedInArrivalOrder(t *testing.T) {
	e := newEnv(t)
	w := e.open(t, 2, WithPollInterval(time.Minute))
	ctx := ctxT(t, 20*time.Second)
	h1 := mustAcquire(t, w, 1)
	h2 := mustAcquire(t, w, 1)

	type result struct {
		who string
		l   *Lease
		err error
	}
	results := make(chan result, 2)
	acquire := func(who string, n int64) {
		l, err := w.Acquire(ctx, n)
		results <- result{who, l, err}
	}
	go acquire("big", 2)
	eventually(t, 5*time.Second, "big to queue", func() bool { return waiting(t, w) == 1 })
	go acquire("small", 1)
	eventually(t, 5*time.Second, "small to queue", func() bool { return waiting(t, w) == 2 })

	mustRelease(t, h1) // one slot free: big (ahead) needs two, so small must not take it
	if _, ok, err := w.TryAcquire(ctx, 1); ok || err != nil {
		t.Fatalf("TryAcquire(1) with waiters queued: got (%v, %v), want (false, nil)", ok, err)
	}
	mustRelease(t, h2)
	r := <-results
	if r.err != nil || r.who != "big" {
		t.Fatalf("first served: got %s (%v), want big", r.who, r.err)
	}
	select {
	case r := <-results:
		t.Fatalf("%s served while big holds everything", r.who)
	default:
	}
	mustRelease(t, r.l)
	r = <-results
	if r.err != nil || r.who != "small" {
		t.Fatalf("second served: got %s (%v), want small", r.who, r.err)
	}
	mustRelease(t, r.l)
}

func TestCancelledWaiterLeavesTheQueue(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	w := e.open(t, 1, WithPollInterval(time.Minute), WithObserver(rec))
	holder := mustAcquire(t, w, 1)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := w.Acquire(ctx, 1)
		errc <- err
	}()
	eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, w) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: got %v, want context.Canceled", err)
	}
	eventually(t, 5*time.Second, "the queue entry to be withdrawn", func() bool { return waiting(t, w) == 0 })
	if ev, ok := rec.Last(bulwark.EventBulkheadRejected); !ok || !errors.Is(ev.Err, context.Canceled) {
		t.Errorf("rejected event: got %+v (found %v), want Err context.Canceled", ev, ok)
	}
	mustRelease(t, holder)
	// The queue is empty, so a try succeeds at once.
	l, ok, err := w.TryAcquire(ctxT(t, 5*time.Second), 1)
	if !ok || err != nil {
		t.Fatalf("TryAcquire after the waiter left: got (%v, %v), want (true, nil)", ok, err)
	}
	mustRelease(t, l)
}

// An expired lease is reclaimed by the next acquire; a blocked caller
// re-checks at the expiry the script reported, without any release.
func TestExpiredLeaseIsReclaimed(t *testing.T) {
	e := newEnv(t)
	const ttl = 300 * time.Millisecond
	lostCalls := make(chan error, 1)
	a := e.open(t, 1, WithLeaseTTL(ttl), WithKeepAlive(0), WithOnLeaseLost(func(l *Lease, err error) { lostCalls <- err }))
	b := e.open(t, 1, WithLeaseTTL(ttl), WithPollInterval(time.Minute))

	held := mustAcquire(t, a, 1)
	if _, ok, err := b.TryAcquire(ctxT(t, 5*time.Second), 1); ok || err != nil {
		t.Fatalf("TryAcquire while held: got (%v, %v), want (false, nil)", ok, err)
	}
	start := time.Now()
	got := mustAcquire(t, b, 1) // waits for the expiry
	t.Logf("acquired %v after the holder's lease was granted (TTL %v)", time.Since(start), ttl)
	if got.Token() <= held.Token() {
		t.Errorf("token: got %d, want above %d", got.Token(), held.Token())
	}
	select {
	case <-held.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed for an expired lease with keepalive off")
	}
	if err := <-lostCalls; !errors.Is(err, ErrLeaseLost) {
		t.Errorf("lost callback: got %v, want ErrLeaseLost", err)
	}
	if err := held.Release(ctxT(t, 5*time.Second)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Release of an expired lease: got %v, want ErrLeaseLost", err)
	}
	if got := available(t, b); got != 0 {
		t.Errorf("Available: got %d, want 0 (the expired release must not free the new lease)", got)
	}
	mustRelease(t, got)
}

// Keepalive keeps a lease held for several TTLs.
func TestKeepAliveHoldsPastTTL(t *testing.T) {
	e := newEnv(t)
	const ttl = 300 * time.Millisecond
	w := e.open(t, 1, WithLeaseTTL(ttl), WithKeepAlive(ttl/3))
	other := e.open(t, 1, WithLeaseTTL(ttl))
	l := mustAcquire(t, w, 1)
	time.Sleep(4 * ttl) // real time: the lease must outlive its TTL
	select {
	case <-l.Lost():
		t.Fatalf("lease lost despite keepalive: %v", l.Err())
	default:
	}
	if _, ok, err := other.TryAcquire(ctxT(t, 5*time.Second), 1); ok || err != nil {
		t.Fatalf("TryAcquire while the kept-alive lease is held: got (%v, %v), want (false, nil)", ok, err)
	}
	holders, err := w.Holders(ctxT(t, 5*time.Second))
	if err != nil || len(holders) != 1 || holders[0].ID != l.ID() {
		t.Fatalf("Holders: got (%+v, %v), want the kept-alive lease", holders, err)
	}
	mustRelease(t, l)
	redistest.CheckTTLs(t, e.client, e.prefix, FenceTTL)
}

// Deleting the semaphore's keys behind the holder's back loses its lease:
// Lost closes, the callback runs, EventLeaseLost is emitted.
func TestLeaseLostWhenKeysVanish(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	type lost struct {
		l   *Lease
		err error
	}
	calls := make(chan lost, 2)
	w := e.open(t, 2, WithLeaseTTL(time.Second), WithKeepAlive(20*time.Millisecond),
		WithObserver(rec), WithOnLeaseLost(func(l *Lease, err error) { calls <- lost{l, err} }))
	l := mustAcquire(t, w, 1)
	if err := e.client.Del(ctxT(t, 5*time.Second), w.keys.leases).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed after the lease set was deleted")
	}
	c := <-calls
	if c.l != l || !errors.Is(c.err, ErrLeaseLost) || !errors.Is(l.Err(), ErrLeaseLost) {
		t.Fatalf("callback: got (%p, %v), Err %v; want (%p, ErrLeaseLost)", c.l, c.err, l.Err(), l)
	}
	if ev, ok := rec.Last(bulwark.EventLeaseLost); !ok || !errors.Is(ev.Err, ErrLeaseLost) {
		t.Errorf("lease lost event: got %+v (found %v)", ev, ok)
	}
	if err := l.Release(ctxT(t, 5*time.Second)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Release of a lost lease: got %v, want ErrLeaseLost", err)
	}
	// The orphaned weight hash was dropped with the lease set: all slots free.
	if got := available(t, w); got != 2 {
		t.Errorf("Available: got %d, want 2", got)
	}
	l2 := mustAcquire(t, w, 2)
	mustRelease(t, l2)
	if len(calls) != 0 {
		t.Errorf("callback ran %d more times", len(calls))
	}
}

// A retried acquire (the reply was lost and the client ran the script
// again) returns the same lease instead of granting a second one.
func TestAcquireIsIdempotent(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	w := e.open(t, 4, WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
		v, err := s.Run(ctx, e.client, keys, args...).Result()
		if err != nil || !strings.HasSuffix(keys[len(keys)-1], ":fence") {
			return v, err
		}
		runs.Add(1)
		return s.Run(ctx, e.client, keys, args...).Result() // as a retry after a lost reply would
	}))
	a := mustAcquire(t, w, 3)
	if runs.Load() != 1 {
		t.Fatalf("acquire script runs: got %d pairs, want 1", runs.Load())
	}
	if got := available(t, w); got != 1 {
		t.Fatalf("Available after a doubled acquire of 3: got %d, want 1", got)
	}
	holders, err := w.Holders(ctxT(t, 5*time.Second))
	if err != nil || len(holders) != 1 || holders[0].Token != a.Token() {
		t.Fatalf("Holders: got (%+v, %v), want one lease with token %d", holders, err, a.Token())
	}
	mustRelease(t, a)
}

// When the reply of a granting acquire never arrives, the caller gets the
// error and the lease is freed in the background.
func TestLostReplyFreesTheLease(t *testing.T) {
	e := newEnv(t)
	fail := atomic.Bool{}
	fail.Store(true)
	w := e.open(t, 1, WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
		v, err := s.Run(ctx, e.client, keys, args...).Result()
		if strings.HasSuffix(keys[len(keys)-1], ":fence") && fail.Load() {
			return nil, errors.New("i/o timeout (simulated)")
		}
		return v, err
	}))
	if _, err := w.Acquire(ctxT(t, 5*time.Second), 1); err == nil || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Acquire with a lost reply: got %v, want the transport error", err)
	}
	eventually(t, 5*time.Second, "the orphan lease to be freed", func() bool { return available(t, w) == 1 })
	fail.Store(false)
	mustRelease(t, mustAcquire(t, w, 1))
}

// Unexpected replies are errors, never panics or made-up leases.
func TestUnexpectedRepliesAreErrors(t *testing.T) {
	replies := []any{nil, int64(1), "OK", []any{}, []any{int64(1)}, []any{int64(1), "x", int64(2)},
		[]any{int64(2), int64(1), int64(1)}, []any{int64(0), int64(-1)}, []any{int64(1), int64(0), int64(5)}}
	for _, r := range replies {
		if _, err := decodeAcquire(r); err == nil {
			t.Errorf("decodeAcquire(%#v): no error", r)
		}
		if _, err := decodeRelease(r); err == nil {
			t.Errorf("decodeRelease(%#v): no error", r)
		}
		if _, err := decodeRenew(r); err == nil {
			t.Errorf("decodeRenew(%#v): no error", r)
		}
		if _, err := decodeInspect(r); err == nil {
			t.Errorf("decodeInspect(%#v): no error", r)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	w, err := New(c, "s", 2, WithRunner(func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
		return []any{"garbage"}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if l, err := w.Acquire(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "unexpected reply") {
		t.Errorf("Acquire with a garbage reply: got (%v, %v), want an unexpected-reply error", l, err)
	}
	if _, err := w.Holders(context.Background()); err == nil {
		t.Error("Holders with a garbage reply: no error")
	}
}

func TestCloseStopsWaitersAndReportsHeldLeases(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	lost := make(chan error, 1)
	w, err := New(e.client, e.name, 1, WithPrefix(e.prefix), WithObserver(rec),
		WithOnLeaseLost(func(_ *Lease, err error) { lost <- err }))
	if err != nil {
		t.Fatal(err)
	}
	held := mustAcquire(t, w, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Acquire(context.Background(), 1)
		errc <- err
	}()
	eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, w) == 1 })
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Acquire at Close: got %v, want ErrClosed", err)
	}
	select {
	case <-held.Lost():
	default:
		t.Fatal("Lost not closed for a lease held at Close")
	}
	if err := <-lost; !errors.Is(err, ErrLeaseLost) {
		t.Errorf("callback at Close: got %v, want ErrLeaseLost", err)
	}
	if _, err := w.Acquire(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := w.TryAcquire(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("TryAcquire after Close: got %v, want ErrClosed", err)
	}
	// The lease itself is still in Redis until released.
	mustRelease(t, held)
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Names that try to break the hash tag still give keys that share one tag
// the library built.
func TestKeysShareOneHashTag(t *testing.T) {
	names := []string{"x", "}", "{", "{}", "a}b", "{x}", "}{", "a\x00b", "\n", "é", strings.Repeat("z", maxPlainName),
		strings.Repeat("y", maxPlainName+1), strings.Repeat("{", 1<<20)}
	seen := map[string]string{}
	for _, name := range names {
		for _, prefix := range []string{"", DefaultPrefix, "app:v2:"} {
			k := newKeySet(prefix, name)
			want := hashTag(k.leases)
			if want != tag(name) || strings.ContainsAny(want, "{}") || (want[0] != 'b' && want[0] != 'h') {
				t.Fatalf("name %q: key %q has tag %q, want %q", name, k.leases, want, tag(name))
			}
			for _, key := range append(append([]string{}, k.acquire...), k.channel) {
				if got := hashTag(key); got != want {
					t.Errorf("name %q prefix %q: key %q has tag %q, want %q", name, prefix, key, got, want)
				}
				if got, want := redistest.KeySlot(key), redistest.KeySlot(k.leases); got != want {
					t.Errorf("name %q prefix %q: key %q in slot %d, want %d", name, prefix, key, got, want)
				}
			}
		}
		tg := tag(name)
		if prev, dup := seen[tg]; dup {
			t.Errorf("names %q and %q share tag %q", prev, name, tg)
		}
		seen[tg] = name
		if len(tg) > 70 {
			t.Errorf("name of %d bytes: tag of %d bytes, want a bounded tag", len(name), len(tg))
		}
	}
}

// hashTag extracts a key's Redis Cluster hash tag the way Redis does: the
// bytes between the first '{' and the next '}', if not empty.
func hashTag(key string) string {
	s := strings.IndexByte(key, '{')
	if s < 0 {
		return ""
	}
	e := strings.IndexByte(key[s+1:], '}')
	if e <= 0 {
		return ""
	}
	return key[s+1 : s+1+e]
}
