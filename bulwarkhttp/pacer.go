package bulwarkhttp

import (
	"context"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// PacerConfig is the shape of a [Pacer]'s queue.
type PacerConfig struct {
	// MaxWait is the longest a request is held back. A request that would
	// have to wait longer (the server's quota resets later than that) is
	// refused at once, without being sent. 0 means never wait: refuse at
	// once while the quota is spent, and send without waiting for the
	// first answer while nothing is known.
	MaxWait time.Duration
	// MaxQueue is how many requests may wait for one key at once; more
	// are refused at once. 0 means no cap beyond MaxWait.
	MaxQueue int
}

// DefaultPacerConfig holds requests up to 30s, at most 1000 per key.
func DefaultPacerConfig() PacerConfig { return PacerConfig{MaxWait: 30 * time.Second, MaxQueue: 1000} }

// Validate returns an error wrapping bulwark.ErrInvalidConfig when MaxWait
// or MaxQueue is negative.
func (c PacerConfig) Validate() error {
	switch {
	case c.MaxWait < 0:
		return core.ConfigError("bulwarkhttp: pacer max wait must not be negative, got %v", c.MaxWait)
	case c.MaxQueue < 0:
		return core.ConfigError("bulwarkhttp: pacer max queue must not be negative, got %d", c.MaxQueue)
	}
	return nil
}

// PacerStore shares what servers said of a quota across a fleet of
// clients, so that one replica learning "spent until T" holds back the
// others too. distributed.Store's Pacer method returns one backed by
// Redis.
type PacerStore interface {
	// Hold records that key sends nothing before until; a later hold
	// already recorded is kept.
	Hold(ctx context.Context, key string, until time.Time) error
	// HeldUntil returns the time until which key is held, or the zero
	// time.
	HeldUntil(ctx context.Context, key string) (time.Time, error)
}

// Pacer holds requests back on the client side once a server has said
// that the client's quota is spent, instead of sending requests that will
// be refused. One Pacer is shared by every goroutine (and by [Transport],
// and by bulwarkgrpc clients); it keeps one state per key (a host, a gRPC
// target) and, within it, one per policy the server names.
//
// What it learns, from each response's [Quota]:
//   - RateLimit "r" (remaining) and "t" (reset): a budget of r requests
//     until t; requests sent since the answered one draw on it, so
//     concurrent goroutines do not all go out on one "r=1";
//   - RateLimit-Policy "q" and "w": the quota to expect once a window
//     resets, and when the next window ends;
//   - Retry-After (or a gRPC pushback): nothing is sent before it.
//
// Until the first response about a key has come back, only one request
// is sent (a probe) and the others wait for its answer; a server that
// sends no quota fields is not paced at all. A request that would wait
// longer than MaxWait, or finds MaxQueue requests already waiting, fails
// at once with a *bulwark.RateLimitedError (matching
// bulwark.ErrRateLimited) carrying the wait; so does one whose context
// ends before the wait would.
//
// Every [Pacer.Acquire] that succeeds returns a [Ticket]; report the
// response's quota through exactly one of its Done or Cancel (a ticket
// never reported keeps counting as a request in flight, making the pacer
// more cautious). A key's state lives as long as the Pacer: key by host
// or target, never by a per-request value. A Pacer is safe for
// concurrent use.
type Pacer struct {
	cfg   PacerConfig
	clock bulwark.Clock
	store PacerStore

	mu   sync.Mutex
	keys map[string]*paceKey
}

type paceKey struct {
	name string

	mu         sync.Mutex
	seq        uint64    // admissions so far
	out        int       // admitted requests not yet answered
	blocked    time.Time // nothing is sent before this
	probing    bool      // the first request is out and nothing is known
	informed   bool      // some response carried quota fields
	uninformed bool      // a response carried none, and none ever did
	policies   []*pacePolicy
	waiting    int
	wake       chan struct{} // closed when the state changes
	sharedAt   time.Time     // when blocked was last read from the store
}

type pacePolicy struct {
	name    string
	quota   int
	window  time.Duration
	known   bool
	budget  int       // units left after admission base
	base    uint64    // admissions with a higher seq draw on budget
	rolled  uint64    // admissions up to this one belong to an earlier window
	resetAt time.Time // when the budget resets (zero: unknown)
}

// NewPacer returns a Pacer with the given queue. Options: [WithClock]
// (whose timers drive the waits when it is a bulwark.TimerClock) and
// [WithPacerStore]. It returns an error wrapping bulwark.ErrInvalidConfig
// for a bad configuration.
func NewPacer(cfg PacerConfig, opts ...Option) (*Pacer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Pacer{cfg: cfg, clock: o.clock, store: o.pacerStore, keys: make(map[string]*paceKey)}, nil
}

// WithPacerStore makes a [Pacer] share its holds across a fleet through s:
// a hold learned by one replica is written to s, and each replica reads
// the holds of the keys it sends to (at most every 100ms per key). When s
// fails the pacer goes on with what it knows locally.
func WithPacerStore(s PacerStore) Option {
	return func(o *options) {
		if core.IsNil(s) {
			o.fail("bulwarkhttp: pacer store must not be nil")
			return
		}
		o.pacerStore = s
	}
}

// sharedRefresh is how often a key's shared hold is read from the store.
const sharedRefresh = 100 * time.Millisecond

func (p *Pacer) key(name string) *paceKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.keys[name]
	if !ok {
		k = &paceKey{name: name, wake: make(chan struct{})}
		p.keys[name] = k
	}
	return k
}

// Ticket is one admission by a [Pacer]. Report the response through Done
// (or Cancel when there was none); the zero Ticket ignores both.
type Ticket struct {
	p     *Pacer
	k     *paceKey
	seq   uint64
	probe bool
}

// Acquire waits until a request to key may be sent, within the pacer's
// MaxWait and ctx, and returns its ticket. It fails with a
// *bulwark.RateLimitedError when the wait would be too long or the queue
// is full, and with ctx's error when ctx ends.
func (p *Pacer) Acquire(ctx context.Context, key string) (Ticket, error) {
	if err := ctx.Err(); err != nil {
		return Ticket{}, err
	}
	k := p.key(key)
	p.refreshShared(ctx, k)
	start := p.clock.Now()
	for {
		k.mu.Lock()
		now := p.clock.Now()
		until, probe, ok := k.admitLocked(now)
		if ok {
			k.seq++
			k.out++
			t := Ticket{p: p, k: k, seq: k.seq, probe: probe}
			k.mu.Unlock()
			return t, nil
		}
		wait := time.Duration(0) // 0: until woken
		if !until.IsZero() {
			wait = until.Sub(now)
		}
		left := p.cfg.MaxWait - now.Sub(start)
		if until.IsZero() && p.cfg.MaxWait == 0 {
			// Only a probe is out: the server has not said the quota is
			// spent, and this pacer never waits.
			k.seq++
			k.out++
			t := Ticket{p: p, k: k, seq: k.seq}
			k.mu.Unlock()
			return t, nil
		}
		if left <= 0 || wait > left || (p.cfg.MaxQueue > 0 && k.waiting >= p.cfg.MaxQueue) {
			k.mu.Unlock()
			return Ticket{}, refusal(wait)
		}
		if dl, has := ctx.Deadline(); has && wait > 0 && time.Until(dl) < wait {
			k.mu.Unlock()
			return Ticket{}, refusal(wait)
		}
		k.waiting++
		ch := k.wake
		k.mu.Unlock()
		if wait <= 0 {
			wait = left
		}
		err := p.sleep(ctx, ch, wait)
		k.mu.Lock()
		k.waiting--
		k.mu.Unlock()
		if err != nil {
			return Ticket{}, err
		}
	}
}

func refusal(wait time.Duration) error {
	wait = max(wait, time.Millisecond)
	return &bulwark.RateLimitedError{RetryAfter: wait, Decision: bulwark.Decision{RetryAfter: wait}}
}

func (p *Pacer) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) error {
	tm := core.NewTimer(p.clock, d)
	defer tm.Stop()
	select {
	case <-tm.C():
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admitLocked decides for a request at now: ok, or wait until until
// (zero: until the state changes). probe is true for the request sent
// while nothing is known. Requires k.mu held.
func (k *paceKey) admitLocked(now time.Time) (until time.Time, probe, ok bool) {
	if now.Before(k.blocked) {
		return k.blocked, false, false
	}
	var latest time.Time
	unknownEnd := false
	for _, pol := range k.policies {
		pol.rollLocked(now, k.seq)
		if !pol.known {
			continue
		}
		if pol.budget-int(k.seq-pol.base) > 0 {
			continue
		}
		if pol.resetAt.IsZero() {
			unknownEnd = true
			continue
		}
		if pol.resetAt.After(latest) {
			latest = pol.resetAt
		}
	}
	if !latest.IsZero() {
		return latest, false, false
	}
	if unknownEnd || (!k.informed && !k.uninformed) {
		// Nothing known (or a spent budget with no reset time): one
		// request at a time finds out.
		if k.probing {
			return time.Time{}, false, false
		}
		k.probing = true
		return time.Time{}, true, true
	}
	return time.Time{}, false, true
}

// rollLocked starts a new window once the known one has ended.
func (pol *pacePolicy) rollLocked(now time.Time, seq uint64) {
	if !pol.known || pol.resetAt.IsZero() || now.Before(pol.resetAt) {
		return
	}
	if pol.quota <= 0 {
		pol.known = false
		return
	}
	pol.budget, pol.base, pol.rolled = pol.quota, seq, seq
	if pol.window > 0 {
		n := now.Sub(pol.resetAt)/pol.window + 1
		pol.resetAt = pol.resetAt.Add(n * pol.window)
	} else {
		pol.resetAt = time.Time{}
	}
}

// learnLocked takes in a report of r units left, answering admission
// seq, now that admissions up to last have been made and out are still
// unanswered (this one no longer counted).
//
// The server counted the request answered, and perhaps some of the
// unanswered ones; assuming it counted none of them gives a budget that is
// never too high: r minus every request still out. Within a window the
// budget only goes down (answers come back out of order), and an answer
// to a request sent before the window rolled says nothing of the new one.
func (pol *pacePolicy) learnLocked(pq PolicyQuota, seq, last uint64, out int, now time.Time) {
	if pol.known && seq <= pol.rolled {
		return
	}
	budget := pq.Remaining - out
	reset := time.Time{}
	if pq.Reset > 0 {
		reset = now.Add(pq.Reset)
	}
	if pol.known {
		budget = min(budget, pol.budget-int(last-pol.base))
		if !pol.resetAt.IsZero() && (reset.IsZero() || pol.resetAt.Before(reset)) {
			reset = pol.resetAt // whole-second resets only overstate: keep the earliest
		}
	}
	pol.known, pol.budget, pol.base, pol.resetAt = true, budget, last, reset
}

// Cancel ends a ticket whose request got no response (a transport error):
// nothing is learned.
func (t Ticket) Cancel() {
	if t.k == nil {
		return
	}
	t.k.mu.Lock()
	t.k.out--
	if t.probe {
		t.k.probing = false
	}
	t.k.wakeLocked()
	t.k.mu.Unlock()
}

// Done reports what the response to the ticket's request said.
func (t Ticket) Done(q Quota) {
	if t.k == nil {
		return
	}
	k := t.k
	now := t.p.clock.Now()
	k.mu.Lock()
	k.out--
	if t.probe {
		k.probing = false
	}
	if q.Empty() {
		if !k.informed {
			k.uninformed = true
		}
		k.wakeLocked()
		k.mu.Unlock()
		return
	}
	k.informed, k.uninformed = true, false
	hold := time.Time{}
	if q.RetryAfter > 0 {
		hold = now.Add(q.RetryAfter)
	}
	for _, pq := range q.Policies {
		pol := k.policyLocked(pq.Name)
		if pq.Limit > 0 {
			pol.quota, pol.window = pq.Limit, pq.Window
		}
		if pq.HasRemaining {
			pol.learnLocked(pq, t.seq, k.seq, k.out, now)
			if pq.Remaining <= 0 && pol.resetAt.After(hold) {
				hold = pol.resetAt
			}
		}
	}
	if q.Refused && hold.IsZero() && len(q.Policies) == 0 {
		// Refused with no advice at all: wait a second rather than
		// hammering the server.
		hold = now.Add(time.Second)
	}
	if hold.After(k.blocked) {
		k.blocked = hold
	}
	k.wakeLocked()
	k.mu.Unlock()
	if !hold.IsZero() && t.p.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = t.p.store.Hold(ctx, k.name, hold)
		cancel()
	}
}

// refreshShared reads the key's shared hold, at most every sharedRefresh.
func (p *Pacer) refreshShared(ctx context.Context, k *paceKey) {
	if p.store == nil {
		return
	}
	now := p.clock.Now()
	k.mu.Lock()
	due := now.Sub(k.sharedAt) >= sharedRefresh
	if due {
		k.sharedAt = now
	}
	k.mu.Unlock()
	if !due {
		return
	}
	until, err := p.store.HeldUntil(ctx, k.name)
	if err != nil || until.IsZero() {
		return
	}
	k.mu.Lock()
	if until.After(k.blocked) {
		k.blocked = until
		k.informed, k.uninformed = true, false
	}
	k.mu.Unlock()
}

func (k *paceKey) policyLocked(name string) *pacePolicy {
	for _, p := range k.policies {
		if p.name == name {
			return p
		}
	}
	p := &pacePolicy{name: name}
	k.policies = append(k.policies, p)
	return p
}

func (k *paceKey) wakeLocked() {
	close(k.wake)
	k.wake = make(chan struct{})
}
