package semaphore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/eventq"
	"github.com/bulwark-go/bulwark/internal/logs"
	"github.com/redis/go-redis/v9"
)

// ErrLeaseLost is wrapped by every error saying a lease is not held any
// more: it expired, its slots were reclaimed, it was released already, its
// keys were deleted, or it could not be renewed before its expiry.
var ErrLeaseLost = errors.New("semaphore: lease lost")

// ErrClosed is returned by Acquire and TryAcquire on a closed [Weighted],
// and by an Acquire that was waiting when Close was called.
var ErrClosed = errors.New("semaphore: closed")

// Client is the part of a go-redis client the semaphore uses: scripts
// (EVALSHA, EVAL, SCRIPT LOAD/EXISTS) and a subscription for wake-ups.
// *redis.Client (including failover clients from redis.NewFailoverClient),
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient satisfy it.
// Wake-ups are published by the scripts themselves, so no Publish is needed.
type Client interface {
	redis.Scripter
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// cleanupTimeout bounds the background call that withdraws an abandoned
// Acquire (its queue entry, and a lease granted after the caller gave up).
const cleanupTimeout = 2 * time.Second

// Weighted is a weighted semaphore shared through Redis by every process
// that opens one with the same name (and prefix): at most capacity slots are
// held at once across all of them.
//
// Each acquisition is a [Lease]: a random 128-bit id holding n slots until
// it is released or expires. A lease expires LeaseTTL after it was granted
// or last renewed, by the Redis clock; while it is held the Weighted renews
// it in the background (keepalive), so a slow call keeps its slots and a
// crashed holder's slots come back within one LeaseTTL. A lease that cannot
// be renewed is lost: its [Lease.Lost] channel is closed, the
// WithOnLeaseLost callback runs and an EventLeaseLost is emitted, so the
// holder can stop work it no longer owns. Every lease also carries a
// fencing token (see [Lease.Token]).
//
// Acquire blocks until its slots are granted. A caller that could not get
// them joins a queue in Redis; the scripts grant slots only when every
// earlier waiter still fits, so waiters are served roughly in arrival order
// (exactly, as long as every waiter keeps its entry fresh). Releases, and
// acquisitions that reclaim expired leases, publish on a per-semaphore
// channel; one subscription per Weighted wakes its blocked callers, who then
// try again. A caller also re-checks at the earliest lease expiry (a holder
// that died never publishes) and every poll interval (a wake-up lost while
// the subscription reconnected), never more often.
//
// Every step is one Lua script on Redis, using Redis TIME, so clients with
// skewed clocks agree. Acquire is idempotent by lease id: when a reply is
// lost and go-redis retries the script, the retry returns the lease the
// first run granted instead of granting a second one.
//
// Consistency bounds: Redis replication is asynchronous, so a failover can
// lose recent grants, renewals and fencing tokens (two holders, or a token
// issued twice). Protect critical resources with the fencing token.
//
// A Weighted is safe for concurrent use. Close it when done: it stops the
// keepalive and the subscription.
type Weighted struct {
	client   Client
	capacity int64
	keys     keySet
	ttl      time.Duration
	keep     time.Duration // 0: keepalive off
	poll     time.Duration
	waitTTL  time.Duration
	onLost   func(*Lease, error)
	obs      bulwark.Observer
	guard    eventq.Guard // recovers the panics of obs and onLost
	log      *logs.Logger // nil: silent
	evName   string
	run      Runner
	clock    bulwark.Clock

	ctx    context.Context // cancelled by Close; parent of background calls
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	leases    map[*Lease]struct{} // held and renewed
	keeping   bool                // keepalive goroutine started
	listening bool                // subscription started
	sub       *redis.PubSub
	waiters   []*waiter // blocked Acquire calls of this Weighted, oldest first
	seq       uint64    // last waiter sequence number
}

// waiter is one blocked Acquire call in this process.
type waiter struct {
	seq      uint64
	ch       chan struct{} // capacity 1: a pending wake-up
	signaled bool          // a wake-up is pending in ch; guarded by w.mu
}

// New opens the semaphore called name with the given capacity (in slots).
// Every Weighted opened with the same name and prefix on the same Redis
// shares the slots; they must agree on the capacity (each call checks
// against its own). Names may hold any bytes: they are encoded into the key
// hash tag, so all keys of a semaphore stay in one Redis Cluster slot.
//
// New does no I/O. Errors wrap bulwark.ErrInvalidConfig: a nil client, an
// empty name, capacity outside [1, MaxCapacity], a prefix holding braces, a
// lease TTL outside [MinLeaseTTL, MaxLeaseTTL], a negative keepalive or one
// not below the lease TTL, a poll interval outside [1ms, MaxPollInterval].
func New(client Client, name string, capacity int64, opts ...Option) (*Weighted, error) {
	o := options{prefix: DefaultPrefix, ttl: bulwark.DefaultLeaseTTL, poll: DefaultPollInterval, clock: bulwark.SystemClock}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if !o.keepSet {
		o.keepAlive = o.ttl / 3
	}
	if !o.nameSet {
		o.name = name
	}
	if o.clock == nil {
		o.clock = bulwark.SystemClock
	}
	switch {
	case core.IsNil(client):
		return nil, core.ConfigError("semaphore client must not be nil, got %T(nil)", client)
	case core.IsNil(o.clock):
		return nil, core.ConfigError("semaphore clock is a nil %T", o.clock)
	case o.observer != nil && core.IsNil(o.observer):
		return nil, core.ConfigError("semaphore observer is a nil %T", o.observer)
	case name == "":
		return nil, core.ConfigError("semaphore name must not be empty")
	case capacity < 1 || capacity > MaxCapacity:
		return nil, core.ConfigError("semaphore capacity must be in [1, %d], got %d", int64(MaxCapacity), capacity)
	case strings.ContainsAny(o.prefix, "{}"):
		return nil, core.ConfigError("semaphore prefix must not contain braces, got %q", o.prefix)
	case o.ttl < MinLeaseTTL || o.ttl > MaxLeaseTTL:
		return nil, core.ConfigError("semaphore lease TTL must be in [%v, %v], got %v", MinLeaseTTL, MaxLeaseTTL, o.ttl)
	case o.keepAlive < 0 || o.keepAlive >= o.ttl:
		return nil, core.ConfigError("semaphore keepalive must be in [0, lease TTL %v), got %v", o.ttl, o.keepAlive)
	case o.keepSet && o.keepAlive > 0 && o.keepAlive < time.Millisecond:
		return nil, core.ConfigError("semaphore keepalive must be at least 1ms, got %v", o.keepAlive)
	case o.poll < time.Millisecond || o.poll > MaxPollInterval:
		return nil, core.ConfigError("semaphore poll interval must be in [1ms, %v], got %v", MaxPollInterval, o.poll)
	}
	w := &Weighted{
		client:   client,
		capacity: capacity,
		keys:     newKeySet(o.prefix, name),
		ttl:      o.ttl,
		keep:     o.keepAlive,
		poll:     o.poll,
		waitTTL:  max(3*o.poll, 500*time.Millisecond),
		onLost:   o.onLost,
		obs:      o.observer,
		evName:   o.name,
		run:      o.runner,
		clock:    o.clock,
		done:     make(chan struct{}),
		leases:   make(map[*Lease]struct{}),
	}
	w.log = logs.New(o.logger)
	w.guard.OnPanic = w.log.Panic
	w.obs = eventq.Safe(o.observer, &w.guard)
	if w.run == nil {
		w.run = func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
			return s.Run(ctx, client, keys, args...).Result()
		}
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// Capacity returns the number of slots the semaphore was opened with.
func (w *Weighted) Capacity() int64 { return w.capacity }

// checkN validates a weight.
func (w *Weighted) checkN(n int64) error {
	if n < 1 || n > w.capacity {
		return core.ArgumentError("semaphore weight must be in [1, %d], got %d", w.capacity, n)
	}
	return nil
}

// Acquire takes n slots, waiting until they are granted, ctx is done or the
// Weighted is closed. On success the lease is held (and renewed) until
// Release. Errors: one wrapping bulwark.ErrInvalidArgument when n is below 1
// or above the capacity (no call is made), ctx.Err(), ErrClosed, or the
// Redis error of a failed call. A wait that ends without a lease withdraws
// its queue entry in the background, and frees a lease granted after the
// caller gave up, so nothing stays taken.
func (w *Weighted) Acquire(ctx context.Context, n int64) (*Lease, error) {
	if err := w.checkN(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := w.clock.Now()
	id := newID()
	wt, err := w.enqueue()
	if err != nil {
		return nil, w.fail(start, err)
	}
	defer w.leave(wt)
	for {
		w.rearm(wt)
		sent := w.clock.Now()
		r, err := w.callAcquire(ctx, id, n, w.waitTTL)
		if err != nil {
			w.abandon(id, n)
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, w.fail(start, err)
		}
		if r.free > 0 {
			// Slots are left (for the next local waiter, or owed to a
			// waiter ahead): let the next local waiter look.
			w.wakeAfter(wt.seq)
		}
		if r.ok {
			return w.hold(id, n, r.token, start, sent)
		}
		w.listen()
		d := w.poll
		if r.wait > 0 && r.wait+time.Millisecond < d {
			d = r.wait + time.Millisecond
		}
		t := core.NewTimer(w.clock, d)
		select {
		case <-wt.ch:
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			w.abandon(id, n)
			return nil, w.fail(start, ctx.Err())
		case <-w.done:
			t.Stop()
			return nil, w.fail(start, ErrClosed)
		}
		t.Stop()
	}
}

// TryAcquire takes n slots if they are free now and no waiter is queued
// ahead, without waiting: (lease, true, nil) when granted, (nil, false, nil)
// when not. Errors as for Acquire.
func (w *Weighted) TryAcquire(ctx context.Context, n int64) (*Lease, bool, error) {
	if err := w.checkN(n); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if w.isClosed() {
		return nil, false, ErrClosed
	}
	start := w.clock.Now()
	id := newID()
	r, err := w.callAcquire(ctx, id, n, 0)
	if err != nil {
		w.abandon(id, n)
		return nil, false, w.fail(start, err)
	}
	if !r.ok {
		w.emit(bulwark.EventBulkheadRejected, 0, bulwark.ErrBulkheadFull)
		return nil, false, nil
	}
	l, err := w.hold(id, n, r.token, start, start)
	if err != nil {
		return nil, false, err
	}
	return l, true, nil
}

// hold registers a granted lease for keepalive.
func (w *Weighted) hold(id string, n int64, token uint64, start, sent time.Time) (*Lease, error) {
	l := &Lease{w: w, id: id, n: n, token: token, acquired: w.clock.Now(), lost: make(chan struct{}), deadline: sent.Add(w.ttl)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.abandon(id, n) // skipped once closed: the lease expires after its TTL
		return nil, w.fail(start, ErrClosed)
	}
	w.leases[l] = struct{}{}
	if !w.keeping {
		w.keeping = true
		w.wg.Add(1)
		go w.keepalive()
	}
	w.mu.Unlock()
	w.emit(bulwark.EventBulkheadAcquired, l.acquired.Sub(start), nil)
	return l, nil
}

// fail emits a rejection and returns err.
func (w *Weighted) fail(start time.Time, err error) error {
	w.emit(bulwark.EventBulkheadRejected, w.clock.Now().Sub(start), err)
	return err
}

// abandon withdraws the queue entry and any lease of id in the background.
// It does nothing once the Weighted is closed.
func (w *Weighted) abandon(id string, n int64) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		ctx, cancel := context.WithTimeout(w.ctx, cleanupTimeout)
		defer cancel()
		_, _ = w.callRelease(ctx, id, n)
	}()
}

func (w *Weighted) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// Local wake-ups. A wake-up message means "slots may have been freed": it
// goes to the oldest local waiter without one pending, who tries again. A
// waiter whose try left slots free passes a wake-up on to the next local
// waiter, and so on, so one release costs one try per process, not one per
// blocked caller, while a freed batch of slots still reaches as many
// waiters as it fits. Wake-ups never go backwards in the queue, so the
// passing ends.

// enqueue registers a blocked Acquire call.
func (w *Weighted) enqueue() (*waiter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	w.seq++
	wt := &waiter{seq: w.seq, ch: make(chan struct{}, 1)}
	w.waiters = append(w.waiters, wt)
	return wt, nil
}

// leave unregisters wt, passing on a wake-up it did not use.
func (w *Weighted) leave(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, o := range w.waiters {
		if o == wt {
			w.waiters = append(w.waiters[:i], w.waiters[i+1:]...)
			break
		}
	}
	if wt.signaled {
		w.wakeAfterLocked(wt.seq)
	}
}

// rearm consumes wt's pending wake-up before a try: a wake-up arriving
// during the try stays pending and causes another one.
func (w *Weighted) rearm(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-wt.ch:
	default:
	}
	wt.signaled = false
}

// wakeAfter wakes the oldest waiter queued after seq with no wake-up
// pending (0: the oldest of all).
func (w *Weighted) wakeAfter(seq uint64) {
	w.mu.Lock()
	w.wakeAfterLocked(seq)
	w.mu.Unlock()
}

func (w *Weighted) wakeAfterLocked(seq uint64) {
	for _, o := range w.waiters {
		if o.seq > seq && !o.signaled {
			o.signaled = true
			o.ch <- struct{}{}
			return
		}
	}
}

// wakeAll wakes every local waiter.
func (w *Weighted) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.waiters {
		if !o.signaled {
			o.signaled = true
			o.ch <- struct{}{}
		}
	}
}

// listen starts the wake-up subscription once.
func (w *Weighted) listen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.listening || w.closed {
		return
	}
	w.listening = true
	w.sub = w.client.Subscribe(w.ctx) // no channel yet: no I/O here
	w.wg.Add(1)
	go w.receive(w.sub)
}

// receive subscribes and turns every message into a wake-up of the oldest
// local waiter. A subscription confirmation wakes every local waiter: it
// comes again after each reconnect, when messages may have been missed. It
// returns when Close closes sub.
func (w *Weighted) receive(sub *redis.PubSub) {
	defer w.wg.Done()
	// A failure here is retried by the receive loop, which reconnects and
	// subscribes again to every channel recorded.
	_ = sub.Subscribe(w.ctx, w.keys.channel)
	for m := range sub.ChannelWithSubscriptions() {
		if _, ok := m.(*redis.Message); ok {
			w.wakeAfter(0)
		} else {
			w.wakeAll()
		}
	}
}

// keepalive renews held leases every keepalive interval (with keepalive
// off, it only notices expired leases, every third of the TTL).
func (w *Weighted) keepalive() {
	defer w.wg.Done()
	interval := w.keep
	if interval == 0 {
		interval = w.ttl / 3
	}
	var batch []*Lease
	for {
		t := core.NewTimer(w.clock, interval)
		select {
		case <-w.done:
			t.Stop()
			return
		case <-t.C():
		}
		batch = w.heldLeases(batch[:0])
		for i, l := range batch {
			if w.keep > 0 {
				w.renew(l, interval)
			} else {
				w.checkDeadline(l)
			}
			batch[i] = nil
		}
	}
}

// heldLeases appends the leases being renewed to dst.
func (w *Weighted) heldLeases(dst []*Lease) []*Lease {
	w.mu.Lock()
	defer w.mu.Unlock()
	for l := range w.leases {
		dst = append(dst, l)
	}
	return dst
}

// renew extends l once. A reply saying the lease is gone loses it; a failed
// call loses it only once its local deadline has passed.
func (w *Weighted) renew(l *Lease, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	sent := w.clock.Now()
	ok, err := w.callRenew(ctx, l.id)
	cancel()
	switch {
	case err == nil && ok:
		w.mu.Lock()
		if d := sent.Add(w.ttl); d.After(l.deadline) {
			l.deadline = d
		}
		w.mu.Unlock()
	case err == nil:
		w.lose(l, fmt.Errorf("%w: lease %s expired or was removed before renewal", ErrLeaseLost, l.id), true)
	case w.ctx.Err() != nil:
		// Closing: Close handles held leases.
	default:
		w.mu.Lock()
		late := !w.clock.Now().Before(l.deadline)
		w.mu.Unlock()
		if late {
			w.lose(l, fmt.Errorf("%w: lease %s could not be renewed before it expired: %w", ErrLeaseLost, l.id, err), true)
		}
	}
}

// checkDeadline loses l when its local deadline has passed (keepalive off).
func (w *Weighted) checkDeadline(l *Lease) {
	w.mu.Lock()
	late := !w.clock.Now().Before(l.deadline)
	w.mu.Unlock()
	if late {
		w.lose(l, fmt.Errorf("%w: lease %s expired (keepalive is off)", ErrLeaseLost, l.id), true)
	}
}

// lose marks l lost once, if it is still being renewed (and so was not
// released meanwhile): it stops renewing it, closes Lost and, outside the
// lock, runs the callback and emits EventLeaseLost.
func (w *Weighted) lose(l *Lease, err error, notify bool) {
	w.mu.Lock()
	if _, held := w.leases[l]; !held {
		w.mu.Unlock()
		return
	}
	delete(w.leases, l)
	l.markLostLocked(err)
	w.mu.Unlock()
	if notify {
		w.notifyLost(l, err)
	}
}

// CallbackPanics returns how many times the observer or the lease-lost
// callback panicked. Each panic is recovered (the keepalive goes on) and
// counted.
func (w *Weighted) CallbackPanics() uint64 { return w.guard.Panics() }

// notifyLost emits EventLeaseLost, then runs the callback.
func (w *Weighted) notifyLost(l *Lease, err error) {
	w.emit(bulwark.EventLeaseLost, w.clock.Now().Sub(l.acquired), err)
	if w.log != nil {
		w.log.Limited("lease-lost", logs.Every, slog.LevelWarn, "bulwark: lease lost",
			slog.String("semaphore", w.evName), slog.Any("err", err))
	}
	if w.onLost != nil {
		w.guard.Call("lease-lost callback", func() { w.onLost(l, err) })
	}
}

// emit sends an event to the observer.
func (w *Weighted) emit(kind bulwark.EventKind, d time.Duration, err error) {
	if w.obs == nil {
		return
	}
	core.Emit(w.obs, bulwark.Event{
		Kind:     kind,
		Pattern:  "semaphore",
		Name:     w.evName,
		Time:     w.clock.Now(),
		Limit:    int(min(w.capacity, int64(^uint(0)>>1))),
		Duration: d,
		Err:      err,
	})
}

// Close stops the keepalive and the wake-up subscription, and waits for
// every goroutine the Weighted started. Blocked Acquire calls return
// ErrClosed. Leases still held are not released: they stop being renewed
// and expire after their TTL unless released first (Release keeps working
// after Close). Since nothing renews them any more, each is reported lost at
// once (Lost closed, callback, EventLeaseLost), so holders stop in time.
// The client stays open: it belongs to the caller. Close is idempotent and
// returns nil.
func (w *Weighted) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.done)
	sub := w.sub
	w.mu.Unlock()
	w.cancel()
	if sub != nil {
		_ = sub.Close()
	}
	w.wg.Wait()
	held := w.heldLeases(nil)
	for _, l := range held {
		w.lose(l, fmt.Errorf("%w: semaphore closed, lease %s is no longer renewed", ErrLeaseLost, l.id), true)
	}
	return nil
}

// Holders lists the live leases (expiry not passed, by the Redis clock),
// earliest expiry first, at most 100000 of them. It writes nothing.
func (w *Weighted) Holders(ctx context.Context) ([]LeaseInfo, error) {
	r, err := w.callInspect(ctx)
	return r.holders, err
}

// Available returns how many slots are free now: the capacity minus the
// weights of the live leases. Slots promised to queued waiters count as
// free. It writes nothing.
func (w *Weighted) Available(ctx context.Context) (int64, error) {
	r, err := w.callInspect(ctx)
	if err != nil {
		return 0, err
	}
	free := w.capacity
	for _, h := range r.holders {
		free -= h.Weight
	}
	return max(free, 0), nil
}

// Waiting returns how many Acquire calls are queued (entries that have not
// expired), across all processes. It writes nothing.
func (w *Weighted) Waiting(ctx context.Context) (int64, error) {
	r, err := w.callInspect(ctx)
	return r.waiting, err
}

// ReleaseID frees the lease with the given id, whoever holds it: an
// operator's tool for a stuck holder. The holder finds out at its next
// renewal (its lease is lost). Errors: an id that is not 32 lowercase hex
// digits wraps bulwark.ErrInvalidArgument; an id with no live lease wraps
// ErrLeaseLost.
func (w *Weighted) ReleaseID(ctx context.Context, id string) error {
	if !validID(id) {
		return core.ArgumentError("semaphore lease id must be 32 lowercase hex digits, got %q", id)
	}
	r, err := w.callRelease(ctx, id, 0)
	if err != nil {
		return err
	}
	if !r.released {
		return fmt.Errorf("%w: no live lease %s", ErrLeaseLost, id)
	}
	return nil
}

// newID returns 128 random bits as 32 lowercase hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
