package singleflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/redis/go-redis/v9"
)

// Errors of a [Group]. They are matched with errors.Is.
var (
	// ErrClosed is returned by Do on a closed group, and by a Do that was
	// waiting when Close was called.
	ErrClosed = errors.New("singleflight: closed")
	// ErrLeaseLost is the cause (context.Cause) of the cancellation of a
	// leader's function when its lease could not be renewed: another
	// caller may be running the function by now.
	ErrLeaseLost = errors.New("singleflight: lease lost")
	// ErrPanicked is wrapped by the error of a run whose function panicked.
	ErrPanicked = errors.New("singleflight: function panicked")
	// ErrTooLarge is wrapped by the error other replicas get when the
	// leader's encoded result exceeded the group's size cap.
	ErrTooLarge = errors.New("singleflight: result too large to share")
	// ErrRemote is matched by every [RemoteError].
	ErrRemote = errors.New("singleflight: run failed on another replica")
)

// RemoteError is the error of a run made by another replica (or stored
// by an earlier run), as far as it travels through Redis: its message, and
// ErrPanicked or ErrTooLarge when it was one of those. It matches ErrRemote.
type RemoteError struct {
	Message string // the leader's err.Error(), cut to the size cap
	Token   uint64 // the fencing token of the run
	cause   error
}

// Error returns the leader's message.
func (e *RemoteError) Error() string { return "singleflight: remote run failed: " + e.Message }

// Unwrap returns ErrRemote and, when known, what the run ended by.
func (e *RemoteError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrRemote, e.cause}
	}
	return []error{ErrRemote}
}

// Client is the part of a go-redis client a group uses: scripts and a
// subscription for wake-ups (published by the scripts). *redis.Client,
// failover clients, *redis.ClusterClient, *redis.Ring and
// redis.UniversalClient satisfy it.
type Client interface {
	redis.Scripter
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Func is the function a group runs once for a key. token is the fencing
// token of the run (0 when Redis was unreachable and the run is local
// only): pass it to a store that rejects writes with a smaller one. ctx
// carries the values of the caller whose function runs, but not its
// cancellation (other callers wait for the run); it is cancelled when the
// group is closed or the lease is lost (context.Cause says ErrClosed or
// ErrLeaseLost).
type Func[T any] func(ctx context.Context, token uint64) (T, error)

// Result is what a [Group.Do] call received besides its error.
type Result[T any] struct {
	// Value is the run's value (the zero value on error).
	Value T
	// Leader is true when this replica ran the function for this call
	// (this caller's function or another local caller's).
	Leader bool
	// Remote is true when the value or error came through Redis: another
	// replica's run, or one stored within the result TTL.
	Remote bool
	// Degraded is true when Redis could not be used: the function ran once
	// for the concurrent callers of this replica only.
	Degraded bool
	// Token is the fencing token of the run (0 when Degraded).
	Token uint64
}

// Group runs a function once across every replica that opens a group of
// the same name (and prefix) on the same Redis, for the callers that ask
// for one key at the same time: the counterpart of
// golang.org/x/sync/singleflight.Group for a fleet. See the package doc.
//
// A Group is safe for concurrent use. Close it when done.
type Group[T any] struct {
	client  Client
	codec   Codec[T]
	name    string
	o       options
	channel string
	bc      *cluster.Broadcast
	run     Runner

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	flights map[string]*flight[T]

	observerPanics atomic.Uint64
}

// flight is the one goroutine of this process working on one key for its
// concurrent callers.
type flight[T any] struct {
	key     string
	keys    keySet
	done    chan struct{} // closed when res and err are set
	res     Result[T]
	err     error
	waiters int  // callers waiting; guarded by Group.mu
	leading bool // the function runs; guarded by Group.mu
	ctx     context.Context
	cancel  context.CancelFunc // stops the flight's waiting (not a running function)
	wake    chan struct{}      // capacity 1: a wake-up from pub/sub
}

// New opens the group called name. Groups of the same name, prefix and
// Redis share their runs; they must use compatible codecs. Names and keys
// may hold any bytes: they are encoded into the Redis Cluster hash tag.
// New starts the wake-up subscription (cluster.Broadcast on the channel
// "<prefix>sf:<name tag>:done") and does no other I/O. Errors wrap
// bulwark.ErrInvalidConfig: a nil client or codec, an empty name, or a bad
// option (see each option).
func New[T any](client Client, name string, codec Codec[T], opts ...Option) (*Group[T], error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("singleflight client must not be nil")
	}
	if core.IsNil(codec) {
		return nil, core.ConfigError("singleflight codec must not be nil")
	}
	if name == "" {
		return nil, core.ConfigError("singleflight name must not be empty")
	}
	o, err := buildOptions(name, opts)
	if err != nil {
		return nil, err
	}
	g := &Group[T]{client: client, codec: codec, name: name, o: o, run: o.runner,
		channel: channelName(o.prefix, name), flights: make(map[string]*flight[T])}
	if g.run == nil {
		g.run = func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
			return s.Run(ctx, client, keys, args...).Result()
		}
	}
	g.bc, err = cluster.NewBroadcast(client, g.channel)
	if err != nil {
		return nil, err
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g, nil
}

// Do runs fn for key once across the fleet for every caller asking for key
// at the same time, and returns its outcome to each of them: the first
// caller on this replica starts a flight; later callers of this replica
// join it; the flight either finds a result stored by a run that ended
// within the result TTL, or becomes the leader (it holds the key's lease
// and runs fn), or waits for the leader of another replica to finish
// (woken by pub/sub) and takes its stored outcome. A leader that dies is
// replaced when its lease expires: a waiting flight then leads.
//
// Do returns when the outcome is there or ctx is done (ctx.Err(); the
// other callers carry on, and a running fn is not cancelled). With Redis
// unreachable the flight runs fn for this replica's callers only
// (Result.Degraded). Errors: the run's error (a [RemoteError] when it ran
// elsewhere), one wrapping ErrPanicked when fn panicked, ctx.Err(),
// ErrClosed, and one wrapping bulwark.ErrInvalidArgument for a nil fn.
func (g *Group[T]) Do(ctx context.Context, key string, fn Func[T]) (Result[T], error) {
	if fn == nil {
		return Result[T]{}, core.ArgumentError("singleflight function must not be nil")
	}
	if err := ctx.Err(); err != nil {
		return Result[T]{}, err
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return Result[T]{}, ErrClosed
	}
	f := g.flights[key]
	if f == nil {
		f = &flight[T]{key: key, keys: newKeySet(g.o.prefix, g.name, key), done: make(chan struct{}),
			wake: make(chan struct{}, 1)}
		f.ctx, f.cancel = context.WithCancel(g.ctx)
		g.flights[key] = f
		g.wg.Add(1)
		go g.fly(f, context.WithoutCancel(ctx), fn)
	}
	f.waiters++
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-f.done: // finished meanwhile: the outcome is there
		return f.res, f.err
	default:
	}
	f.waiters--
	if f.waiters == 0 && !f.leading {
		// Nobody here waits any more: stop the flight, and let a new
		// caller start a fresh one.
		if g.flights[key] == f {
			delete(g.flights, key)
		}
		f.cancel()
	}
	return Result[T]{}, ctx.Err()
}

// fly works on one key until its outcome is known, then hands it to the
// flight's callers.
func (g *Group[T]) fly(f *flight[T], caller context.Context, fn Func[T]) {
	defer g.wg.Done()
	defer f.cancel()
	res, err := g.flyLoop(f, caller, fn)
	g.mu.Lock()
	if g.flights[f.key] == f {
		delete(g.flights, f.key)
	}
	f.res, f.err = res, err
	close(f.done)
	g.mu.Unlock()
}

// flyLoop claims the key until a result is stored or this flight leads.
func (g *Group[T]) flyLoop(f *flight[T], caller context.Context, fn Func[T]) (Result[T], error) {
	id := newID()
	// Listen before the first claim, so that a run ending right after the
	// claim's reply is not missed.
	remove, err := g.bc.Handle(f.keys.topic, func(cluster.Message) {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return Result[T]{}, err
	}
	defer remove()
	for {
		if err := f.ctx.Err(); err != nil {
			return Result[T]{}, g.stopErr(err)
		}
		select { // a wake-up from before this claim says nothing new
		case <-f.wake:
		default:
		}
		// The claim is not cut short when this replica's callers leave: a
		// lease granted meanwhile must be known, to be given back (lead).
		r, err := g.claim(g.ctx, f.keys, id)
		if err != nil {
			if f.ctx.Err() != nil {
				return Result[T]{}, g.stopErr(f.ctx.Err())
			}
			return g.runLocal(f, caller, fn, err)
		}
		switch r.kind {
		case claimStored:
			return g.decodeRecord(r.record)
		case claimLead:
			return g.lead(f, caller, fn, id, r.token)
		}
		d := g.o.poll
		if w := r.pttl + time.Millisecond; w < d {
			d = w
		}
		t := core.NewTimer(g.o.clock, d)
		select {
		case <-f.wake:
		case <-t.C():
		case <-f.ctx.Done():
		}
		t.Stop()
	}
}

func (g *Group[T]) stopErr(err error) error {
	if g.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}

// startLeading marks f as running its function, unless every caller left
// meanwhile.
func (g *Group[T]) startLeading(f *flight[T]) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f.ctx.Err() != nil {
		return false
	}
	f.leading = true
	return true
}

// fnContext is the context of a run: the caller's values, cancelled with
// cause ErrClosed when the group closes.
func (g *Group[T]) fnContext(caller context.Context) (context.Context, context.CancelCauseFunc, func() bool) {
	ctx, cancel := context.WithCancelCause(caller)
	stop := context.AfterFunc(g.ctx, func() { cancel(ErrClosed) })
	return ctx, cancel, stop
}

// lead runs fn under the key's lease and hands its outcome to Redis.
func (g *Group[T]) lead(f *flight[T], caller context.Context, fn Func[T], id string, token uint64) (Result[T], error) {
	lease := id + ":" + strconv.FormatUint(token, 10)
	if !g.startLeading(f) {
		_, _ = g.complete(f.keys, lease, "", g.o.errorTTL) // give the lease up: waiters elsewhere lead at once
		return Result[T]{}, g.stopErr(f.ctx.Err())
	}
	ctx, cancel, stop := g.fnContext(caller)
	defer stop()
	kaDone := make(chan struct{})
	kaExited := make(chan struct{})
	g.wg.Add(1)
	go g.keepalive(f.keys, lease, cancel, kaDone, kaExited)
	v, err := g.call(ctx, fn, token)
	close(kaDone)
	<-kaExited
	cause := context.Cause(ctx)
	cancel(nil)
	res := Result[T]{Value: v, Leader: true, Token: token}
	if err != nil {
		res.Value = *new(T)
	}
	if errors.Is(cause, ErrLeaseLost) {
		return res, err // a later leader owns the key: write nothing
	}
	record, ttl := "", g.o.errorTTL
	if !errors.Is(cause, ErrClosed) {
		record, ttl = g.record(v, err, token)
	}
	// A failed hand-over is not this caller's error: its outcome is here,
	// and the other replicas take over when the lease expires.
	_, _ = g.complete(f.keys, lease, record, ttl)
	return res, err
}

// runLocal runs fn for this replica's callers only, Redis being
// unreachable (cause).
func (g *Group[T]) runLocal(f *flight[T], caller context.Context, fn Func[T], cause error) (Result[T], error) {
	if !g.startLeading(f) {
		return Result[T]{}, g.stopErr(f.ctx.Err())
	}
	g.emit(bulwark.Event{Kind: bulwark.EventFallback, Err: cause})
	ctx, cancel, stop := g.fnContext(caller)
	defer stop()
	v, err := g.call(ctx, fn, 0)
	cancel(nil)
	if err != nil {
		v = *new(T)
	}
	return Result[T]{Value: v, Leader: true, Degraded: true}, err
}

// call runs fn, turning a panic into an error wrapping ErrPanicked.
func (g *Group[T]) call(ctx context.Context, fn Func[T], token uint64) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = *new(T), fmt.Errorf("%w: %v", ErrPanicked, r)
		}
	}()
	return fn(ctx, token)
}

// keepalive renews the lease every keepalive interval until done is
// closed, and cancels the run with ErrLeaseLost when the lease is gone or
// could not be renewed before it expired.
func (g *Group[T]) keepalive(keys keySet, lease string, cancel context.CancelCauseFunc, done <-chan struct{}, exited chan<- struct{}) {
	defer g.wg.Done()
	defer close(exited)
	deadline := g.o.clock.Now().Add(g.o.leaseTTL)
	for {
		t := core.NewTimer(g.o.clock, g.o.keepAlive)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C():
		}
		sent := g.o.clock.Now()
		ok, err := g.renew(keys, lease)
		switch {
		case err == nil && ok:
			deadline = sent.Add(g.o.leaseTTL)
			continue
		case err == nil:
			err = fmt.Errorf("%w: the lease expired or was taken over", ErrLeaseLost)
		case g.o.clock.Now().Before(deadline):
			continue // try again; the lease still holds
		default:
			err = fmt.Errorf("%w: renewal failed until the lease expired: %w", ErrLeaseLost, err)
		}
		cancel(ErrLeaseLost)
		g.emit(bulwark.Event{Kind: bulwark.EventLeaseLost, Err: err})
		return
	}
}

// record is what Redis keeps of a run's outcome, and for how long.
func (g *Group[T]) record(v T, err error, token uint64) (string, time.Duration) {
	head := strconv.FormatUint(token, 10) + ":"
	if err != nil {
		kind := "e"
		if errors.Is(err, ErrPanicked) {
			kind = "p"
		}
		msg := err.Error()
		if len(msg) > g.o.maxBytes {
			msg = msg[:g.o.maxBytes]
		}
		return kind + head + msg, g.o.errorTTL
	}
	b, eerr := g.codec.Encode(v)
	if eerr != nil {
		return "e" + head + "encoding the result: " + eerr.Error(), g.o.errorTTL
	}
	if len(b) > g.o.maxBytes {
		return "l" + head + strconv.Itoa(len(b)), g.o.errorTTL
	}
	return "v" + head + string(b), g.o.resultTTL
}

// decodeRecord turns a stored record into a result.
func (g *Group[T]) decodeRecord(rec string) (Result[T], error) {
	if len(rec) < 3 {
		return Result[T]{}, unexpected("claim", rec)
	}
	kind, rest := rec[0], rec[1:]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	token, err := strconv.ParseUint(rest[:i], 10, 64)
	if err != nil || i >= len(rest) || rest[i] != ':' {
		return Result[T]{}, unexpected("claim", rec)
	}
	body := rest[i+1:]
	res := Result[T]{Remote: true, Token: token}
	switch kind {
	case 'v':
		v, err := g.codec.Decode([]byte(body))
		if err != nil {
			return res, fmt.Errorf("singleflight: decoding the shared result: %w", err)
		}
		res.Value = v
		return res, nil
	case 'e':
		return res, &RemoteError{Message: body, Token: token}
	case 'p':
		return res, &RemoteError{Message: body, Token: token, cause: ErrPanicked}
	case 'l':
		return res, &RemoteError{Message: "result of " + body + " bytes exceeds the size cap", Token: token, cause: ErrTooLarge}
	}
	return Result[T]{}, unexpected("claim", rec)
}

// Forget drops the stored outcome of key across the fleet, so that the
// next call runs the function again instead of taking it (use it after
// changing the data behind key). A run in progress is not affected: its
// outcome is stored when it ends. It reports whether an outcome was stored;
// the error is Redis's.
func (g *Group[T]) Forget(ctx context.Context, key string) (bool, error) {
	return g.forget(ctx, newKeySet(g.o.prefix, g.name, key))
}

// emit sends e to the observer, recovering and counting its panics.
func (g *Group[T]) emit(e bulwark.Event) {
	if g.o.observer == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			g.observerPanics.Add(1)
		}
	}()
	e.Pattern, e.Name, e.Time = "singleflight", g.o.name, g.o.clock.Now()
	g.o.observer.Observe(e)
}

// ObserverPanics returns how many times the observer panicked (each was
// recovered; later events are still delivered).
func (g *Group[T]) ObserverPanics() uint64 { return g.observerPanics.Load() }

// Close stops the group: waiting Do calls return ErrClosed, running
// functions have their ctx cancelled (cause ErrClosed) and their leases are
// given up so other replicas take over at once; it waits for every
// goroutine the group started, so for running functions to return. The
// client stays open. Close is idempotent and returns nil.
func (g *Group[T]) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	return g.bc.Close()
}

// newID returns 128 random bits as 32 lowercase hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
