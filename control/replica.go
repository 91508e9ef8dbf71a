package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/policy"
)

// ReplicaClient is the part of a go-redis v9 client a [Replica] uses.
// *redis.Client, *redis.ClusterClient, *redis.Ring and
// redis.UniversalClient satisfy it. A replica reads the configuration
// and writes only its own status and its defaults (see the package doc
// for the ACL that enforces it).
type ReplicaClient interface {
	cluster.Subscriber
	Get(ctx context.Context, key string) *redis.StringCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	HSet(ctx context.Context, key string, values ...any) *redis.IntCmd
	PExpire(ctx context.Context, key string, expiration time.Duration) *redis.BoolCmd
}

// Defaults of a [Replica].
const (
	// DefaultPollInterval is how often a replica reads the version
	// counter, the backstop for a lost announcement: a replica runs a
	// change at most this long (plus one round trip) after it was written,
	// even when pub/sub lost it.
	DefaultPollInterval = 500 * time.Millisecond
	// DefaultHeartbeat is how often a replica publishes its status.
	DefaultHeartbeat = time.Second
)

type replicaConfig struct {
	prefix   string
	timeout  time.Duration
	poll     time.Duration
	beat     time.Duration
	id       string
	observer bulwark.Observer
}

type pollOpt time.Duration

func (p pollOpt) applyReplica(c *replicaConfig) { c.poll = time.Duration(p) }

// WithPollInterval sets how often the replica reads the version counter
// (default [DefaultPollInterval]).
func WithPollInterval(d time.Duration) ReplicaOption { return pollOpt(d) }

type beatOpt time.Duration

func (p beatOpt) applyReplica(c *replicaConfig) { c.beat = time.Duration(p) }

// WithHeartbeat sets how often the replica publishes its status: the
// version it runs, whether it is stale, its policies and their decision
// counts (default [DefaultHeartbeat]).
func WithHeartbeat(d time.Duration) ReplicaOption { return beatOpt(d) }

type idOpt string

func (p idOpt) applyReplica(c *replicaConfig) { c.id = string(p) }

// WithID names the replica in its status (default host name, process id
// and a random suffix). 1 to 128 printable ASCII bytes.
func WithID(id string) ReplicaOption { return idOpt(id) }

type obsOpt struct{ o bulwark.Observer }

func (p obsOpt) applyReplica(c *replicaConfig) { c.observer = p.o }

// WithObserver receives the replica's EventConfig events: every change
// applied or refused, and the configuration turning stale or fresh.
func WithObserver(o bulwark.Observer) ReplicaOption { return obsOpt{o} }

// Replica runs live configuration in one process: it loads the live values
// at start, builds stacks whose defaults they override ([Replica.Build]),
// and applies every later change to them, each as one atomic swap
// (policy.Stack.Update), so no call ever runs on a half-applied
// configuration.
//
// It hears changes through pub/sub and, as a backstop for lost messages,
// reads the version counter every poll interval: a change reaches every
// replica at most one poll interval plus one round trip after it was
// written. While Redis is unreachable it keeps the configuration it has
// and reports it stale ([Replica.Stale], an EventConfig with Degraded);
// it catches up when Redis answers again. A replica started while Redis is
// away runs the defaults until then.
//
// Safe for concurrent use. Create one with [NewReplica]; Close stops it.
type Replica struct {
	client ReplicaClient
	k      keys
	cfg    replicaConfig
	bc     *cluster.Broadcast

	mu      sync.Mutex
	stacks  []*liveStack         // in the order built; a name may have several
	live    map[string]liveValue // the last load
	loaded  bool
	version uint64
	closed  bool
	lastErr error

	stale   atomic.Bool
	panics  atomic.Uint64 // observer panics recovered
	refresh sync.Mutex    // one load at a time
	kick    chan struct{}
	beatNow chan struct{} // a stack was built: register its defaults now
	cancel  context.CancelFunc
	done    chan struct{}
	counts  counters
}

type liveValue struct {
	version uint64
	layer   policy.Spec
}

type liveStack struct {
	name     string
	defaults policy.Spec
	stack    *policy.Stack
	applied  uint64 // live version running (0: the defaults)
	refused  uint64 // live version refused, 0 when none
	err      error  // why refused
}

// NewReplica starts a replica: it subscribes to the announcements, loads
// the live values (waiting at most the timeout; when Redis does not answer
// the replica starts stale, with the defaults) and starts the goroutine
// that keeps them current. It returns an error wrapping
// bulwark.ErrInvalidConfig for a nil client or an invalid option.
func NewReplica(client ReplicaClient, opts ...ReplicaOption) (*Replica, error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("control: replica needs a redis client, got %T(nil)", client)
	}
	c := replicaConfig{prefix: DefaultPrefix, timeout: DefaultTimeout, poll: DefaultPollInterval, beat: DefaultHeartbeat}
	for _, o := range opts {
		if !core.IsNil(o) {
			o.applyReplica(&c)
		}
	}
	if err := validPrefix(c.prefix); err != nil {
		return nil, err
	}
	switch {
	case c.timeout <= 0:
		return nil, core.ConfigError("control: timeout must be positive, got %v", c.timeout)
	case c.poll <= 0:
		return nil, core.ConfigError("control: poll interval must be positive, got %v", c.poll)
	case c.beat <= 0:
		return nil, core.ConfigError("control: heartbeat must be positive, got %v", c.beat)
	case c.observer != nil && core.IsNil(c.observer):
		return nil, core.ConfigError("control: observer is a typed nil %T", c.observer)
	}
	if c.id == "" {
		c.id = defaultID()
	} else if len(c.id) > 128 || validName(truncate(c.id, 64)) != nil {
		return nil, core.ConfigError("control: replica id %q must be 1 to 128 printable ASCII bytes without spaces or quotes", c.id)
	}
	r := &Replica{client: client, k: newKeys(c.prefix), cfg: c,
		live: map[string]liveValue{}, kick: make(chan struct{}, 1), beatNow: make(chan struct{}, 1), done: make(chan struct{})}
	bc, err := cluster.NewBroadcast(client, r.k.channel)
	if err != nil {
		return nil, err
	}
	r.bc = bc
	if _, err := bc.Handle("config", func(cluster.Message) { r.poke() }); err != nil {
		_ = bc.Close()
		return nil, err
	}
	_ = r.load(context.Background(), true)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.loop(ctx)
	return r, nil
}

func defaultID() string {
	h, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%s-%d-%s", h, os.Getpid(), hex.EncodeToString(b[:]))
	out := []byte(id)
	for i, c := range out {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			out[i] = '_'
		}
	}
	return string(out)
}

// ID returns the replica's id, as its status names it.
func (r *Replica) ID() string { return r.cfg.id }

// poke asks the loop for a full load; it never blocks (a pending poke
// covers this one).
func (r *Replica) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Replica) loop(ctx context.Context) {
	defer close(r.done)
	poll := time.NewTicker(r.cfg.poll)
	defer poll.Stop()
	beat := time.NewTicker(r.cfg.beat)
	defer beat.Stop()
	r.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			_ = r.load(ctx, false)
		case <-r.kick:
			_ = r.load(ctx, true)
		case <-beat.C:
			r.heartbeat(ctx)
		case <-r.beatNow:
			r.heartbeat(ctx)
		}
	}
}

// Refresh loads the live values now (a full read, not only the version
// counter) and applies what changed. It returns Redis's error when it
// could not read them; the replica is then stale.
func (r *Replica) Refresh(ctx context.Context) error { return r.load(ctx, true) }

// load reads the version counter and, when it moved (or full is set),
// every live value, and applies them.
func (r *Replica) load(ctx context.Context, full bool) error {
	r.refresh.Lock()
	defer r.refresh.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	v, err := readVersion(ctx, r.client, r.k)
	if err != nil {
		r.setStale(err)
		return err
	}
	r.mu.Lock()
	same := r.loaded && v == r.version && !full
	r.mu.Unlock()
	if same {
		r.setFresh(false)
		return nil
	}
	all, err := r.client.HGetAll(ctx, r.k.live).Result()
	if err != nil {
		err = fmt.Errorf("control: read live values: %w", err)
		r.setStale(err)
		return err
	}
	r.mu.Lock()
	live := make(map[string]liveValue, len(all))
	var bad []bulwark.Event
	for name, raw := range all {
		ver, layer, err := parseLive(raw)
		if err != nil {
			if old, ok := r.live[name]; ok {
				live[name] = old // keep what was good
			}
			bad = append(bad, r.event(name, 0, false, err))
			continue
		}
		live[name] = liveValue{version: ver, layer: layer}
	}
	moved := !r.loaded || v != r.version
	r.live, r.version, r.loaded = live, v, true
	evs := append(bad, r.applyLocked()...)
	r.mu.Unlock()
	r.setFresh(moved)
	for _, e := range evs {
		r.emit(e)
	}
	return nil
}

// applyLocked brings every stack to its live value. Requires r.mu held.
func (r *Replica) applyLocked() []bulwark.Event {
	var evs []bulwark.Event
	for _, ls := range r.stacks {
		lv := r.live[ls.name]
		if lv.version == ls.applied || (ls.refused != 0 && lv.version == ls.refused) {
			continue
		}
		if err := ls.stack.Update(ls.defaults.Merge(lv.layer)); err != nil {
			ls.refused, ls.err = lv.version, err
			evs = append(evs, r.event(ls.name, lv.version, false, err))
			continue
		}
		ls.applied, ls.refused, ls.err = lv.version, 0, nil
		evs = append(evs, r.event(ls.name, lv.version, true, nil))
	}
	return evs
}

func (r *Replica) event(name string, version uint64, ok bool, err error) bulwark.Event {
	return bulwark.Event{Kind: bulwark.EventConfig, Pattern: "config", Name: name, Time: time.Now(),
		Limit: int(version), Allowed: ok, Degraded: r.stale.Load(), Err: err}
}

// emit sends e to the observer, recovering and counting its panics: the
// replica's goroutine keeps applying changes whatever the observer does.
func (r *Replica) emit(e bulwark.Event) {
	if r.cfg.observer == nil {
		return
	}
	defer func() {
		if recover() != nil {
			r.panics.Add(1)
		}
	}()
	r.cfg.observer.Observe(e)
}

// ObserverPanics returns how many times the observer given with
// WithObserver panicked (each was recovered; later events still come).
func (r *Replica) ObserverPanics() uint64 { return r.panics.Load() }

func (r *Replica) setStale(err error) {
	r.mu.Lock()
	r.lastErr = err
	v := r.version
	r.mu.Unlock()
	if !r.stale.Swap(true) {
		r.emit(bulwark.Event{Kind: bulwark.EventConfig, Pattern: "config", Time: time.Now(),
			Limit: int(v), Degraded: true, Err: err})
	}
}

// setFresh marks the configuration current; the replica-wide event (the
// version it runs) goes out when it was stale or moved says the version
// changed.
func (r *Replica) setFresh(moved bool) {
	r.mu.Lock()
	r.lastErr = nil
	v := r.version
	r.mu.Unlock()
	if r.stale.Swap(false) || moved {
		r.emit(bulwark.Event{Kind: bulwark.EventConfig, Pattern: "config", Time: time.Now(),
			Limit: int(v), Allowed: true})
	}
}

// Build builds the stack of the policy called name with defaults (the
// spec's or the code's values) overlaid with the live value, and keeps it
// up to date with every later change until the replica closes. Options are
// policy.Build's (WithStore for fleet-wide patterns, WithObserver, ...);
// the replica adds policy.WithShapeBase(defaults), so a live change of a
// period or window starts fresh fleet-wide state under new keys.
//
// When the live value does not validate over these defaults the stack is
// built from the defaults alone and the refusal is reported
// ([Replica.Policies], an EventConfig with Err). It returns an error
// wrapping bulwark.ErrInvalidConfig when defaults themselves are invalid,
// and bulwark.ErrInvalidArgument for an invalid name. A name may be built
// more than once (a server's middleware and a client's transport, say):
// every stack of it follows the same live value over its own defaults.
func (r *Replica) Build(name string, defaults policy.Spec, opts ...policy.Option) (*policy.Stack, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	opts = append(append([]policy.Option(nil), opts...), policy.WithShapeBase(defaults))
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, core.ArgumentError("control: replica is closed")
	}
	lv := r.live[name]
	ls := &liveStack{name: name, defaults: defaults.Clone(), applied: lv.version}
	st, err := policy.Build(name, defaults.Merge(lv.layer), opts...)
	var ev bulwark.Event
	switch {
	case err == nil:
		ev = r.event(name, lv.version, true, nil)
	case lv.version == 0:
		r.mu.Unlock()
		return nil, err
	default:
		refusal := err
		st, err = policy.Build(name, defaults, opts...)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		ls.applied, ls.refused, ls.err = 0, lv.version, refusal
		ev = r.event(name, lv.version, false, refusal)
	}
	ls.stack = st
	r.stacks = append(r.stacks, ls)
	r.mu.Unlock()
	r.emit(ev)
	select { // publish its defaults with a heartbeat now, not at the next one
	case r.beatNow <- struct{}{}:
	default:
	}
	return st, nil
}

// Version returns the version counter the replica last loaded: every
// change up to it has been applied (or refused).
func (r *Replica) Version() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Stale reports whether the replica's configuration may be behind: its
// last read of Redis failed. It keeps running the last good
// configuration meanwhile.
func (r *Replica) Stale() bool { return r.stale.Load() }

// PolicyState is what a replica runs for one policy.
type PolicyState struct {
	Name     string
	Defaults policy.Spec
	Layer    policy.Spec // the live value applied (zero: none)
	Version  uint64      // its version (0: the defaults)
	// Refused is the version of a live value that did not validate over
	// this replica's defaults, with Err saying why; 0 when none.
	Refused uint64
	Err     error
}

// Policies returns the state of every stack the replica built, sorted by
// name.
func (r *Replica) Policies() []PolicyState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PolicyState, 0, len(r.stacks))
	for _, ls := range r.stacks {
		ps := PolicyState{Name: ls.name, Defaults: ls.defaults.Clone(), Version: ls.applied, Refused: ls.refused, Err: ls.err}
		if lv := r.live[ls.name]; lv.version == ls.applied {
			ps.Layer = lv.layer.Clone()
		}
		out = append(out, ps)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops the replica's goroutine and its subscription and closes the
// stacks it built (their fleet-wide patterns stop; the client stays the
// caller's). Idempotent.
func (r *Replica) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
	errs := []error{r.bc.Close()}
	r.mu.Lock()
	for _, ls := range r.stacks {
		errs = append(errs, ls.stack.Close())
	}
	r.mu.Unlock()
	return errors.Join(errs...)
}

// ReplicaStatus is what a replica publishes with every heartbeat.
type ReplicaStatus struct {
	ID       string                  `json:"id"`
	Version  uint64                  `json:"version"` // the version counter it loaded last
	Stale    bool                    `json:"stale"`
	Seen     time.Time               `json:"seen"`    // when it published this
	Expires  time.Time               `json:"expires"` // when it is presumed gone without a newer heartbeat
	Policies map[string]PolicyStatus `json:"policies"`
}

// PolicyStatus is one policy of a [ReplicaStatus].
type PolicyStatus struct {
	Version uint64 `json:"version"`           // live version it runs (0: the defaults)
	Refused uint64 `json:"refused,omitempty"` // live version it refused
	Error   string `json:"error,omitempty"`
	// Counts are its decisions over the last minutes, oldest first, in
	// buckets of CountBucket (see [Replica.Observer]).
	Counts []Counts `json:"counts,omitempty"`
}

func (r *Replica) status(now time.Time) ReplicaStatus {
	st := ReplicaStatus{ID: r.cfg.id, Stale: r.stale.Load(), Seen: now.UTC(),
		Expires: now.Add(3 * r.cfg.beat).UTC(), Policies: map[string]PolicyStatus{}}
	r.mu.Lock()
	st.Version = r.version
	for _, ls := range r.stacks {
		ps := PolicyStatus{Version: ls.applied, Refused: ls.refused}
		if ls.err != nil {
			ps.Error = ls.err.Error()
		}
		st.Policies[ls.name] = ps
	}
	r.mu.Unlock()
	for name, c := range r.counts.snapshot(now) {
		ps, ok := st.Policies[name]
		if !ok {
			continue
		}
		ps.Counts = c
		st.Policies[name] = ps
	}
	return st
}

// heartbeat publishes the replica's status and its defaults. Errors are
// ignored: the next heartbeat tries again, and staleness is the load's to
// report.
func (r *Replica) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	now := time.Now()
	st := r.status(now)
	data, err := json.Marshal(st)
	if err != nil {
		return
	}
	if r.client.HSet(ctx, r.k.replicas, r.cfg.id, string(data)).Err() != nil {
		return
	}
	_ = r.client.PExpire(ctx, r.k.replicas, max(10*r.cfg.beat, time.Minute)).Err()
	r.mu.Lock()
	defs := make([]any, 0, 2*len(r.stacks))
	for _, ls := range r.stacks {
		if b, err := json.Marshal(ls.defaults); err == nil {
			defs = append(defs, ls.name, string(b))
		}
	}
	r.mu.Unlock()
	if len(defs) > 0 && r.client.HSet(ctx, r.k.defaults, defs...).Err() == nil {
		_ = r.client.PExpire(ctx, r.k.defaults, time.Hour).Err()
	}
}
