package distributed

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/lua"
)

// Client is the part of a go-redis v9 client a [Store] uses. *redis.Client
// (also when built by redis.NewFailoverClient for Sentinel),
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient all satisfy
// it.
//
// The store sends its scripts through Process with a command that refuses
// client-side retries, so go-redis never runs a token-taking script twice
// after a timeout (see [Store]); the Scripter methods remain part of the
// interface so that a client wrapper can be checked at compile time against
// everything a script-running client offers.
type Client interface {
	redis.Scripter
	Process(ctx context.Context, cmd redis.Cmder) error
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
// out of budget is decided without Redis (Decision.Degraded).
//
// go-redis applies a context deadline to socket reads and writes only when
// the client was built with ContextTimeoutEnabled: true; otherwise the
// client's ReadTimeout and WriteTimeout bound a stuck call instead.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMinTTL sets a lower bound on every TTL the store's scripts set
// (default 0: each key lives exactly as long as its state matters). Useful
// with [WithClock] when the injected clock runs slower than real time, as a
// fake clock in tests does: a key must not expire in Redis's time while its
// state still matters in the clock's. Longer TTLs never change a decision;
// they only keep idle keys in memory longer.
func WithMinTTL(d time.Duration) Option { return func(c *config) { c.minTTL = d } }

// WithObserver sets the observer that hears the store's events: one
// EventStoreCall per Redis round trip (Duration, Err) and one EventDecision
// per decision of its limiters.
func WithObserver(o bulwark.Observer) Option { return func(c *config) { c.observer = o } }

// Store holds what every Redis-backed primitive of one service shares: the
// client, the key prefix, the time budget of a call and the store's health.
// Build limiters from it with [Store.TokenBucket], [Store.SlidingWindow],
// [Store.SlidingLog], [Store.FixedWindow] and [Store.Multi].
//
// Every Redis round trip of a store and of its limiters goes through one
// method, where health is tracked and events are emitted. Each round trip
// runs one script (EVALSHA, then EVAL after NOSCRIPT) as a command marked
// not retryable: go-redis retries commands after a network error or a read
// timeout (MaxRetries, and once more per node on a cluster), which could
// apply a token-taking script twice. The store makes no such retry; a call
// that fails is decided locally and flagged Degraded instead. Redirections
// in a cluster (MOVED, ASK) are still followed, since Redis did not run the
// script then.
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

	healthy atomic.Bool
	closed  atomic.Bool

	breakers breakerSet // breakers built from this store, closed by Close
}

// New returns a store using client, which stays the caller's to close. It
// returns an error wrapping bulwark.ErrInvalidConfig for a nil client or a
// bad option value. New does no I/O: scripts are loaded by the first call
// that needs them.
func New(client Client, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, bulwark.ConfigError("distributed store needs a redis client, got nil")
	}
	cfg := config{prefix: DefaultPrefix, timeout: DefaultTimeout}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := validPrefix(cfg.prefix); err != nil {
		return nil, err
	}
	if cfg.timeout < 0 {
		return nil, bulwark.ConfigError("store timeout must not be negative, got %v", cfg.timeout)
	}
	if cfg.minTTL < 0 {
		return nil, bulwark.ConfigError("store min TTL must not be negative, got %v", cfg.minTTL)
	}
	s := &Store{
		client:   client,
		prefix:   cfg.prefix,
		clock:    cfg.clock,
		timeout:  cfg.timeout,
		minTTLms: strconv.FormatInt(int64((cfg.minTTL+time.Millisecond-1)/time.Millisecond), 10),
		observer: cfg.observer,
	}
	s.healthy.Store(true)
	return s, nil
}

func validPrefix(p string) error {
	if p == "" || len(p) > 128 {
		return bulwark.ConfigError("store prefix must be 1 to 128 bytes, got %d", len(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("{}*?[]\\", c) >= 0 {
			return bulwark.ConfigError("store prefix %q must be printable ASCII without braces, spaces or *?[]\\", p)
		}
	}
	return nil
}

// Healthy reports whether the store's last Redis round trip succeeded. It
// is true before the first call.
func (s *Store) Healthy() bool { return s.healthy.Load() }

// Close stops the store: its limiters then return [ErrClosed]. It closes
// nothing the caller owns (the client stays open) and is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.breakers.close()
	return nil
}

// Prefix returns the key prefix of the store.
func (s *Store) Prefix() string { return s.prefix }

// nowArg is ARGV[1] of every script: the injected clock's time in µs, or ""
// so that the script reads Redis TIME.
func (s *Store) nowArg() any {
	if s.clock == nil {
		return ""
	}
	return bulwark.Micros(s.clock.Now())
}

// eventTime is the time stamped on events.
func (s *Store) eventTime() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}

// noRetryCmd is a script command that go-redis must not send twice: its
// first attempt may have run the script even when no reply came back.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// run is the single path of every Redis round trip the store makes: it runs
// script over keys with args (EVALSHA, then EVAL when the server has not
// cached the script), bounded by the store's timeout, and records the result
// in the store's health and events. Health tracking, metrics and batching of
// concurrent calls belong here, not in the primitives.
//
// The reply is returned raw; each primitive decodes it with its script's
// decoder.
func (s *Store) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	if s.timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.timeout)
			defer cancel()
		}
	}
	var start time.Time
	if s.observer != nil {
		start = time.Now()
	}
	v, err := s.eval(ctx, "evalsha", script.Hash(), keys, args)
	if err != nil && isNoScript(err) {
		// EVALSHA did not run: send the source, which also caches it.
		v, err = s.eval(ctx, "eval", lua.Source(script), keys, args)
	}
	s.healthy.Store(err == nil)
	if s.observer != nil {
		bulwark.Emit(s.observer, bulwark.Event{
			Kind:     bulwark.EventStoreCall,
			Pattern:  "store",
			Time:     s.eventTime(),
			Duration: time.Since(start),
			Err:      err,
		})
	}
	return v, err
}

func (s *Store) eval(ctx context.Context, verb, body string, keys []string, args []any) (any, error) {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, verb, body, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := noRetryCmd{redis.NewCmd(ctx, a...)}
	_ = s.client.Process(ctx, cmd)
	return cmd.Result()
}

func isNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
