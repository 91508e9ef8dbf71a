package distributed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/eventq"
	"github.com/bulwark-go/bulwark/internal/logs"
)

// Client is exactly what a [Store] and everything built from it use of a
// go-redis v9 client. *redis.Client (also when built by
// redis.NewFailoverClient for Sentinel), *redis.ClusterClient, *redis.Ring
// and redis.UniversalClient satisfy it, and so does any type embedding one
// of them.
//
// Every method is needed; none is looked for at run time, so a client
// wrapper (for tracing, metrics, a circuit of its own) that satisfies the
// interface keeps every feature, and one that lacks a method does not
// compile:
//
//   - Process runs every script call (EVALSHA, then EVAL after NOSCRIPT),
//     as a command that refuses client-side retries, so go-redis never runs
//     a token-taking script twice after a timeout (see [Store]), and the
//     SCAN of [Store.Breakers].
//   - Pipeline batches the calls that find every round trip of the store
//     busy ([WithBatching]), or every call ([WithDispatcher]).
//   - Subscribe carries the breakers' transitions ([Store.Breaker]) and the
//     bulkheads' wake-ups ([Store.Bulkhead]).
//
// A wrapper must hand each of these to the client it wraps (or do as much
// itself): a Pipeline that sends nothing loses the batched calls. A
// wrapper that panics in Process or in a pipeline's Exec fails the call
// (a connection failure: see [Reason]), counted by [Store.ObserverPanics];
// it never kills the store's goroutines.
//
// Three methods of go-redis's clients, not part of the interface, are used
// when the client has them, as any type embedding a go-redis client does:
// Options (whether ContextTimeoutEnabled is on: see [WithTimeout]; a
// client without it is taken to ignore context deadlines, so each call
// runs on a goroutine of its own and batching is off), ForEachMaster
// ([Store.Breakers] scans every master of a cluster) and ReloadState (a
// degraded store's prober asks a cluster client to reload its slot map).
type Client interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Defaults of a [Store].
const (
	// DefaultPrefix starts every key a store writes, unless WithPrefix
	// says otherwise.
	DefaultPrefix = "bulwark"
	// DefaultTimeout is the time budget of one Redis round trip, unless
	// WithTimeout says otherwise.
	DefaultTimeout = 50 * time.Millisecond
)

// ErrClosed is returned by the limiters of a store after [Store.Close].
var ErrClosed = errors.New("bulwark: distributed store is closed")

// Option configures a [Store].
type Option func(*config)

type config struct {
	prefix   string
	clock    bulwark.Clock
	timeout  time.Duration
	minTTL   time.Duration
	observer bulwark.Observer
	logger   *slog.Logger

	policy            FailurePolicy
	replicas          int
	minReplicas       int
	counter           ReplicaCounter
	failureThreshold  int
	recoveryThreshold int
	probeInterval     time.Duration
	minDegraded       time.Duration
	maxDegraded       time.Duration
	maxInFlight       int
	lanes             int
	dispatch          bool
}

// WithPrefix sets the prefix of every key the store writes (default
// [DefaultPrefix]). Stores with different prefixes never see each other's
// state; the prefix is also the natural unit for an ACL key pattern
// ("~prefix:*"). It must be 1 to 128 printable ASCII bytes without braces,
// spaces or glob characters (*?[]\), so it can never form a hash tag.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithClock makes the store's scripts use c's time, passed as an argument in
// whole microseconds, instead of reading Redis TIME.
//
// The default (Redis TIME) is what production wants: every replica then
// reads one clock, so replicas whose clocks are skewed still agree. Inject a
// clock to drive a Redis-backed limiter by hand in tests, side by side with
// its local twin. TTLs are computed in the injected clock's time but expire
// in Redis's: pair a clock that does not run at real speed with
// [WithMinTTL].
func WithClock(c bulwark.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithTimeout sets the time budget of one Redis round trip (default
// [DefaultTimeout]); 0 leaves only the caller's context. A call that runs
// out of budget is decided without Redis (Decision.Degraded) and counts as
// a failure towards turning the store degraded.
//
// go-redis applies a context deadline to socket reads and writes only when
// the client was built with ContextTimeoutEnabled: true ([ClientOptions]
// sets it). For a client without it, the store runs each call on a
// goroutine of its own and stops waiting at the deadline (see [Store]).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMinTTL sets a lower bound on every TTL the store's scripts set
// (default 0: each key lives exactly as long as its state matters). Useful
// with [WithClock] when the injected clock runs slower than real time, as a
// fake clock in tests does: a key must not expire in Redis's time while its
// state still matters in the clock's. Longer TTLs never change a decision;
// they only keep idle keys in memory longer.
func WithMinTTL(d time.Duration) Option { return func(c *config) { c.minTTL = d } }

// WithObserver sets the observer that hears the store's events: one
// EventStoreCall per script call (Duration: from the call to its reply,
// including any wait for a batching lane, see [WithBatching]; Err: a
// [*CallError]), one
// EventStoreHealth per switch between healthy and degraded (Degraded, Err:
// the cause of a degradation) and one EventDecision per decision of its
// limiters (Degraded when decided without Redis).
func WithObserver(o bulwark.Observer) Option { return func(c *config) { c.observer = o } }

// WithLogger makes the store, its breakers and its bulkheads log their
// state changes to l (default: nothing is logged):
//
//   - Warn "bulwark: store degraded, deciding without Redis" (err: the
//     cause) when the store turns degraded, and Info "bulwark: store back
//     on Redis" (outage: how long it lasted) when it recovers: one line
//     each per outage, whatever the traffic;
//   - "bulwark: breaker state changed" (breaker, from, to, degraded) when
//     this replica learns of a transition, Warn when the breaker opens and
//     Info otherwise; per breaker at most 4 lines at once, then one a
//     second;
//   - Warn "bulwark: lease lost" (a bulkhead's slot could not be
//     renewed), at most one line per bulkhead every 10s;
//   - Error "bulwark: a user callback panicked; recovered" (the observer
//     or a lease-lost callback), at most one line every 10s;
//   - Info once at New when the client ignores context deadlines (see
//     [Client]), so calls run detached and are never batched.
//
// Rate-limited lines carry "suppressed", the count of lines dropped since
// the last one. Every line carries the store's prefix. A logger costs
// what an observer does: events are then built for every call.
//
// go-redis logs on its own, through one process-wide logger (a line per
// failed dial while Redis is away); see [NewRedisLogger] to route those
// lines into l, rate-limited, or quiet them.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Store holds what every Redis-backed primitive of one service shares: the
// client, the key prefix, the time budget of a call, the store's health and
// its failure policy. Build limiters from it with [Store.TokenBucket],
// [Store.SlidingWindow], [Store.SlidingLog], [Store.FixedWindow] and
// [Store.Multi], a fleet-wide circuit breaker with [Store.Breaker] and a
// fleet-wide bulkhead with [Store.Bulkhead].
//
// # One call path
//
// Every Redis round trip of a store and of its limiters goes through one
// method, where health is tracked and events are emitted. Each round trip
// runs one script (EVALSHA, then EVAL after NOSCRIPT) as a command marked
// not retryable: go-redis retries commands after a network error or a read
// timeout (MaxRetries, and once more per node on a cluster), which could
// apply a token-taking script twice when the script ran but its reply was
// lost. The store makes no such retry; a call that fails is decided locally
// and flagged Degraded instead, so a request is charged in Redis at most
// once. Redirections in a cluster (MOVED, ASK) and READONLY replies are
// still followed, since Redis did not run the script then.
//
// Calls that arrive while the store already has its maximum of round trips
// in flight are batched: they leave together, as one pipeline of the same
// non-retryable commands, when a round trip ends ([WithBatching]). An
// uncontended call always goes out at once on its caller's goroutine.
//
// # Health and failing open
//
// The store counts failed calls (timeouts, refused or broken connections,
// pool timeouts, BUSY, OOM, LOADING, cluster failover states: see
// [Reason]). After [WithFailureThreshold] of them in a row it turns
// degraded: its limiters stop sending calls to Redis and decide at once,
// without I/O, by their [FailurePolicy] (by default a local twin enforcing
// this replica's fair share of the limit). A background prober then sends
// one probe every [WithProbeInterval]; after [WithRecoveryThreshold]
// successful probes in a row, and no sooner than [WithMinDegraded] after
// the store degraded, it is healthy again. The minimum degraded time
// doubles (up to [WithMaxDegraded]) each time the store degrades again
// within two such times of recovering, so a flapping link makes the store
// switch at most twice per minimum degraded time, and ever more rarely.
// [Store.Healthy] tells the state and every switch emits EventStoreHealth.
//
// What to expect around an outage: the calls in flight when Redis fails
// each wait at most the store's timeout; once the store is degraded no
// call waits at all. What Redis counted before the outage stays there
// (keys keep their TTLs, unless Redis itself lost them); what the local
// twins admitted during the outage is not written back. After recovery,
// keys are therefore judged by what Redis remembers, and the fleet may
// admit up to one more full limit (a bucket's capacity or a window's
// Events) per key than the limit allows, in the first period after
// recovery: the local admissions of the outage's last period are
// forgotten. After one period the global limit holds exactly again.
// Twins start empty at each outage: a replica that degrades starts with a
// full local bucket of its share.
//
// # Slow Redis
//
// A hung Redis (SIGSTOP, a blackholed link, a long script) is worse than a
// dead one: calls wait instead of failing. Each call waits at most the
// store's timeout (or the caller's deadline), and after the failure
// threshold no call waits at all. Build the client with [ClientOptions]:
// it turns on ContextTimeoutEnabled, so go-redis stops reading a socket at
// the call's deadline, and bounds the wait for a pooled connection
// (PoolTimeout) by the store's timeout. With a client that ignores context
// deadlines (go-redis's default), the store runs each call on a goroutine
// of its own and returns at the deadline while the goroutine waits for the
// client's ReadTimeout; at most [WithMaxInFlight] such calls run at once
// (more are decided locally at once), and [Store.Close] waits for them.
//
// A Store is safe for concurrent use. Its zero value is not usable; call
// [New].
type Store struct {
	client   Client
	prefix   string
	clock    bulwark.Clock // nil: scripts read Redis TIME
	timeout  time.Duration
	minTTLms any // boxed once: ARGV[2] of every script
	observer bulwark.Observer
	probeKey string

	policy      FailurePolicy
	replicas    int
	minReplicas int
	counter     ReplicaCounter

	// detached is set when the client ignores context deadlines on its
	// sockets: calls then run on a goroutine of their own, at most
	// cap(inflight) at once.
	detached bool
	// lightDeadline: a deadline alone bounds a call (see deadlineCtx).
	lightDeadline bool
	inflight      chan struct{}
	// lanes batches calls when the client allows it (see WithBatching);
	// nil: every call is its own round trip.
	lanes   *lanes
	closeMu sync.RWMutex // orders calls.Add before Close's calls.Wait
	calls   sync.WaitGroup

	health health
	closed atomic.Bool
	// guard recovers and counts the panics of the user's observer and
	// callbacks, wherever they run.
	guard eventq.Guard
	log   *logs.Logger // nil: silent

	breakers  breakerSet  // breakers built from this store, closed by Close
	bulkheads bulkheadSet // bulkheads built from this store, closed by Close
}

// New returns a store using client, which stays the caller's to close. It
// returns an error wrapping bulwark.ErrInvalidConfig for a nil client or a
// bad option value. New does no I/O and starts no goroutine: scripts are
// loaded by the first call that needs them, and the prober starts when the
// store degrades.
func New(client Client, opts ...Option) (*Store, error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("distributed store needs a redis client, got %T(nil)", client)
	}
	cfg := config{
		prefix:            DefaultPrefix,
		timeout:           DefaultTimeout,
		policy:            FailLocal,
		replicas:          1,
		failureThreshold:  DefaultFailureThreshold,
		recoveryThreshold: DefaultRecoveryThreshold,
		probeInterval:     DefaultProbeInterval,
		minDegraded:       DefaultMinDegraded,
		maxDegraded:       DefaultMaxDegraded,
		maxInFlight:       DefaultMaxInFlight,
		lanes:             DefaultBatchLanes,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{
		client:      client,
		prefix:      cfg.prefix,
		clock:       cfg.clock,
		timeout:     cfg.timeout,
		minTTLms:    strconv.FormatInt(int64((cfg.minTTL+time.Millisecond-1)/time.Millisecond), 10),
		probeKey:    cfg.prefix + ":health:{probe}",
		policy:      cfg.policy,
		replicas:    cfg.replicas,
		minReplicas: cfg.minReplicas,
		counter:     cfg.counter,
		detached:    !honoursContext(client),
	}
	s.lightDeadline = deadlineBounds(client, s.timeout)
	if s.detached {
		s.inflight = make(chan struct{}, cfg.maxInFlight)
	} else if cfg.dispatch {
		s.lanes = &lanes{client: client, max: 1, dispatch: true, pipe: client.Pipeline()}
	} else if cfg.lanes > 0 {
		s.lanes = &lanes{client: client, max: cfg.lanes}
	}
	s.log = logs.New(cfg.logger)
	s.guard.OnPanic = s.log.Panic
	s.observer = eventq.Safe(bulwark.Observers(s.log.Observer(slog.String("prefix", cfg.prefix)), cfg.observer), &s.guard)
	if s.detached {
		s.log.Log(slog.LevelInfo, "bulwark: the redis client ignores context deadlines; each call runs on a goroutine of its own and calls are not batched (build the client with distributed.ClientOptions)",
			slog.String("prefix", cfg.prefix), slog.String("client", fmt.Sprintf("%T", client)))
	}
	s.health.init(&cfg)
	return s, nil
}

func (c *config) validate() error {
	if err := validPrefix(c.prefix); err != nil {
		return err
	}
	switch {
	case c.clock != nil && core.IsNil(c.clock):
		return core.ConfigError("store clock is a nil %T", c.clock)
	case c.observer != nil && core.IsNil(c.observer):
		return core.ConfigError("store observer is a nil %T", c.observer)
	case c.counter != nil && core.IsNil(c.counter):
		return core.ConfigError("replica counter is a nil %T", c.counter)
	case c.timeout < 0:
		return core.ConfigError("store timeout must not be negative, got %v", c.timeout)
	case c.minTTL < 0:
		return core.ConfigError("store min TTL must not be negative, got %v", c.minTTL)
	case !c.policy.valid():
		return core.ConfigError("unknown failure policy %d", c.policy)
	case c.replicas < 1:
		return core.ConfigError("replica count must be at least 1, got %d", c.replicas)
	case c.minReplicas < 0:
		return core.ConfigError("min replica count must not be negative, got %d", c.minReplicas)
	case c.failureThreshold < 1 || c.failureThreshold > 1<<20:
		return core.ConfigError("failure threshold must be between 1 and 2^20, got %d", c.failureThreshold)
	case c.recoveryThreshold < 1:
		return core.ConfigError("recovery threshold must be at least 1, got %d", c.recoveryThreshold)
	case c.probeInterval < time.Millisecond:
		return core.ConfigError("probe interval must be at least 1ms, got %v", c.probeInterval)
	case c.minDegraded < 0:
		return core.ConfigError("min degraded time must not be negative, got %v", c.minDegraded)
	case c.maxDegraded < c.minDegraded:
		return core.ConfigError("max degraded time %v must not be below the min %v", c.maxDegraded, c.minDegraded)
	case c.maxInFlight < 1:
		return core.ConfigError("max in-flight calls must be at least 1, got %d", c.maxInFlight)
	case c.lanes < 0 || c.lanes > 1<<10:
		return core.ConfigError("batching lanes must be between 0 and 1024, got %d", c.lanes)
	}
	return nil
}

// honoursContext reports whether go-redis applies context deadlines to the
// sockets of client, as the Options method of a go-redis client (or of a
// type embedding one) tells. A client without one is assumed not to.
func honoursContext(client Client) bool {
	switch c := client.(type) {
	case interface{ Options() *redis.Options }:
		return c.Options().ContextTimeoutEnabled
	case interface{ Options() *redis.ClusterOptions }:
		return c.Options().ContextTimeoutEnabled
	case interface{ Options() *redis.RingOptions }:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

func validPrefix(p string) error {
	if p == "" || len(p) > 128 {
		return core.ConfigError("store prefix must be 1 to 128 bytes, got %d", len(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("{}*?[]\\", c) >= 0 {
			return core.ConfigError("store prefix %q must be printable ASCII without braces, spaces or *?[]\\", p)
		}
	}
	return nil
}

// Close stops the store: its limiters then return [ErrClosed] and its
// bulkheads are closed (see [Bulkhead.Close]). It stops the prober and waits for the store's own goroutines, including detached calls
// still waiting on a client that ignores context deadlines (those end within
// the client's read timeout). It closes nothing the caller owns (the client
// stays open) and is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	s.closed.Store(true)
	s.closeMu.Unlock()
	s.breakers.close()
	s.bulkheads.close()
	s.health.close()
	s.calls.Wait()
	return nil
}

// ObserverPanics returns how many times user code run by the store
// panicked: its observer (on any goroutine, the store's own included), a
// bulkhead's lease-lost callback, or the client itself (a wrapper: the
// call then fails as if Redis were unreachable). Each panic is recovered and counted; the
// store goes on and later events are still delivered.
func (s *Store) ObserverPanics() uint64 { return s.guard.Panics() }

// Prefix returns the key prefix of the store.
func (s *Store) Prefix() string { return s.prefix }

// nowArg is ARGV[1] of every script: the injected clock's time in µs, or ""
// so that the script reads Redis TIME.
func (s *Store) nowArg() any {
	if s.clock == nil {
		return ""
	}
	return core.Micros(s.clock.Now())
}

// eventTime is the time stamped on events.
func (s *Store) eventTime() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}
