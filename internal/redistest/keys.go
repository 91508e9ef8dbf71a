package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAddr is the address of the machine's shared Redis that Default
// tries first.
const DefaultAddr = "127.0.0.1:6379"

// cleanupTimeout bounds the key deletion Prefix registers.
const cleanupTimeout = 10 * time.Second

// Default returns a client for tests that need "some Redis". It uses the
// server at EnvRedisAddr when that is set (failing the test if it does not
// answer), else the machine's Redis at DefaultAddr when it answers PING
// within 200ms, else a server started for the test with StartServer (which
// skips the test when there is no redis-server, see RequireServer). The client
// is a *redis.Client closed at the test's cleanup.
//
// The shared server is shared with every other test on the machine: always
// combine Default with Prefix, and never FLUSHDB, FLUSHALL, CONFIG SET or
// DEBUG on it. Tests that inject server faults start their own server.
func Default(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	addr := os.Getenv(EnvRedisAddr)
	if addr != "" {
		if err := ping(addr, 2*time.Second); err != nil {
			tb.Fatalf("redistest: %s=%s does not answer PING: %v", EnvRedisAddr, addr, err)
		}
	} else if ping(DefaultAddr, 200*time.Millisecond) == nil {
		addr = DefaultAddr
	}
	if addr == "" {
		return StartServer(tb).Client(tb)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key prefix of this test's own, "bwtest:<sanitized test
// name>:<8 random hex digits>:", so tests sharing a server (Default) never see
// each other's keys. The prefix holds only letters, digits, '_', '-' and ':',
// so it is safe in SCAN patterns and contains no Cluster hash tag. A cleanup
// deletes every key under the prefix (SCAN and UNLINK on every master of a
// cluster client); register it after the client so it runs before the client
// is closed, which is what Default, Server.Client and Cluster.Client followed
// by Prefix do. A failed deletion (for example the server was killed) is
// logged, not failed.
func Prefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	p := "bwtest:" + sanitize(tb.Name(), 60) + ":" + randomHex(4) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := deleteKeys(ctx, c, p); err != nil {
			tb.Logf("redistest: deleting keys under %q: %v", p, err)
		}
	})
	return p
}

// sanitize keeps letters, digits, '_' and '-' of s, replaces other bytes by
// '_' and cuts the result to n bytes.
func sanitize(s string, n int) string {
	b := []byte(s)
	if len(b) > n {
		b = b[:n]
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// globEscape escapes the SCAN MATCH metacharacters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// forEachMaster calls fn with a client for every node holding data: each
// master of a cluster client, each shard of a ring, or the client itself.
// fn may run concurrently for several nodes.
func forEachMaster(ctx context.Context, c redis.UniversalClient, fn func(ctx context.Context, node redis.Cmdable) error) error {
	switch cc := c.(type) {
	case *redis.ClusterClient:
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	case *redis.Ring:
		return cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	default:
		return fn(ctx, c)
	}
}

// scanKeys calls fn with each batch of keys on node matching prefix*.
func scanKeys(ctx context.Context, node redis.Cmdable, prefix string, fn func([]string) error) error {
	match := globEscape(prefix) + "*"
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// deleteKeys UNLINKs every key matching prefix*, one key per command so that
// keys in different cluster slots of one node are fine.
func deleteKeys(ctx context.Context, c redis.UniversalClient, prefix string) error {
	return forEachMaster(ctx, c, func(ctx context.Context, node redis.Cmdable) error {
		return scanKeys(ctx, node, prefix, func(keys []string) error {
			pipe := node.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			_, err := pipe.Exec(ctx)
			return err
		})
	})
}

// Keys returns every key matching prefix* (on every master of a cluster
// client), in no particular order; it fails the test on a Redis error. Use it
// to assert that idle state has expired: len(Keys(...)) == 0.
func Keys(tb testing.TB, c redis.UniversalClient, prefix string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var mu sync.Mutex
	var all []string
	err := forEachMaster(ctx, c, func(ctx context.Context, node redis.Cmdable) error {
		return scanKeys(ctx, node, prefix, func(keys []string) error {
			mu.Lock()
			all = append(all, keys...)
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		tb.Fatalf("redistest: scanning keys under %q: %v", prefix, err)
	}
	return all
}

// CheckTTLs checks the invariant that every key the library writes expires:
// each key matching prefix* (on every master of a cluster client) must have a
// TTL, and one no longer than max. Each offending key is reported with
// tb.Errorf (at most 20, then a count); a Redis error fails the test. Keys
// that expire during the scan are fine.
func CheckTTLs(tb testing.TB, c redis.UniversalClient, prefix string, max time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var mu sync.Mutex
	var bad []string
	err := forEachMaster(ctx, c, func(ctx context.Context, node redis.Cmdable) error {
		return scanKeys(ctx, node, prefix, func(keys []string) error {
			pipe := node.Pipeline()
			cmds := make([]*redis.Cmd, len(keys))
			for i, k := range keys {
				cmds[i] = pipe.Do(ctx, "PTTL", k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			for i, cmd := range cmds {
				ms, err := cmd.Int64()
				if err != nil {
					return fmt.Errorf("PTTL %q: %w", keys[i], err)
				}
				var msg string
				switch {
				case ms == -2: // expired or deleted since SCAN saw it
				case ms == -1:
					msg = fmt.Sprintf("key %q has no TTL (PTTL -1)", keys[i])
				case time.Duration(ms)*time.Millisecond > max:
					msg = fmt.Sprintf("key %q has TTL %v, above the maximum %v", keys[i], time.Duration(ms)*time.Millisecond, max)
				}
				if msg != "" {
					mu.Lock()
					bad = append(bad, msg)
					mu.Unlock()
				}
			}
			return nil
		})
	})
	if err != nil {
		tb.Fatalf("redistest: checking TTLs under %q: %v", prefix, err)
		return
	}
	for i, msg := range bad {
		if i == 20 {
			tb.Errorf("redistest: ... and %d more keys with a missing or too long TTL", len(bad)-i)
			break
		}
		tb.Errorf("redistest: %s", msg)
	}
}
