package redistest

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPrefixIsUniqueSafeAndCleanedUp(t *testing.T) {
	s := StartServer(t)
	c := s.Client(t)
	ctx := context.Background()

	var p1 string
	t.Run("sub test/with {braces} *and* spaces", func(t *testing.T) {
		p1 = Prefix(t, c)
		if p2 := Prefix(t, c); p2 == p1 {
			t.Fatalf("two Prefix calls returned %q", p1)
		}
		if !regexp.MustCompile(`^bwtest:[A-Za-z0-9_-]+:[0-9a-f]{8}:$`).MatchString(p1) {
			t.Fatalf("Prefix = %q: want bwtest:<name>:<hex>: with no glob or hash-tag characters", p1)
		}
		for i := range 2500 { // more than one SCAN batch
			if err := c.Set(ctx, p1+"k"+itoa(i), "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err := c.Set(ctx, "other", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The subtest's cleanup deleted its keys and only those.
	if keys := Keys(t, c, p1); len(keys) != 0 {
		t.Fatalf("%d keys left under %q after cleanup", len(keys), p1)
	}
	if n := c.Exists(ctx, "other").Val(); n != 1 {
		t.Fatal("Prefix cleanup deleted a key outside its prefix")
	}
}

func TestKeysEscapesGlob(t *testing.T) {
	s := StartServer(t)
	c := s.Client(t)
	ctx := context.Background()
	for _, k := range []string{"a*b:1", "a*b:2", "aXb:1", "a?[]\\:1"} {
		c.Set(ctx, k, "v", 0)
	}
	got := Keys(t, c, "a*b:")
	sort.Strings(got)
	if strings.Join(got, ",") != "a*b:1,a*b:2" {
		t.Fatalf("Keys(a*b:) = %q, want the two literal matches", got)
	}
	if got := Keys(t, c, "a?[]\\:"); len(got) != 1 {
		t.Fatalf("Keys(a?[]\\:) = %q, want one key", got)
	}
}

func TestCheckTTLs(t *testing.T) {
	s := StartServer(t)
	c := s.Client(t)
	ctx := context.Background()
	p := Prefix(t, c)

	c.Set(ctx, p+"ok", "v", 10*time.Second)
	c.Set(ctx, "unrelated-no-ttl", "v", 0)
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { CheckTTLs(tb, c, p, time.Minute) })
	if len(r.errors) != 0 {
		t.Fatalf("CheckTTLs on good keys reported %q", r.errors)
	}

	c.Set(ctx, p+"forever", "v", 0)
	c.Set(ctx, p+"long", "v", time.Hour)
	r = &recorder{TB: t}
	r.run(func(tb testing.TB) { CheckTTLs(tb, c, p, time.Minute) })
	msg := strings.Join(r.errors, "\n")
	if len(r.errors) != 2 || !strings.Contains(msg, p+"forever") || !strings.Contains(msg, "no TTL") ||
		!strings.Contains(msg, p+"long") || !strings.Contains(msg, "above the maximum") {
		t.Fatalf("CheckTTLs reported %q, want the key without TTL and the one with a too long TTL", r.errors)
	}
	if r.fatal {
		t.Fatal("CheckTTLs stopped the test; offending keys should be errors, not fatal")
	}
}

func TestCheckTTLsFailsOnRedisError(t *testing.T) {
	s := StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	s.Kill()
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { CheckTTLs(tb, c, "x:", time.Minute) })
	if !r.fatal {
		t.Fatalf("CheckTTLs against a dead server did not fail: %q", r.errors)
	}
}

func TestPrefixCleanupToleratesDeadServer(t *testing.T) {
	s := StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	r := &recorder{TB: t}
	t.Run("inner", func(t *testing.T) {
		r.TB = t
		Prefix(r, c)
		s.Kill()
	})
	if len(r.errors) != 0 {
		t.Fatalf("Prefix cleanup on a dead server reported failures %q; it should only log", r.errors)
	}
}
