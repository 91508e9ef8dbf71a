// Package exredis gives the example programs a Redis: the one named by the
// REDIS_URL environment variable, or an embedded one (miniredis) so that
// every example runs on a fresh machine with nothing installed.
package exredis

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"
)

// EnvURL names the environment variable holding a Redis URL
// (redis://host:port[/db]).
const EnvURL = "REDIS_URL"

// Redis is a client and a description of the server it talks to.
type Redis struct {
	Client *redis.Client
	Where  string // "embedded Redis (miniredis)" or "Redis at host:port"
	opt    func() *redis.Options
	mr     *miniredis.Miniredis
	opened []io.Closer // by NewClient and Stores, closed by Close
}

// Prefix returns a key prefix for one run of the example name
// ("example-name-<nanoseconds>"), so runs sharing a Redis never see each
// other's keys.
func Prefix(name string) string {
	return fmt.Sprintf("example-%s-%d", name, time.Now().UnixNano())
}

// Open connects to $REDIS_URL, checking it answers PING within two
// seconds, or starts an embedded Redis when the variable is empty.
func Open(ctx context.Context) (*Redis, error) {
	if url := os.Getenv(EnvURL); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvURL, url, err)
		}
		c := redis.NewClient(opt)
		reparse := func() *redis.Options { o, _ := redis.ParseURL(url); return o }
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := c.Ping(pctx).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis at %s does not answer: %w", opt.Addr, err)
		}
		return &Redis{Client: c, Where: "Redis at " + opt.Addr, opt: reparse}, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, err
	}
	opt := func() *redis.Options { return &redis.Options{Addr: mr.Addr()} }
	return &Redis{Client: redis.NewClient(opt()), Where: "embedded Redis (miniredis)", opt: opt, mr: mr}, nil
}

// NewClient opens another client to the same server: one per simulated
// replica, as separate processes would have. Close closes it.
func (r *Redis) NewClient() *redis.Client {
	c := redis.NewClient(r.opt())
	r.opened = append(r.opened, c)
	return c
}

// Stores builds n distributed stores with opts, each over a client of its
// own (NewClient), as n replicas of a service would have. Close closes
// them. The stores' round-trip budget is 500ms unless opts say otherwise:
// the examples show the patterns, not a fault, and a loaded machine must
// not turn them degraded.
func (r *Redis) Stores(n int, opts ...distributed.Option) ([]*distributed.Store, error) {
	stores := make([]*distributed.Store, n)
	opts = append([]distributed.Option{distributed.WithTimeout(500 * time.Millisecond)}, opts...)
	for i := range stores {
		st, err := distributed.New(r.NewClient(), opts...)
		if err != nil {
			return nil, err
		}
		r.opened = append(r.opened, st)
		stores[i] = st
	}
	return stores, nil
}

// Close closes what NewClient and Stores opened, latest first (a store
// before its client), then the client, and stops the embedded server, if
// any.
func (r *Redis) Close() {
	for i := len(r.opened) - 1; i >= 0; i-- {
		r.opened[i].Close()
	}
	r.Client.Close()
	if r.mr != nil {
		r.mr.Close()
	}
}
