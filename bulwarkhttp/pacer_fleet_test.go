package bulwarkhttp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

var _ PacerStore = (*distributed.PaceHolds)(nil)

// TestPacerSharesHoldsThroughTheStore: one replica learns that the quota
// is spent; another, which has sent nothing yet, holds its requests too.
func TestPacerSharesHoldsThroughTheStore(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	replica := func() *Pacer {
		s, err := distributed.New(c, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		holds, err := s.PaceHolds("upstream")
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPacer(PacerConfig{}, WithPacerStore(holds)) // MaxWait 0: refuse rather than wait
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := replica(), replica()
	ctx := context.Background()
	tk, err := a.Acquire(ctx, "api.example:443")
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(Quota{Refused: true, RetryAfter: 30 * time.Second})
	_, err = b.Acquire(ctx, "api.example:443")
	var rl *bulwark.RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("the other replica sent during the hold: %v", err)
	}
	if rl.RetryAfter < 25*time.Second || rl.RetryAfter > 30*time.Second {
		t.Errorf("RetryAfter = %v, want about 30s", rl.RetryAfter)
	}
	// Other hosts are not held.
	if _, err := b.Acquire(ctx, "other.example:443"); err != nil {
		t.Fatalf("unrelated host held: %v", err)
	}
}
