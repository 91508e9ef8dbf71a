package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		srv := StartRedis(t, WithBackend(b), WithArgs("--maxmemory", "5mb"))
		if srv.Backend() != b {
			t.Fatalf("Backend() = %v, want %v", srv.Backend(), b)
		}
		ctx := context.Background()
		c := srv.Client(t)
		if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
			t.Fatalf("GET k = %q, %v; want v", got, err)
		}
		if got := srv.Do(t, "CONFIG", "GET", "maxmemory"); fmt.Sprint(got) != "map[maxmemory:5242880]" {
			t.Fatalf("CONFIG GET maxmemory = %v, want 5242880 (WithArgs)", got)
		}

		srv.Pause()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := srv.Exec(short, "PING")
		cancel()
		if err == nil {
			t.Fatal("PING answered while the server was paused")
		}
		srv.Resume()
		if got := srv.Do(t, "PING"); got != "PONG" {
			t.Fatalf("PING after Resume = %v", got)
		}

		srv.Kill()
		if srv.Running() {
			t.Fatal("Running() after Kill")
		}
		if _, err := srv.Exec(ctx, "PING"); err == nil {
			t.Fatal("PING answered after Kill")
		}
		srv.Restart()
		if got, err := c.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET k after Restart = %q, %v; want an empty data set", got, err)
		}
	})
}

func TestCluster(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		c := StartCluster(t, WithBackend(b))
		if got := len(c.Masters()); got != 3 {
			t.Fatalf("%d masters, want 3", got)
		}
		if len(c.Nodes()) != 3 || len(c.Addrs()) != 3 {
			t.Fatalf("Nodes() = %d, Addrs() = %d; want 3 each", len(c.Nodes()), len(c.Addrs()))
		}
		ctx := context.Background()
		cc := c.Client(t)
		owners := map[string]bool{}
		for i := range 30 {
			key := fmt.Sprintf("k%d", i)
			if err := cc.Set(ctx, key, i, time.Minute).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
			owner := c.MasterFor(key)
			if owner == nil {
				t.Fatalf("MasterFor(%s) = nil", key)
			}
			owners[owner.Addr()] = true
			// The key lives on the master MasterFor names.
			if n := owner.Do(t, "EXISTS", key); n != int64(1) {
				t.Fatalf("EXISTS %s on %s = %v, want 1", key, owner.Addr(), n)
			}
		}
		if len(owners) != 3 {
			t.Fatalf("30 keys landed on %d masters, want all 3", len(owners))
		}
	})
}

func TestClusterFaultOnOneNode(t *testing.T) {
	eachBackend(t, testClusterFaultOnOneNode)
}

func testClusterFaultOnOneNode(t *testing.T, b Backend) {
	c := StartCluster(t, WithBackend(b))
	proxies := c.Proxies(t)
	cc := c.Client(t, ViaProxies(proxies...), func(o *redis.ClusterOptions) {
		o.ReadTimeout, o.WriteTimeout, o.MaxRetries = 200*time.Millisecond, 200*time.Millisecond, -1
	})
	ctx := context.Background()
	key := "fault-key"
	owner := c.MasterFor(key)
	var proxy *Proxy
	for i, n := range c.Nodes() {
		if n == owner {
			proxy = proxies[i]
		}
	}
	if err := cc.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze()
	if err := cc.Get(ctx, key).Err(); err == nil {
		t.Fatal("GET through a frozen node's proxy answered")
	}
	proxy.Heal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := cc.Get(ctx, key).Result()
		if err == nil && got == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET after Heal = %q, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSentinel(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		s := StartSentinel(t, WithBackend(b))
		if len(s.Sentinels()) != 3 || len(s.SentinelAddrs()) != 3 || len(s.Replicas()) != 1 {
			t.Fatalf("%d sentinels, %d addresses, %d replicas; want 3, 3, 1", len(s.Sentinels()), len(s.SentinelAddrs()), len(s.Replicas()))
		}
		ctx := context.Background()
		c := s.Client(t)
		if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		old := s.Master()
		now := s.Failover(t)
		if now == nil || now.Addr() == old.Addr() {
			t.Fatalf("Failover: master %v, was %s", now, old.Addr())
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := c.Set(ctx, "k2", "v", time.Minute).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("SET through the failover client after the failover: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := now.Do(t, "GET", "k2"); got != "v" {
			t.Fatalf("GET k2 on the new master = %v, want v", got)
		}
	})
}
