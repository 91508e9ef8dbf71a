package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

// TestInspect fills a real Redis with the keys of every kind of primitive
// under one prefix, then checks what inspect reports, both as data and as
// the command's output.
func TestInspect(t *testing.T) {
	ctx := context.Background()
	client := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, client), ":")
	store, err := distributed.New(client, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	allow := func(l bulwark.Limiter, keys ...string) {
		t.Helper()
		for _, k := range keys {
			d, err := l.Allow(ctx, k, 1)
			if err != nil || !d.Allowed || d.Degraded {
				t.Fatalf("Allow(%q) = %+v, %v; want an allowed decision from Redis", k, d, err)
			}
		}
	}
	limit := bulwark.PerMinute(10)
	tb, _ := store.TokenBucket("per-user", limit)
	allow(tb, "alice", "bob", "carol")
	fw, _ := store.FixedWindow("login", limit)
	allow(fw, "10.0.0.1")
	sw, _ := store.SlidingWindow("search", limit)
	allow(sw, "a", "b")
	sl, _ := store.SlidingLog("export", limit)
	allow(sl, "x")
	odd, _ := store.TokenBucket("odd {name}", limit) // encoded in the key
	allow(odd, "k")
	long, _ := store.TokenBucket(strings.Repeat("n", 80), limit) // hashed in the key
	allow(long, "k")
	multi, err := store.Multi("api", distributed.NamedLimit{Name: "second", Limit: bulwark.PerSecond(5)},
		distributed.NamedLimit{Name: "day", Limit: bulwark.Limit{Events: 1000, Period: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	allow(multi, "tenant-1", "tenant-2")

	sem, err := semaphore.New(client, "payments", 5, semaphore.WithPrefix(prefix+":"))
	if err != nil {
		t.Fatal(err)
	}
	defer sem.Close()
	l1, err := sem.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Release(ctx)
	l2, err := sem.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release(ctx)
	idle, err := semaphore.New(client, "idle", 1, semaphore.WithPrefix(prefix+":"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	l3, err := idle.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l3.Release(ctx); err != nil {
		t.Fatal(err)
	}
	members, err := cluster.Join(client, cluster.WithPrefix(prefix), cluster.WithGroup("checkout"))
	if err != nil {
		t.Fatal(err)
	}
	defer members.Close()
	if n, err := members.Heartbeat(ctx); err != nil || n != 1 {
		t.Fatalf("Heartbeat = %d, %v; want 1 member", n, err)
	}
	if err := client.Set(ctx, prefix+":something-else", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	rep, err := inspect(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	wantLimiters := []limiterInfo{
		{Algorithm: "fixed window", Name: "login", Keys: 1},
		{Algorithm: "sliding log", Name: "export", Keys: 1},
		{Algorithm: "sliding window", Name: "search", Keys: 2},
		{Algorithm: "token bucket", Name: `"odd {name}"`, Keys: 1},
		{Algorithm: "token bucket", Name: "(hashed " + hashedHead(strings.Repeat("n", 80)) + "…)", Keys: 1},
		{Algorithm: "token bucket", Name: "api/day", Multi: true, Keys: 2},
		{Algorithm: "token bucket", Name: "api/second", Multi: true, Keys: 2},
		{Algorithm: "token bucket", Name: "per-user", Keys: 3},
	}
	if len(rep.Limiters) != len(wantLimiters) {
		t.Fatalf("limiters = %+v, want %+v", rep.Limiters, wantLimiters)
	}
	for i, got := range rep.Limiters {
		if got != wantLimiters[i] {
			t.Errorf("limiter %d = %+v, want %+v", i, got, wantLimiters[i])
		}
	}
	wantSems := []semaphoreInfo{{Name: "idle"}, {Name: "payments", Leases: 2, Slots: 3}}
	if len(rep.Semaphores) != 2 || rep.Semaphores[0] != wantSems[0] || rep.Semaphores[1] != wantSems[1] {
		t.Errorf("semaphores = %+v, want %+v", rep.Semaphores, wantSems)
	}
	if len(rep.Groups) != 1 || rep.Groups[0] != (groupInfo{Name: "checkout", Live: 1}) {
		t.Errorf("groups = %+v, want [{checkout 1}]", rep.Groups)
	}
	if len(rep.Other) != 1 || rep.Other[0] != prefix+":something-else" {
		t.Errorf("other keys = %q, want [%s:something-else]", rep.Other, prefix)
	}

	addr := client.(*redis.Client).Options().Addr
	code, out, errOut := runCLI(t, "inspect", "--redis", "redis://"+addr, "--prefix", prefix)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"LIMITERS (8)",
		"token bucket          per-user",
		"token bucket (multi)  api/day",
		"BULKHEADS AND SEMAPHORES (2)",
		"payments  2            3",
		"REPLICA GROUPS (1)",
		"OTHER KEYS (1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Another prefix sees none of it.
	code, out, _ = runCLI(t, "inspect", "--redis", "redis://"+addr, "--prefix", prefix+"-other")
	if code != exitOK || !strings.Contains(out, "LIMITERS (0)") || !strings.Contains(out, "BULKHEADS AND SEMAPHORES (0)") {
		t.Errorf("inspect of an empty prefix: exit %d, output:\n%s", code, out)
	}
}

// hashedHead is the start of the hashed form of a long name in a key
// (base64url of its SHA-256), as inspect shows it.
func hashedHead(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:12]
}
