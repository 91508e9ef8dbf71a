package distributed

import (
	"time"

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
	timeout = orDefault(timeout)
	o.ContextTimeoutEnabled = true
	setDuration(&o.PoolTimeout, timeout)
	setDuration(&o.ReadTimeout, max(4*timeout, time.Second))
	setDuration(&o.WriteTimeout, max(4*timeout, time.Second))
	setDuration(&o.DialTimeout, max(timeout, 500*time.Millisecond))
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
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
	timeout = orDefault(timeout)
	o.ContextTimeoutEnabled = true
	setDuration(&o.PoolTimeout, timeout)
	setDuration(&o.ReadTimeout, max(4*timeout, time.Second))
	setDuration(&o.WriteTimeout, max(4*timeout, time.Second))
	setDuration(&o.DialTimeout, max(timeout, 500*time.Millisecond))
	setDuration(&o.ClusterStateReloadInterval, 5*time.Second)
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
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
	timeout = orDefault(timeout)
	o.ContextTimeoutEnabled = true
	o.ReplicaOnly = false
	o.RouteByLatency = false
	o.RouteRandomly = false
	setDuration(&o.PoolTimeout, timeout)
	setDuration(&o.ReadTimeout, max(4*timeout, time.Second))
	setDuration(&o.WriteTimeout, max(4*timeout, time.Second))
	setDuration(&o.DialTimeout, max(timeout, 500*time.Millisecond))
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
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
