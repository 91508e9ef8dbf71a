package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pingTimeout bounds the PING that checks a Redis URL before a command
// uses it.
const pingTimeout = 3 * time.Second

// parseRedisURL parses a redis:// or rediss:// URL into client options. A
// URL that does not parse is a usage error naming what was wrong.
func parseRedisURL(raw string) (*redis.Options, error) {
	if raw == "" {
		return nil, usagef("--redis URL is required (for example redis://127.0.0.1:6379)")
	}
	if !strings.Contains(raw, "://") {
		return nil, usagef("bad --redis URL %q: want redis://host:port[/db] or rediss://host:port[/db]", raw)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, usagef("bad --redis URL %q: %v", raw, err)
	}
	return opt, nil
}

// connect parses raw, opens a client and checks with a PING (bounded by
// pingTimeout) that Redis answers. The caller closes the client.
func connect(ctx context.Context, raw string) (*redis.Client, error) {
	opt, err := parseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout = min(opt.DialTimeout, pingTimeout)
	opt.DialerRetries = 1
	client := redis.NewClient(opt)
	if err := ping(ctx, client, opt.Addr); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// ping checks that the server at addr answers within pingTimeout.
func ping(ctx context.Context, client redis.Cmdable, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("redis at %s is unreachable: no answer to PING within %v", addr, pingTimeout)
		}
		return fmt.Errorf("redis at %s is unreachable: %v", addr, err)
	}
	return nil
}
