package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestJoinRejectsBadConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	if _, err := cluster.Join(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Join(nil) error = %v, want ErrInvalidConfig", err)
	}
	bad := map[string]cluster.Option{
		"empty prefix":        cluster.WithPrefix(""),
		"brace in prefix":     cluster.WithPrefix("a{"),
		"glob in group":       cluster.WithGroup("g*"),
		"space in group":      cluster.WithGroup("a b"),
		"long id":             cluster.WithID(strings.Repeat("x", 257)),
		"tiny TTL":            cluster.WithTTL(time.Millisecond),
		"interval above TTL":  cluster.WithHeartbeatInterval(time.Hour),
		"negative interval":   cluster.WithHeartbeatInterval(-time.Second),
		"zero timeout":        cluster.WithTimeout(-1),
		"interval equals TTL": func() cluster.Option { return cluster.WithHeartbeatInterval(cluster.DefaultTTL) }(),
	}
	for name, opt := range bad {
		if m, err := cluster.Join(c, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
			if m != nil {
				_ = m.Close()
			}
		}
	}
}

// join starts a member on c with a fake clock whose timers never fire
// unless the test advances them, so only the first heartbeat and the test's
// own calls run.
func join(t *testing.T, c redis.UniversalClient, prefix string, clk *fakeclock.Clock, opts ...cluster.Option) *cluster.Membership {
	t.Helper()
	m, err := cluster.Join(c, append([]cluster.Option{
		cluster.WithPrefix(prefix), cluster.WithClock(clk), cluster.WithTTL(10 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func heartbeat(t *testing.T, m *cluster.Membership) int {
	t.Helper()
	n, err := m.Heartbeat(context.Background())
	if err != nil {
		t.Fatalf("heartbeat of %s: %v", m.ID(), err)
	}
	if got := m.Replicas(); got != n {
		t.Errorf("Replicas() = %d after a heartbeat counting %d", got, n)
	}
	return n
}

// TestMembershipCount: three members count three; one that stops
// heartbeating drops out once its TTL passed; one that leaves drops out at
// once.
func TestMembershipCount(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	clk := fakeclock.New(fakeclock.Epoch)
	a := join(t, c, prefix, clk)
	b := join(t, c, prefix, clk)

	// The crashing member has a client of its own, closed to stop it.
	cc := redistest.Default(t)
	crash := join(t, cc, prefix, clk)
	for _, m := range []*cluster.Membership{a, b, crash} {
		heartbeat(t, m)
	}
	if n := heartbeat(t, a); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
	if a.ID() == b.ID() || len(a.ID()) != 32 {
		t.Errorf("ids %q, %q: want distinct 128-bit hex ids", a.ID(), b.ID())
	}
	_ = cc.Close()
	if _, err := crash.Heartbeat(context.Background()); err == nil {
		t.Fatal("heartbeat on a closed client succeeded")
	}
	if got := crash.Replicas(); got != 3 {
		t.Errorf("a failed heartbeat changed the last known count to %d, want 3", got)
	}

	// Within the TTL the silent member still counts; after it, not.
	clk.Advance(9 * time.Second)
	heartbeat(t, b)
	if n := heartbeat(t, a); n != 3 {
		t.Errorf("count %d 9s after the crash (TTL 10s), want 3", n)
	}
	clk.Advance(2 * time.Second)
	if n := heartbeat(t, a); n != 2 {
		t.Errorf("count %d 11s after the crash (TTL 10s), want 2", n)
	}
	ttl, err := c.PTTL(context.Background(), a.Key()).Result()
	if err != nil || ttl <= 0 || ttl > 10*time.Second {
		t.Errorf("member set PTTL %v, %v; want (0, 10s]", ttl, err)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := heartbeat(t, a); n != 1 {
		t.Errorf("count %d after a member left, want 1", n)
	}
	if b.Replicas() != 0 {
		t.Errorf("closed member reports %d replicas, want 0", b.Replicas())
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestMembershipGroups: groups under one prefix count apart, and the key
// keeps its one hash tag.
func TestMembershipGroups(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	clk := fakeclock.New(fakeclock.Epoch)
	a := join(t, c, prefix, clk, cluster.WithGroup("api"))
	b := join(t, c, prefix, clk, cluster.WithGroup("worker"), cluster.WithID("w-1"))
	heartbeat(t, b)
	if n := heartbeat(t, a); n != 1 {
		t.Errorf("group api counts %d, want 1", n)
	}
	if b.ID() != "w-1" {
		t.Errorf("ID() = %q, want w-1", b.ID())
	}
	if want := prefix + ":members:{api}"; a.Key() != want {
		t.Errorf("Key() = %q, want %q", a.Key(), want)
	}
}

// TestMembershipHeartbeatLoop: the background loop heartbeats on its
// clock's timers.
func TestMembershipHeartbeatLoop(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	clk := fakeclock.New(fakeclock.Epoch)
	a := join(t, c, prefix, clk, cluster.WithHeartbeatInterval(time.Second))
	clk.WaitTimers(1) // the first heartbeat ran; the loop waits for the next
	if a.Replicas() != 1 {
		t.Fatalf("Replicas() = %d after the first heartbeat, want 1", a.Replicas())
	}
	b := join(t, c, prefix, clk, cluster.WithHeartbeatInterval(time.Second))
	clk.WaitTimers(2)
	clk.Advance(time.Second) // both loops heartbeat again
	clk.WaitTimers(2)
	if a.Replicas() != 2 || b.Replicas() != 2 {
		t.Errorf("Replicas() = %d, %d after a round of heartbeats, want 2, 2", a.Replicas(), b.Replicas())
	}
}

// TestMembershipShare: a store counting replicas with a membership gives a
// degraded limiter its share of the limit.
func TestMembershipShare(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	clk := fakeclock.New(fakeclock.Epoch)
	var ms []*cluster.Membership
	for range 3 {
		ms = append(ms, join(t, c, prefix, clk))
	}
	for _, m := range ms {
		heartbeat(t, m)
	}
	heartbeat(t, ms[0])
	// A client that cannot reach Redis: every call fails, the store degrades.
	dead := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: "127.0.0.1:1"}, 0))
	t.Cleanup(func() { _ = dead.Close() })
	s, err := distributed.New(dead, distributed.WithPrefix(prefix), distributed.WithClock(clk),
		distributed.WithReplicaCounter(ms[0]), distributed.WithReplicas(7), distributed.WithFailureThreshold(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	tb, err := s.TokenBucket("shared", bulwark.Limit{Events: 30, Period: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for range 40 {
		d, err := tb.Allow(context.Background(), "k", 1)
		if err != nil || !d.Degraded {
			t.Fatalf("decision %+v, %v; want a degraded one", d, err)
		}
		if d.Limit != 10 {
			t.Fatalf("degraded Limit %d, want the share 30/3 = 10", d.Limit)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 10 {
		t.Errorf("admitted %d, want 10 (a third of 30)", admitted)
	}
}
