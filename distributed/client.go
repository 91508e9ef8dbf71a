package distributed

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/internal/logs"
	"github.com/redis/go-redis/v9"
)

// ClientOptions returns a copy of opts (nil: empty options) with the
// settings a store's client should have when its calls have the time budget
// timeout (0 means [DefaultTimeout]). Fields the caller set are kept, except
// ContextTimeoutEnabled, which is always turned on:
//
//   - ContextTimeoutEnabled: true, so go-redis stops reading or writing a
//     socket at the call's deadline: a hung Redis costs a caller the
//     store's timeout, not the client's read timeout.
//   - PoolTimeout: timeout, so a caller waits no longer for a pooled
//     connection than for Redis itself.
//   - ReadTimeout and WriteTimeout: 4 × timeout (at least 1s), the backstop
//     for calls made without a deadline.
//   - DialTimeout: max(timeout, 500ms); DialerRetries: 1. The store's
//     prober retries, a dial loop inside go-redis would only hold callers.
//   - MaxRetries: -1 (none). The store's script commands are never retried
//     anyway; other commands sent through the client get no retry storm
//     either.
//
// Example:
//
//	rdb := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: addr}, 0))
//	store, err := distributed.New(rdb)
func ClientOptions(opts *redis.Options, timeout time.Duration) *redis.Options {
	o := &redis.Options{}
	if opts != nil {
		c := *opts
		o = &c
	}
	applySettings(timeout, settings{&o.ContextTimeoutEnabled, &o.PoolTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialTimeout, &o.DialerRetries, &o.MaxRetries})
	return o
}

// ClusterClientOptions is [ClientOptions] for a Redis Cluster client. It
// also sets ClusterStateReloadInterval to 5s when unset (go-redis's default
// is a minute), so the client learns a failed-over master's successor soon
// even without MOVED replies; a degraded store's prober also asks the client
// to reload after each failed probe.
func ClusterClientOptions(opts *redis.ClusterOptions, timeout time.Duration) *redis.ClusterOptions {
	o := &redis.ClusterOptions{}
	if opts != nil {
		c := *opts
		c.Addrs = append([]string(nil), opts.Addrs...)
		o = &c
	}
	applySettings(timeout, settings{&o.ContextTimeoutEnabled, &o.PoolTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialTimeout, &o.DialerRetries, &o.MaxRetries})
	setDuration(&o.ClusterStateReloadInterval, 5*time.Second)
	return o
}

// FailoverClientOptions is [ClientOptions] for a Sentinel-managed client
// (redis.NewFailoverClient). It also turns ReplicaOnly and RouteByLatency
// off: scripts write, so they must reach the master.
func FailoverClientOptions(opts *redis.FailoverOptions, timeout time.Duration) *redis.FailoverOptions {
	o := &redis.FailoverOptions{}
	if opts != nil {
		c := *opts
		c.SentinelAddrs = append([]string(nil), opts.SentinelAddrs...)
		o = &c
	}
	applySettings(timeout, settings{&o.ContextTimeoutEnabled, &o.PoolTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.DialTimeout, &o.DialerRetries, &o.MaxRetries})
	o.ReplicaOnly = false
	o.RouteByLatency = false
	o.RouteRandomly = false
	return o
}

// NewClient returns redis.NewClient(ClientOptions(opts, DefaultTimeout)):
// a client suited to a store with the default timeout.
func NewClient(opts *redis.Options) *redis.Client {
	return redis.NewClient(ClientOptions(opts, DefaultTimeout))
}

// NewClusterClient returns redis.NewClusterClient(ClusterClientOptions(opts,
// DefaultTimeout)).
func NewClusterClient(opts *redis.ClusterOptions) *redis.ClusterClient {
	return redis.NewClusterClient(ClusterClientOptions(opts, DefaultTimeout))
}

// settings points at the fields that ClientOptions, ClusterClientOptions
// and FailoverClientOptions set alike in their option types.
type settings struct {
	contextTimeout                                      *bool
	poolTimeout, readTimeout, writeTimeout, dialTimeout *time.Duration
	dialerRetries, maxRetries                           *int
}

// applySettings sets what a store's client needs for calls with the time
// budget timeout (see ClientOptions), keeping the durations and retry
// counts the caller set.
func applySettings(timeout time.Duration, o settings) {
	timeout = orDefault(timeout)
	*o.contextTimeout = true
	setDuration(o.poolTimeout, timeout)
	setDuration(o.readTimeout, max(4*timeout, time.Second))
	setDuration(o.writeTimeout, max(4*timeout, time.Second))
	setDuration(o.dialTimeout, max(timeout, 500*time.Millisecond))
	if *o.dialerRetries == 0 {
		*o.dialerRetries = 1
	}
	if *o.maxRetries == 0 {
		*o.maxRetries = -1
	}
}

func orDefault(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return DefaultTimeout
	}
	return timeout
}

func setDuration(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// RedisLogger routes go-redis's own log lines (a connection pool's "failed
// to dial" while Redis is away, one per dial: with a store's prober, one
// per probe interval per replica) into a *slog.Logger at one level,
// rate-limited: each distinct line is written at most once every 10s, the
// next one saying how many were dropped ("suppressed").
//
// go-redis has one logger for the whole process, so install it once, at
// start-up, for every client:
//
//	redis.SetLogger(distributed.NewRedisLogger(logger, slog.LevelDebug))
//
// A RedisLogger built with a nil logger writes nothing: it quiets
// go-redis altogether (as go-redis's logging.Disable does).
type RedisLogger struct {
	l     *logs.Logger
	level slog.Level
}

// NewRedisLogger returns a go-redis logger writing to l at level (see
// [RedisLogger]).
func NewRedisLogger(l *slog.Logger, level slog.Level) *RedisLogger {
	return &RedisLogger{l: logs.New(l), level: level}
}

// Printf writes one go-redis line; it implements go-redis's logging
// interface (redis.SetLogger).
func (r *RedisLogger) Printf(_ context.Context, format string, v ...any) {
	if r == nil || r.l == nil {
		return
	}
	r.l.Limited("go-redis:"+format, logs.Every, r.level, strings.TrimSpace(fmt.Sprintf(format, v...)), slog.String("source", "go-redis"))
}
