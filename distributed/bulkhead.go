package distributed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

var _ bulwark.Bulkhead = (*Bulkhead)(nil)

// patternBulkhead is the Pattern of a bulkhead's events.
const patternBulkhead = "bulkhead"

// bulkheadReleaseTimeout bounds a release's round trip when the store has
// no timeout of its own (the store's timeout applies when it is shorter).
const bulkheadReleaseTimeout = 2 * time.Second

// Errors of [Bulkhead.Acquire]; all match bulwark.ErrBulkheadFull.
var (
	errBulkheadNoWait    = fmt.Errorf("%w: every slot is taken fleet-wide and the bulkhead does not wait", bulwark.ErrBulkheadFull)
	errBulkheadQueueFull = fmt.Errorf("%w: every slot is taken and this replica's waiting queue is full", bulwark.ErrBulkheadFull)
	errBulkheadTimeout   = fmt.Errorf("%w: no slot came within the max wait", bulwark.ErrBulkheadFull)
	errBulkheadDegraded  = fmt.Errorf("%w: the store is degraded and the failure policy is fail_closed", bulwark.ErrBulkheadFull)
)

// errMaxWait is the cause of the context that bounds a wait by MaxWait; it
// tells the bulkhead's own deadline apart from the caller's.
var errMaxWait = errors.New("bulwark: bulkhead max wait elapsed")

// BulkheadOption configures one [Bulkhead] of a store.
type BulkheadOption func(*bulkheadOptions)

type bulkheadOptions struct {
	policy    FailurePolicy
	hasPolicy bool
	onLost    func(error)
}

// WithBulkheadFailurePolicy sets the failure policy of one bulkhead,
// overriding the store's ([WithFailurePolicy]). See [Bulkhead] for what
// each policy does.
func WithBulkheadFailurePolicy(p FailurePolicy) BulkheadOption {
	return func(o *bulkheadOptions) { o.policy, o.hasPolicy = p, true }
}

// WithOnLeaseLost sets a function called once for every slot whose Redis
// lease is lost while its call still runs: renewal found the lease gone
// (Redis restarted empty, an operator freed it) or kept failing until the
// lease expired (a long outage), or the bulkhead was closed while the call
// held it. From then on the slot may be someone else's: the call should
// stop if exceeding the limit matters. err wraps semaphore.ErrLeaseLost and
// names the lease. f runs on the bulkhead's keepalive goroutine (or in
// Close), never under a lock; keep it short. An EventLeaseLost is emitted
// too.
func WithOnLeaseLost(f func(err error)) BulkheadOption {
	return func(o *bulkheadOptions) { o.onLost = f }
}

// Bulkhead caps how many calls run at once across every replica that uses
// the same store prefix and name: the fleet-wide twin of local.Bulkhead,
// with the same bulwark.BulkheadConfig. It implements bulwark.Bulkhead.
//
// # Model
//
// The bulkhead is a sync/semaphore Weighted of MaxConcurrent slots, each
// call taking one slot as one lease. Leases live in a Redis sorted set
// scored by their expiry; a lease expires LeaseTTL after it was granted or
// last renewed (0 means bulwark.DefaultLeaseTTL), and the bulkhead renews
// the leases its calls hold every LeaseTTL/3 (keepalive), so a long call
// keeps its slot while the slots of a crashed replica come back within one
// LeaseTTL. Acquire and release are one script each; a release publishes a
// wake-up that the waiting replicas receive over one subscription each, so
// waiters are woken by releases, not by polling (they also re-check at the
// earliest lease expiry and every second, which covers lost messages).
// Waiters are served in arrival order across the fleet. The keys are those
// of the semaphore called name under the prefix "<store prefix>:", so
// semaphore.New(client, name, MaxConcurrent, semaphore.WithPrefix(prefix+":"))
// shares the same slots, and `bulwark inspect` lists the bulkhead with the
// semaphores.
//
// Every Redis call of the bulkhead (acquire, release, renewal, inspection)
// goes through the store's single call path, so it counts towards the
// store's health and is bounded by the store's timeout.
//
// # Waiting
//
// MaxWait bounds how long Acquire waits for a slot (0: not at all; the
// caller is rejected at once when no slot is free). When it passes, Acquire
// returns an error matching bulwark.ErrBulkheadFull; it does not match
// context.DeadlineExceeded, so callers can tell the bulkhead's limit from
// their own deadline, whose error (ctx.Err()) Acquire returns unchanged.
//
// MaxWaiting caps the callers waiting at once in this replica, not across
// the fleet: a fleet-wide count would cost an extra round trip on every
// contended Acquire and could still only be checked, not reserved, before
// queueing. With n replicas up to n×MaxWaiting callers wait in total. A
// caller arriving while this replica's queue is full still gets a slot
// when one is free at once (one non-waiting try), and is rejected
// otherwise. The semaphore's fleet-wide queue length is available from
// [Bulkhead.Waiting].
//
// # When Redis cannot answer
//
// While the store is degraded (see [Store.Healthy]), and for a call whose
// Redis round trip failed, Acquire answers without Redis, by the
// bulkhead's [FailurePolicy], and never returns the Redis error:
//
//   - FailLocal (default): a local.Bulkhead twin with this replica's fair
//     share of the slots, ceil(MaxConcurrent / live replicas) and at least
//     1 (see [WithReplicas] and [WithReplicaCounter]), with the same
//     MaxWait and MaxWaiting. A twin is built when the store changes state
//     and starts with as many slots taken as this replica's calls hold
//     Redis leases (up to the share), which it frees as those calls end, so
//     calls admitted before the outage count against the share. A caller
//     whose Redis wait failed part-way continues in the twin for the rest
//     of its MaxWait (at least a millisecond).
//   - FailOpen: every call is admitted and nothing is counted.
//   - FailClosed: every call is rejected with an error matching
//     bulwark.ErrBulkheadFull.
//
// Every slot goes back where it came from: release frees a Redis lease, or
// a twin's slot, whatever the store's health is by then. A release that
// cannot reach Redis leaves the lease to expire within LeaseTTL (it is no
// longer renewed). Slots held in Redis when the outage began keep their
// leases until renewal fails past their expiry (see [WithOnLeaseLost]), and
// calls admitted by a twin are not known to Redis after recovery: for as
// long as those calls run, the fleet may run more calls than MaxConcurrent.
//
// A caller that gives up (ctx done, MaxWait passed) withdraws its queue
// entry in the background. A round trip in flight when it gives up is
// finished first (within the store's timeout), so a slot granted at that
// moment is given back, not left behind. Only a call cut short by the
// store's timeout (Redis too slow) can still be granted after its caller
// gave up; that slot stays taken until its lease expires, within LeaseTTL,
// since nobody renews it. With a client that ignores context deadlines the
// store stops waiting at its timeout without stopping the call (see
// [Store]); build the client with [ClientOptions].
//
// # Events
//
// With the store's observer: EventBulkheadAcquired (Duration: time
// waited), EventBulkheadRejected (Duration: time waited, Err: why) and
// EventBulkheadReleased (Duration: time held, Err: a release Redis did not
// confirm), exactly one release event per acquire event, and
// EventLeaseLost; all with Pattern "bulkhead", the bulkhead's name, Limit
// MaxConcurrent (or the twin's share) and Degraded when answered without
// Redis.
//
// A caller that finds no free slot and waits reports EventBulkheadQueued
// when it starts waiting and exactly one EventBulkheadDequeued when it
// stops (Allowed: it got a slot; else Err says why; Duration: time since
// Acquire began), so an observer can count the callers waiting in this
// replica; callers served or rejected at once report neither. A wait in
// Redis and a wait in the twin (Degraded) each report their own pair. To
// tell the two apart, an observed bulkhead first tries for a free slot
// without queueing, which costs one more round trip when every slot is
// taken; without an observer it queues at once.
//
// A Bulkhead is safe for concurrent use. It starts goroutines only when
// used (keepalive while leases are held, the wake-up subscription once a
// call waited); Close, or the store's Close, stops them. Build one with
// [Store.Bulkhead].
type Bulkhead struct {
	s      *Store
	name   string
	cfg    bulwark.BulkheadConfig // LeaseTTL defaulted
	policy FailurePolicy
	sem    *semaphore.Weighted
	onLost func(error)

	waiting atomic.Int64 // callers of this replica inside a Redis wait
	held    atomic.Int64 // Redis leases held by calls of this replica
	closed  atomic.Bool

	twinMu sync.Mutex // serialises building twins and their carried slots
	twin   atomic.Pointer[bulkheadTwin]
	// retired are earlier twins whose slots are still held by running
	// calls; guarded by twinMu.
	retired []*bulkheadTwin
}

// bulkheadTwin is the local bulkhead that answers while Redis cannot, for
// one state of the store (built anew whenever the store switches).
type bulkheadTwin struct {
	switches uint64 // the store's switch count when built
	share    int
	bh       *local.Bulkhead
	// carried are slots taken on behalf of calls holding Redis leases
	// when the twin was built; guarded by Bulkhead.twinMu. ncarried
	// mirrors len(carried) for a lock-free check.
	carried  []local.BulkheadSlot
	ncarried atomic.Int64
	// out counts the slots of this twin held by calls now.
	out atomic.Int64
}

// Bulkhead returns the fleet-wide bulkhead called name, shaped by c (see
// [Bulkhead]). Bulkheads of one store prefix with the same name share their
// slots across processes; they should agree on c.MaxConcurrent (each call
// checks against its own). The name may be any non-empty string (it is
// encoded into the keys) and appears in events, so keep names few and
// fixed.
//
// Bulkhead does no I/O. It returns an error wrapping bulwark.ErrInvalidConfig
// when c is invalid (see bulwark.BulkheadConfig.Validate), the name is
// empty, c.MaxConcurrent exceeds semaphore.MaxCapacity, c.LeaseTTL exceeds
// semaphore.MaxLeaseTTL, an option is invalid, or the store's client cannot
// subscribe (wake-ups use pub/sub: *redis.Client, *redis.ClusterClient,
// *redis.Ring and redis.UniversalClient can); and ErrClosed after the
// store's Close.
func (s *Store) Bulkhead(name string, c bulwark.BulkheadConfig, opts ...BulkheadOption) (*Bulkhead, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, core.ConfigError("bulkhead name must not be empty")
	}
	o := bulkheadOptions{policy: s.policy}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.hasPolicy && !o.policy.valid() {
		return nil, core.ConfigError("unknown failure policy %d", o.policy)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = bulwark.DefaultLeaseTTL
	}
	sc := s.semaphoreClient()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	b := &Bulkhead{s: s, name: name, cfg: c, policy: o.policy, onLost: o.onLost}
	sem, err := semaphore.New(sc, name, int64(c.MaxConcurrent),
		semaphore.WithPrefix(s.prefix+":"),
		semaphore.WithLeaseTTL(c.LeaseTTL),
		semaphore.WithRunner(b.runScript),
		semaphore.WithOnLeaseLost(b.leaseLost),
	)
	if err != nil {
		return nil, err
	}
	b.sem = sem
	if err := s.bulkheads.add(s, b); err != nil {
		_ = sem.Close()
		return nil, err
	}
	return b, nil
}

// runScript is the semaphore's runner: the store's call path, with the
// caller's cancellation and deadline removed and the store's timeout (or
// bulkheadReleaseTimeout) bounding the call instead. A script that was sent
// is thus always waited for, so its outcome is known: a lease granted as the
// caller gave up is given back by Acquire, and an abandoned wait is
// withdrawn only after its last acquire ran. Cutting a call short would let
// the withdrawal overtake it in Redis and the late grant hold a slot until
// its lease expired.
func (b *Bulkhead) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	ctx = context.WithoutCancel(ctx)
	if b.s.timeout <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bulkheadReleaseTimeout)
		defer cancel()
	}
	return b.s.run(ctx, script, keys, args...)
}

// semaphoreClient returns the store's client as a semaphore client: its
// Subscribe carries the wake-ups, and its scripts go through the store's
// call path (semaphore.WithRunner), so the Scripter methods are only
// forwarded to Process for completeness.
func (s *Store) semaphoreClient() semaphore.Client { return processScripter{s.client} }

// processScripter is a [Client] seen as a semaphore.Client: the Scripter
// methods send their commands through Process.
type processScripter struct{ Client }

func (p processScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.eval(ctx, "eval", script, keys, args)
}

func (p processScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.eval(ctx, "evalsha", sha1, keys, args)
}

func (p processScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.eval(ctx, "eval_ro", script, keys, args)
}

func (p processScripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.eval(ctx, "evalsha_ro", sha1, keys, args)
}

func (p processScripter) eval(ctx context.Context, name, script string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, name, script, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	_ = p.Process(ctx, cmd)
	return cmd
}

func (p processScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	args := make([]any, 0, 2+len(hashes))
	args = append(args, "script", "exists")
	for _, h := range hashes {
		args = append(args, h)
	}
	cmd := redis.NewBoolSliceCmd(ctx, args...)
	_ = p.Process(ctx, cmd)
	return cmd
}

func (p processScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	cmd := redis.NewStringCmd(ctx, "script", "load", script)
	_ = p.Process(ctx, cmd)
	return cmd
}

// Name returns the bulkhead's name.
func (b *Bulkhead) Name() string { return b.name }

// Config returns the bulkhead's configuration, with LeaseTTL set to the
// TTL in use.
func (b *Bulkhead) Config() bulwark.BulkheadConfig { return b.cfg }

// Acquire takes a slot, waiting up to MaxWait (and no longer than ctx
// allows) for one to come free anywhere in the fleet, and returns the
// function that gives it back. Call release exactly once when the call is
// over; later calls do nothing. release makes one Redis round trip (within
// the store's timeout) when the slot came from Redis, none when it came
// from the twin.
//
// Errors: ctx's error when ctx is done before a slot came (also when it is
// done on entry); an error matching bulwark.ErrBulkheadFull when no slot
// came within MaxWait, this replica's waiting queue was full, or the store
// is degraded under FailClosed; ErrClosed after Close or the store's
// Close. A failed Redis call is never returned: see [Bulkhead] for how the
// call is then answered.
func (b *Bulkhead) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		b.emit(bulwark.EventBulkheadRejected, !b.s.Healthy(), b.cfg.MaxConcurrent, b.s.eventTime(), 0, err)
		return nil, err
	}
	if b.closed.Load() || b.s.closed.Load() {
		return nil, ErrClosed
	}
	start := b.s.eventTime()
	if b.s.Healthy() {
		lease, err := b.acquireRedis(ctx, start)
		switch {
		case err == nil && ctx.Err() != nil:
			// Granted as the caller gave up: give it back.
			rctx, cancel := context.WithTimeout(context.Background(), bulkheadReleaseTimeout)
			_ = lease.Release(rctx)
			cancel()
			err = ctx.Err()
			b.emitSince(bulwark.EventBulkheadRejected, false, b.cfg.MaxConcurrent, start, err)
			return nil, err
		case err == nil:
			return b.grantRedis(lease, start), nil
		case errors.Is(err, bulwark.ErrBulkheadFull):
			b.emitSince(bulwark.EventBulkheadRejected, false, b.cfg.MaxConcurrent, start, err)
			return nil, err
		case ctx.Err() != nil:
			err = ctx.Err()
			b.emitSince(bulwark.EventBulkheadRejected, false, b.cfg.MaxConcurrent, start, err)
			return nil, err
		case errors.Is(err, semaphore.ErrClosed):
			return nil, ErrClosed
		}
		// Redis failed (the store recorded it): answer without Redis.
	}
	return b.acquireDegraded(ctx, start)
}

// acquireRedis takes one slot of the semaphore as the configuration says.
// start is when Acquire began.
func (b *Bulkhead) acquireRedis(ctx context.Context, start time.Time) (*semaphore.Lease, error) {
	if b.cfg.MaxWait <= 0 {
		return b.tryRedis(ctx, errBulkheadNoWait)
	}
	if limit := b.cfg.MaxWaiting; limit > 0 {
		if b.waiting.Add(1) > int64(limit) {
			b.waiting.Add(-1)
			return b.tryRedis(ctx, errBulkheadQueueFull)
		}
		defer b.waiting.Add(-1)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, b.cfg.MaxWait, errMaxWait)
	defer cancel()
	if b.s.observer == nil {
		return b.waitRedis(ctx, wctx)
	}
	// Observed: try without queueing first, so that only callers that find
	// no free slot report a wait (one more round trip, on contention only).
	lease, ok, err := b.sem.TryAcquire(wctx, 1)
	switch {
	case err != nil:
		return nil, waitErr(ctx, wctx, err)
	case ok:
		return lease, nil
	}
	b.emit(bulwark.EventBulkheadQueued, false, b.cfg.MaxConcurrent, b.s.eventTime(), 0, nil)
	lease, err = b.waitRedis(ctx, wctx)
	b.emitDequeued(lease, start, err)
	return lease, err
}

// waitRedis waits in the semaphore's queue for a slot, until wctx (ctx
// bounded by MaxWait) is done.
func (b *Bulkhead) waitRedis(ctx, wctx context.Context) (*semaphore.Lease, error) {
	lease, err := b.sem.Acquire(wctx, 1)
	if err != nil {
		return nil, waitErr(ctx, wctx, err)
	}
	return lease, nil
}

// waitErr turns the end of wctx's MaxWait into errBulkheadTimeout.
func waitErr(ctx, wctx context.Context, err error) error {
	if ctx.Err() == nil && context.Cause(wctx) == errMaxWait {
		return errBulkheadTimeout
	}
	return err
}

// emitDequeued reports the end of a Redis wait that began at start (lease
// nil when it got no slot). Should the observer panic, the lease is given
// back: the caller never sees it.
func (b *Bulkhead) emitDequeued(lease *semaphore.Lease, start time.Time, err error) {
	finished := false
	defer func() {
		if !finished && lease != nil {
			rctx, cancel := context.WithTimeout(context.Background(), bulkheadReleaseTimeout)
			_ = lease.Release(rctx)
			cancel()
		}
	}()
	now := b.s.eventTime()
	core.Emit(b.s.observer, bulwark.Event{
		Kind:     bulwark.EventBulkheadDequeued,
		Pattern:  patternBulkhead,
		Name:     b.name,
		Time:     now,
		Allowed:  lease != nil,
		Limit:    b.cfg.MaxConcurrent,
		Duration: now.Sub(start),
		Err:      err,
	})
	finished = true
}

// tryRedis takes a slot if one is free now, else returns full.
func (b *Bulkhead) tryRedis(ctx context.Context, full error) (*semaphore.Lease, error) {
	lease, ok, err := b.sem.TryAcquire(ctx, 1)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, full
	}
	return lease, nil
}

// acquireDegraded answers by the failure policy. start is when Acquire
// began: a caller that already waited for Redis waits only the rest of
// MaxWait.
func (b *Bulkhead) acquireDegraded(ctx context.Context, start time.Time) (func(), error) {
	switch b.policy {
	case FailOpen:
		return b.grantLocal(nil, local.BulkheadSlot{}, b.cfg.MaxConcurrent, start), nil
	case FailClosed:
		b.emitSince(bulwark.EventBulkheadRejected, true, b.cfg.MaxConcurrent, start, errBulkheadDegraded)
		return nil, errBulkheadDegraded
	}
	t, err := b.twinState()
	if err != nil {
		return nil, err
	}
	wctx := ctx
	if b.cfg.MaxWait > 0 {
		if spent := b.s.eventTime().Sub(start); spent > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeoutCause(ctx, max(b.cfg.MaxWait-spent, time.Millisecond), errMaxWait)
			defer cancel()
		}
	}
	slot, err := t.bh.AcquireSlot(wctx)
	if err != nil {
		if wctx != ctx && ctx.Err() == nil && context.Cause(wctx) == errMaxWait {
			err = errBulkheadTimeout
		}
		b.emitSince(bulwark.EventBulkheadRejected, true, t.share, start, err)
		return nil, err
	}
	return b.grantLocal(t, slot, t.share, start), nil
}

// twinState returns the twin for the store's current state, building it
// when the store switched since the last one was built.
func (b *Bulkhead) twinState() (*bulkheadTwin, error) {
	sw := b.s.health.switches.Load()
	if t := b.twin.Load(); t != nil && t.switches == sw {
		return t, nil
	}
	b.twinMu.Lock()
	defer b.twinMu.Unlock()
	if t := b.twin.Load(); t != nil && t.switches == sw {
		return t, nil
	}
	// The fair share, rounded as the limiters' shares are.
	share := shareLimit(bulwark.Limit{Events: b.cfg.MaxConcurrent, Period: time.Second}, b.s.replicaCount()).Events
	var opts []local.Option
	if b.s.clock != nil {
		opts = append(opts, local.WithClock(b.s.clock))
	}
	if b.s.observer != nil {
		opts = append(opts, local.WithObserver(twinWaitObserver{b}))
	}
	bh, err := local.NewBulkhead(bulwark.BulkheadConfig{
		MaxConcurrent: share,
		MaxWait:       b.cfg.MaxWait,
		MaxWaiting:    b.cfg.MaxWaiting,
	}, opts...)
	if err != nil {
		return nil, err
	}
	t := &bulkheadTwin{switches: sw, share: share, bh: bh}
	if old := b.twin.Load(); old != nil {
		b.retired = append(b.retired, old)
	}
	// Calls holding Redis leases, or slots of earlier twins, run on: count
	// them against the share, so that a replica never runs more than its
	// share on a fresh twin.
	for n := min(b.externalHeld(), int64(share)); n > 0; n-- {
		slot, err := bh.AcquireSlot(context.Background()) // free: nobody else has seen bh
		if err != nil {
			break
		}
		t.carried = append(t.carried, slot)
	}
	t.ncarried.Store(int64(len(t.carried)))
	b.twin.Store(t)
	return t, nil
}

// externalHeld counts the slots this replica's calls hold outside the
// current twin: Redis leases and slots of retired twins. It drops retired
// twins none of whose slots is held any more. Requires b.twinMu held.
func (b *Bulkhead) externalHeld() int64 {
	n := max(b.held.Load(), 0)
	kept := b.retired[:0]
	for _, t := range b.retired {
		if o := t.out.Load(); o > 0 {
			n += o
			kept = append(kept, t)
		}
	}
	clear(b.retired[len(kept):])
	b.retired = kept
	return n
}

// settleCarried frees carried twin slots beyond the slots still held by
// this replica's calls outside the current twin (see externalHeld).
func (b *Bulkhead) settleCarried() {
	t := b.twin.Load()
	if t == nil || t.ncarried.Load() == 0 {
		return
	}
	b.twinMu.Lock()
	defer b.twinMu.Unlock()
	for held := b.externalHeld(); int64(len(t.carried)) > held; {
		n := len(t.carried) - 1
		t.carried[n].Release() // the twin's observer drops releases: no user code runs here
		t.carried = t.carried[:n]
	}
	t.ncarried.Store(int64(len(t.carried)))
}

// twinWaitObserver passes a twin's wait events (EventBulkheadQueued,
// EventBulkheadDequeued) on to the store's observer as the bulkhead's own,
// flagged Degraded, and drops the rest: the bulkhead reports its twin's
// grants, rejections and releases itself.
type twinWaitObserver struct{ b *Bulkhead }

func (o twinWaitObserver) Observe(e bulwark.Event) {
	if e.Kind != bulwark.EventBulkheadQueued && e.Kind != bulwark.EventBulkheadDequeued {
		return
	}
	e.Pattern, e.Name, e.Degraded = patternBulkhead, o.b.name, true
	o.b.s.observer.Observe(e)
}

// grantRedis returns the release of a Redis lease, after reporting it.
func (b *Bulkhead) grantRedis(lease *semaphore.Lease, start time.Time) func() {
	b.held.Add(1)
	now := b.s.eventTime()
	g := &redisGrant{b: b, lease: lease, at: now}
	b.emitGranted(g.release, false, b.cfg.MaxConcurrent, now, now.Sub(start))
	return g.release
}

// grantLocal returns the release of twin t's slot (or of nothing, for
// FailOpen, when t is nil), after reporting it.
func (b *Bulkhead) grantLocal(t *bulkheadTwin, slot local.BulkheadSlot, limit int, start time.Time) func() {
	now := b.s.eventTime()
	g := &localGrant{b: b, twin: t, slot: slot, limit: limit, at: now}
	if t != nil {
		t.out.Add(1)
	}
	b.emitGranted(g.release, true, limit, now, now.Sub(start))
	return g.release
}

// emitGranted emits EventBulkheadAcquired. Should the observer panic, the
// slot is given back: the caller never sees it.
func (b *Bulkhead) emitGranted(release func(), degraded bool, limit int, now time.Time, waited time.Duration) {
	if b.s.observer == nil {
		return
	}
	finished := false
	defer func() {
		if !finished {
			release()
		}
	}()
	b.emit(bulwark.EventBulkheadAcquired, degraded, limit, now, waited, nil)
	finished = true
}

// redisGrant is one slot held as a Redis lease.
type redisGrant struct {
	b     *Bulkhead
	lease *semaphore.Lease
	at    time.Time
	done  atomic.Bool
}

// release frees the lease once. A release Redis did not confirm leaves
// the lease to expire (it is no longer renewed); the event carries why.
func (g *redisGrant) release() {
	if g.done.Swap(true) {
		return
	}
	b := g.b
	ctx, cancel := context.WithTimeout(context.Background(), bulkheadReleaseTimeout)
	err := g.lease.Release(ctx)
	cancel()
	b.held.Add(-1)
	b.settleCarried()
	if b.s.observer != nil {
		now := b.s.eventTime()
		b.emit(bulwark.EventBulkheadReleased, false, b.cfg.MaxConcurrent, now, now.Sub(g.at), err)
	}
}

// localGrant is one slot of a twin, or none (FailOpen).
type localGrant struct {
	b     *Bulkhead
	twin  *bulkheadTwin // nil for FailOpen
	slot  local.BulkheadSlot
	limit int
	at    time.Time
	done  atomic.Bool
}

func (g *localGrant) release() {
	if g.done.Swap(true) {
		return
	}
	g.slot.Release()
	if t := g.twin; t != nil {
		t.out.Add(-1)
		if t != g.b.twin.Load() {
			g.b.settleCarried() // a retired twin's slot counted against the current one
		}
	}
	if b := g.b; b.s.observer != nil {
		now := b.s.eventTime()
		b.emit(bulwark.EventBulkheadReleased, true, g.limit, now, now.Sub(g.at), nil)
	}
}

// leaseLost hears the semaphore losing a held lease.
func (b *Bulkhead) leaseLost(_ *semaphore.Lease, err error) {
	b.emit(bulwark.EventLeaseLost, !b.s.Healthy(), b.cfg.MaxConcurrent, b.s.eventTime(), 0, err)
	if b.onLost != nil {
		b.s.guard.Call("lease-lost callback", func() { b.onLost(err) })
	}
}

func (b *Bulkhead) emitSince(kind bulwark.EventKind, degraded bool, limit int, start time.Time, err error) {
	if b.s.observer == nil {
		return
	}
	now := b.s.eventTime()
	b.emit(kind, degraded, limit, now, now.Sub(start), err)
}

func (b *Bulkhead) emit(kind bulwark.EventKind, degraded bool, limit int, now time.Time, d time.Duration, err error) {
	if b.s.observer == nil {
		return
	}
	core.Emit(b.s.observer, bulwark.Event{
		Kind:     kind,
		Pattern:  patternBulkhead,
		Name:     b.name,
		Time:     now,
		Degraded: degraded,
		Limit:    limit,
		Duration: d,
		Err:      err,
	})
}

// Holders lists the bulkhead's live leases across the fleet (one per call
// holding a slot), earliest expiry first, by the Redis clock. One round
// trip; it writes nothing, and returns the store's error when Redis cannot
// answer (the store being degraded included).
func (b *Bulkhead) Holders(ctx context.Context) ([]semaphore.LeaseInfo, error) {
	return b.sem.Holders(ctx)
}

// Waiting returns how many Acquire calls wait in Redis now, across the
// fleet. One round trip; errors as for Holders.
func (b *Bulkhead) Waiting(ctx context.Context) (int64, error) {
	return b.sem.Waiting(ctx)
}

// Degraded reports whether Acquire answers without Redis now (the store is
// degraded).
func (b *Bulkhead) Degraded() bool { return !b.s.Healthy() }

// Close stops the bulkhead: Acquire then returns ErrClosed, and calls
// waiting in Redis return ErrClosed. Slots still held keep working: their
// release frees them (in Redis, or in the twin), but their leases are no
// longer renewed, so each is reported lost at once (EventLeaseLost and the
// WithOnLeaseLost callback) and expires within LeaseTTL unless released
// first. Close waits for the bulkhead's goroutines. The store's Close
// closes its bulkheads. Idempotent; returns nil.
func (b *Bulkhead) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.s.bulkheads.remove(b)
	return b.sem.Close()
}

// BulkheadHolders lists the live leases of the bulkhead called name across
// the fleet, earliest expiry first, by the Redis clock: what an inspection
// tool shows. It needs no Bulkhead of that name in this process (the
// capacity is not stored in Redis: each replica sends its own with every
// call). One round trip through the store's call path; it writes nothing
// and returns the store's error when Redis cannot answer.
func (s *Store) BulkheadHolders(ctx context.Context, name string) ([]semaphore.LeaseInfo, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if name == "" {
		return nil, core.ArgumentError("bulkhead name must not be empty")
	}
	sc := s.semaphoreClient()
	sem, err := semaphore.New(sc, name, 1, semaphore.WithPrefix(s.prefix+":"), semaphore.WithRunner(s.run))
	if err != nil {
		return nil, err
	}
	defer sem.Close()
	return sem.Holders(ctx)
}

// bulkheadSet is what a store keeps of its bulkheads, so that its Close
// closes them.
type bulkheadSet struct {
	mu     sync.Mutex
	closed bool
	all    map[*Bulkhead]struct{}
}

func (bs *bulkheadSet) add(s *Store, b *Bulkhead) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.closed || s.closed.Load() {
		return ErrClosed
	}
	if bs.all == nil {
		bs.all = make(map[*Bulkhead]struct{})
	}
	bs.all[b] = struct{}{}
	return nil
}

func (bs *bulkheadSet) remove(b *Bulkhead) {
	bs.mu.Lock()
	delete(bs.all, b)
	bs.mu.Unlock()
}

// close closes every bulkhead, outside the lock.
func (bs *bulkheadSet) close() {
	bs.mu.Lock()
	bs.closed = true
	all := make([]*Bulkhead, 0, len(bs.all))
	for b := range bs.all {
		all = append(all, b)
	}
	bs.mu.Unlock()
	for _, b := range all {
		_ = b.Close()
	}
}
