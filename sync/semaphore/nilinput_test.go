package semaphore

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

type countingObserver struct{ n int }

func (o *countingObserver) Observe(bulwark.Event) { o.n++ }

func TestNewRejectsTypedNilInput(t *testing.T) {
	if w, err := New((*redis.Client)(nil), "s", 1); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("New((*redis.Client)(nil)) = %v, %v; want an error wrapping ErrInvalidConfig", w, err)
	}
	if w, err := New((*redis.ClusterClient)(nil), "s", 1); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("New((*redis.ClusterClient)(nil)) = %v, %v; want an error wrapping ErrInvalidConfig", w, err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	defer c.Close()
	if _, err := New(c, "s", 1, WithClock((*fakeclock.Clock)(nil))); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("New(WithClock(typed nil)) error = %v, want ErrInvalidConfig", err)
	}
	if _, err := New(c, "s", 1, WithObserver((*countingObserver)(nil))); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("New(WithObserver(typed nil)) error = %v, want ErrInvalidConfig", err)
	}
}
