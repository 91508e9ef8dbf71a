package distributed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestPaceHolds(t *testing.T) {
	s, c, prefix := testStore(t, nil)
	ctx := context.Background()
	h, err := s.PaceHolds("api")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := h.HeldUntil(ctx, "host:443"); err != nil || !got.IsZero() {
		t.Fatalf("fresh hold = %v, %v; want none", got, err)
	}
	until := time.Now().Add(3 * time.Second).Truncate(time.Microsecond)
	if err := h.Hold(ctx, "host:443", until); err != nil {
		t.Fatal(err)
	}
	// An earlier hold does not shorten it; a past one is not written.
	if err := h.Hold(ctx, "host:443", until.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := h.Hold(ctx, "host:443", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := h.HeldUntil(ctx, "host:443"); err != nil || !got.Equal(until) {
		t.Fatalf("hold = %v, %v; want %v", got, err, until)
	}
	// Another handle on the same name sees it.
	other, err := s.PaceHolds("api")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := other.HeldUntil(ctx, "host:443"); !got.Equal(until) {
		t.Fatalf("other handle sees %v, want %v", got, until)
	}
	// Keys of every shape live in the prefix with a TTL no longer than
	// the hold.
	for _, k := range hostileKeys() {
		if err := h.Hold(ctx, k, until); err != nil {
			t.Fatalf("hold %q: %v", k, err)
		}
		if got, err := h.HeldUntil(ctx, k); err != nil || !got.Equal(until) {
			t.Fatalf("key %q: %v, %v", k, got, err)
		}
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(hostileKeys())+1 {
		t.Errorf("%d keys under the prefix, want %d", len(keys), len(hostileKeys())+1)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 3*time.Second+time.Millisecond {
			t.Errorf("key %q: TTL %v (%v), want within the hold", k, ttl, err)
		}
	}
	if _, err := s.PaceHolds(""); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("empty name: %v", err)
	}
}
