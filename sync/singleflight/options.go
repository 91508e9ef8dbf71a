package singleflight

import (
	"context"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/redis/go-redis/v9"
)

// Defaults used when no option says otherwise.
const (
	// DefaultPrefix starts every Redis key and channel of a group.
	DefaultPrefix = "bulwark:"
	// DefaultLeaseTTL is how long a leader's lease lives without renewal:
	// how long the waiters of a leader that died wait before one of them
	// takes over.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultResultTTL is how long a successful result stays in Redis after
	// its run: waiters woken by the run read it there, and callers arriving
	// meanwhile take it without running the function again.
	DefaultResultTTL = 2 * time.Second
	// DefaultErrorTTL is how long a failed run's error stays in Redis.
	DefaultErrorTTL = time.Second
	// DefaultMaxResultBytes bounds the encoded size of a shared result.
	DefaultMaxResultBytes = 1 << 20
	// DefaultPollInterval is the backstop of a waiting caller: it re-checks
	// Redis this often when no wake-up arrives. Wake-ups come by pub/sub at
	// once; pub/sub delivers at most once, so a message lost while the
	// subscription reconnected would otherwise leave a waiter asleep until
	// the leader's lease expired.
	DefaultPollInterval = time.Second
	// DefaultTimeout bounds each Redis call of a group.
	DefaultTimeout = time.Second
	// FenceTTL is how long the fencing counter of a key lives after its last
	// run. Tokens never fall below the Redis time in microseconds, so they
	// keep growing after it expired.
	FenceTTL = 24 * time.Hour
	// MinLeaseTTL and MaxLeaseTTL bound the lease TTL accepted.
	MinLeaseTTL = 10 * time.Millisecond
	MaxLeaseTTL = 24 * time.Hour
)

// Runner runs one Redis script and returns its raw reply. Every Redis call
// of a [Group] goes through it, so another component can route, time or
// short-circuit the calls. The default runs s.Run(ctx, client, keys,
// args...).Result() (EVALSHA, then EVAL on NOSCRIPT) under the group's
// timeout. An error other than the caller's own context ending makes the
// call's flight run the function in this replica only (see [Result.Degraded]).
type Runner func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error)

// Option configures a [Group].
type Option func(*options)

type options struct {
	prefix    string
	leaseTTL  time.Duration
	keepAlive time.Duration
	keepSet   bool
	resultTTL time.Duration
	errorTTL  time.Duration
	maxBytes  int
	poll      time.Duration
	timeout   time.Duration
	observer  bulwark.Observer
	name      string
	nameSet   bool
	runner    Runner
	clock     bulwark.Clock
}

// WithPrefix sets the prefix of every key and channel (default
// DefaultPrefix). It must not contain '{' or '}'.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithLeaseTTL sets how long a leader's lease lives without renewal
// (default DefaultLeaseTTL), between MinLeaseTTL and MaxLeaseTTL. A leader
// that dies is replaced once it has passed.
func WithLeaseTTL(d time.Duration) Option { return func(o *options) { o.leaseTTL = d } }

// WithKeepAlive sets how often a leader renews its lease (default a third
// of the lease TTL); it must be positive and below the lease TTL.
func WithKeepAlive(d time.Duration) Option {
	return func(o *options) { o.keepAlive, o.keepSet = d, true }
}

// WithResultTTL sets how long a successful result stays stored (default
// DefaultResultTTL), at least 1ms. Callers of the key within that time take
// it instead of running the function: set it to the staleness the data
// allows, or short (tens of milliseconds) for pure request collapsing.
func WithResultTTL(d time.Duration) Option { return func(o *options) { o.resultTTL = d } }

// WithErrorTTL sets how long a failed run's error stays stored (default
// DefaultErrorTTL), at least 1ms.
func WithErrorTTL(d time.Duration) Option { return func(o *options) { o.errorTTL = d } }

// WithMaxResultBytes bounds the encoded size of a result shared through
// Redis (default DefaultMaxResultBytes), at least 1. A larger result still
// reaches the callers of the leader's replica; the others get an error
// wrapping ErrTooLarge.
func WithMaxResultBytes(n int) Option { return func(o *options) { o.maxBytes = n } }

// WithPollInterval sets the backstop interval of waiting callers (default
// DefaultPollInterval), between 1ms and a minute.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = d } }

// WithTimeout bounds each Redis call (default DefaultTimeout); 0 leaves
// only the caller's deadline. Not negative. go-redis applies a context
// deadline to the socket only with ContextTimeoutEnabled set in the client
// options (distributed.ClientOptions sets it); otherwise a hung server is
// noticed after the client's ReadTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithObserver sets the observer hearing the group's events, Pattern
// "singleflight": EventLeaseLost when a leader could not keep its lease
// (its function's ctx is cancelled), EventFallback when a flight ran in
// this replica only because Redis failed (Err says how). A panicking
// observer is recovered and counted ([Group.ObserverPanics]).
func WithObserver(obs bulwark.Observer) Option { return func(o *options) { o.observer = obs } }

// WithName sets the Name of the group's events (default: the group name).
func WithName(name string) Option { return func(o *options) { o.name, o.nameSet = name, true } }

// WithRunner routes every Redis script call through r (see [Runner]).
func WithRunner(r Runner) Option { return func(o *options) { o.runner = r } }

// WithClock sets the clock of the group's timers (default
// bulwark.SystemClock). Lease and result expiry are decided by Redis.
func WithClock(c bulwark.Clock) Option { return func(o *options) { o.clock = c } }

func buildOptions(name string, opts []Option) (options, error) {
	o := options{prefix: DefaultPrefix, leaseTTL: DefaultLeaseTTL, resultTTL: DefaultResultTTL,
		errorTTL: DefaultErrorTTL, maxBytes: DefaultMaxResultBytes, poll: DefaultPollInterval,
		timeout: DefaultTimeout, clock: bulwark.SystemClock, name: name}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if !o.keepSet {
		o.keepAlive = o.leaseTTL / 3
	}
	if o.clock == nil {
		o.clock = bulwark.SystemClock
	}
	if !o.nameSet {
		o.name = name
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch {
	case core.IsNil(o.clock):
		return core.ConfigError("singleflight clock is a nil %T", o.clock)
	case o.observer != nil && core.IsNil(o.observer):
		return core.ConfigError("singleflight observer is a nil %T", o.observer)
	case containsBrace(o.prefix):
		return core.ConfigError("singleflight prefix must not contain braces, got %q", o.prefix)
	case o.leaseTTL < MinLeaseTTL || o.leaseTTL > MaxLeaseTTL:
		return core.ConfigError("singleflight lease TTL must be in [%v, %v], got %v", MinLeaseTTL, MaxLeaseTTL, o.leaseTTL)
	case o.keepAlive <= 0 || o.keepAlive >= o.leaseTTL:
		return core.ConfigError("singleflight keepalive must be in (0, lease TTL %v), got %v", o.leaseTTL, o.keepAlive)
	case o.resultTTL < time.Millisecond:
		return core.ConfigError("singleflight result TTL must be at least 1ms, got %v", o.resultTTL)
	case o.errorTTL < time.Millisecond:
		return core.ConfigError("singleflight error TTL must be at least 1ms, got %v", o.errorTTL)
	case o.maxBytes < 1:
		return core.ConfigError("singleflight max result bytes must be at least 1, got %d", o.maxBytes)
	case o.poll < time.Millisecond || o.poll > time.Minute:
		return core.ConfigError("singleflight poll interval must be in [1ms, 1m], got %v", o.poll)
	case o.timeout < 0:
		return core.ConfigError("singleflight timeout must not be negative, got %v", o.timeout)
	}
	return nil
}

func containsBrace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '{' || s[i] == '}' {
			return true
		}
	}
	return false
}
