package semaphore

import (
	"context"
	"log/slog"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/redis/go-redis/v9"
)

// Defaults used when no option says otherwise.
const (
	// DefaultPrefix starts every Redis key and channel of a semaphore.
	DefaultPrefix = "bulwark:"
	// DefaultPollInterval is how often a blocked Acquire re-checks Redis
	// when no wake-up arrives (a wake-up lost while the subscription was
	// reconnecting, or a holder that died without releasing and whose lease
	// expiry is further away than this).
	DefaultPollInterval = time.Second
	// MaxPollInterval is the longest poll interval accepted. A waiter whose
	// process died holds its place in the queue for three intervals.
	MaxPollInterval = time.Minute
	// FenceTTL is how long the fencing counter key lives after the last
	// acquisition. Tokens also never fall below the Redis time in
	// microseconds, so they keep growing after the key expires; the key only
	// has to bridge bursts faster than one acquisition per microsecond and
	// a Redis clock stepped back by less than this.
	FenceTTL = 24 * time.Hour
	// MaxLeaseTTL is the longest lease TTL accepted.
	MaxLeaseTTL = 24 * time.Hour
	// MinLeaseTTL is the shortest lease TTL accepted: leases shorter than
	// this cannot be renewed in time over a network.
	MinLeaseTTL = 10 * time.Millisecond
	// MaxCapacity is the largest capacity accepted. The scripts count slots
	// in Lua numbers (doubles), which are exact up to 2^53.
	MaxCapacity = 1 << 52
)

// Runner runs one Redis script and returns its raw reply. Every Redis call
// of a [Weighted] goes through it, so another component (a store tracking
// Redis health, a tracer) can route, time or short-circuit the calls. The
// default runs s.Run(ctx, client, keys, args...).Result(), which uses
// EVALSHA and falls back to EVAL when the script is not cached.
//
// A Runner must return the reply unchanged: the semaphore decodes it and
// treats an unexpected shape as an error.
type Runner func(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error)

// Option configures a [Weighted].
type Option func(*options)

type options struct {
	prefix    string
	ttl       time.Duration
	keepAlive time.Duration
	keepSet   bool
	poll      time.Duration
	onLost    func(*Lease, error)
	observer  bulwark.Observer
	name      string
	nameSet   bool
	runner    Runner
	clock     bulwark.Clock
	logger    *slog.Logger
}

// WithLogger makes the semaphore log to l (default: nothing is logged):
// Warn "bulwark: lease lost" (name, err) when a held lease could not be
// renewed, at most one line every 10s (the next line says how many were
// dropped: "suppressed"), and Error when the observer or the lease-lost
// callback panicked (recovered), rate-limited alike.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithPrefix sets the prefix of every key and channel (default
// DefaultPrefix). It must not contain '{' or '}', which would move the
// Redis Cluster hash tag out of the part the library controls.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithLeaseTTL sets how long a lease lives without renewal (default
// bulwark.DefaultLeaseTTL). It bounds how long the slots of a crashed holder
// stay taken. Between MinLeaseTTL and MaxLeaseTTL.
func WithLeaseTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithKeepAlive sets how often held leases are renewed (default a third of
// the lease TTL). It must be below the lease TTL and at least 1ms. Zero
// turns keepalive off: a lease then expires one lease TTL after it was
// granted unless released first, and its Lost channel is closed within a
// third of the TTL after that.
func WithKeepAlive(interval time.Duration) Option {
	return func(o *options) { o.keepAlive, o.keepSet = interval, true }
}

// WithPollInterval sets how often a blocked Acquire re-checks Redis when no
// wake-up arrives (default DefaultPollInterval). Wake-ups normally come from
// a release at once; the poll only covers lost messages. A queued waiter
// that stops polling (its process died) is dropped from the queue after
// three intervals, so long intervals make a crashed waiter block the queue
// longer. Between 1ms and MaxPollInterval.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = d } }

// WithOnLeaseLost sets a function called once for each held lease that is
// lost: its renewal found it gone, or renewal kept failing until its expiry
// passed, or the semaphore was closed while it was held. The holder should
// stop the work the lease protects. It runs on the keepalive goroutine (or
// in Close), never under a lock; keep it short.
func WithOnLeaseLost(f func(*Lease, error)) Option { return func(o *options) { o.onLost = f } }

// WithObserver sets the observer hearing the semaphore's events:
// EventBulkheadAcquired, EventBulkheadRejected, EventBulkheadReleased and
// EventLeaseLost, with Pattern "semaphore".
func WithObserver(obs bulwark.Observer) Option { return func(o *options) { o.observer = obs } }

// WithName sets the Name of the semaphore's events (default: the semaphore
// name given to New). Keep names few and fixed: they become metric labels.
func WithName(name string) Option { return func(o *options) { o.name, o.nameSet = name, true } }

// WithRunner routes every Redis script call through r (see [Runner]).
func WithRunner(r Runner) Option { return func(o *options) { o.runner = r } }

// WithClock sets the clock used for keepalive timing, local lease deadlines
// and waits (default bulwark.SystemClock). Lease expiry itself is decided by
// the Redis clock.
func WithClock(c bulwark.Clock) Option { return func(o *options) { o.clock = c } }
