package local_test

import (
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

type ptrObserver struct{ n int }

func (o *ptrObserver) Observe(bulwark.Event) { o.n++ }

func TestConstructorsRejectTypedNilOptions(t *testing.T) {
	for name, o := range map[string]local.Option{
		"clock":    local.WithClock((*fakeclock.Clock)(nil)),
		"observer": local.WithObserver((*ptrObserver)(nil)),
	} {
		if _, err := local.NewTokenBucket(bulwark.PerSecond(1), o); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewTokenBucket with a typed nil %s: error = %v, want ErrInvalidConfig", name, err)
		}
		if _, err := local.NewBreaker(bulwark.DefaultBreakerConfig(), o); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewBreaker with a typed nil %s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}
