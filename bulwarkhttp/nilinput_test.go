package bulwarkhttp_test

import (
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

type ptrObserver struct{ n int }

func (o *ptrObserver) Observe(bulwark.Event) { o.n++ }

func TestConstructorsRejectTypedNils(t *testing.T) {
	var tb *local.TokenBucket
	if _, err := bulwarkhttp.Limit(tb); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Limit(typed nil limiter) error = %v, want ErrInvalidConfig", err)
	}
	var br *local.Breaker
	if _, err := bulwarkhttp.Breaker(br); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Breaker(typed nil) error = %v, want ErrInvalidConfig", err)
	}
	var bh *local.Bulkhead
	if _, err := bulwarkhttp.Bulkhead(bh); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Bulkhead(typed nil) error = %v, want ErrInvalidConfig", err)
	}
	good, err := local.NewTokenBucket(bulwark.PerSecond(1))
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]bulwarkhttp.Option{
		"observer": bulwarkhttp.WithObserver((*ptrObserver)(nil)),
		"clock":    bulwarkhttp.WithClock((*fakeclock.Clock)(nil)),
	} {
		if _, err := bulwarkhttp.Limit(good, o); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("Limit with a typed nil %s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}
