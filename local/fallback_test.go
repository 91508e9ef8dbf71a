package local

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/bulwark-go/bulwark"
)

var errNotFound = errors.New("not found")

func TestFallbackValue(t *testing.T) {
	obs := &policyEvents{}
	fb, err := NewFallback([]FallbackStep[string]{FallbackValue("stale")}, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	v, err := bulwark.Do(context.Background(), func(context.Context) (string, error) { return "", errTransient }, fb)
	if v != "stale" || err != nil {
		t.Fatalf("Run = %q, %v; want stale, nil", v, err)
	}
	v, err = bulwark.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil }, fb)
	if v != "fresh" || err != nil {
		t.Fatalf("Run = %q, %v; want fresh, nil", v, err)
	}
	evs := obs.of(bulwark.EventFallback)
	if len(evs) != 1 || !errors.Is(evs[0].Err, errTransient) || evs[0].Pattern != "fallback" {
		t.Fatalf("fallback events = %+v", evs)
	}
}

func TestFallbackChainChosenByPredicate(t *testing.T) {
	var seen []error
	fb, err := NewFallback([]FallbackStep[string]{
		{When: func(err error) bool { return errors.Is(err, errNotFound) }, Value: "default"},
		{Func: func(ctx context.Context, err error) (string, error) {
			seen = append(seen, err)
			return "", errors.New("secondary down")
		}},
		{When: func(err error) bool { return err.Error() == "secondary down" }, Func: func(ctx context.Context, err error) (string, error) {
			return "from cache", nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := bulwark.Do(context.Background(), func(context.Context) (string, error) {
		return "", &wrapErr{errNotFound}
	}, fb)
	if v != "default" || err != nil || len(seen) != 0 {
		t.Fatalf("not found: %q, %v (secondary called %d times); want default", v, err, len(seen))
	}
	v, err = bulwark.Do(context.Background(), func(context.Context) (string, error) { return "", errTransient }, fb)
	if v != "from cache" || err != nil || len(seen) != 1 || !errors.Is(seen[0], errTransient) {
		t.Fatalf("chain: %q, %v, secondary saw %v; want from cache", v, err, seen)
	}
}

func TestFallbackChainFails(t *testing.T) {
	down := errors.New("secondary down")
	fb, _ := NewFallback([]FallbackStep[int]{
		FallbackFunc(func(ctx context.Context, err error) (int, error) { return 0, down }),
		{When: func(err error) bool { return errors.Is(err, errNotFound) }, Value: 1},
	})
	_, err := bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, errTransient }, fb)
	if !errors.Is(err, errTransient) || !errors.Is(err, down) {
		t.Fatalf("err = %v, want both the call's and the fallback's error", err)
	}
	none, _ := NewFallback([]FallbackStep[int]{{When: func(error) bool { return false }, Value: 1}})
	_, err = bulwark.Do(context.Background(), func(context.Context) (int, error) { return 0, errTransient }, none)
	if err != errTransient {
		t.Fatalf("err = %v, want the call's error untouched", err)
	}
}

func TestFallbackConfig(t *testing.T) {
	if _, err := NewFallback[int](nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("no steps: %v", err)
	}
	fb, _ := NewFallback([]FallbackStep[int]{FallbackValue(1)})
	if _, err := bulwark.Compose[string](fb); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Fallback[int] in Compose[string]: %v", err)
	}
	// Used by hand with a mismatched Next, it keeps the error and says why.
	err := fb.Run(context.Background(), bulwark.Next{})
	if !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("err = %v", err)
	}
}

func ExampleNewFallback() {
	fb, _ := NewFallback([]FallbackStep[string]{
		{When: func(err error) bool { return errors.Is(err, errNotFound) }, Value: "guest"},
		FallbackValue("unknown"),
	})
	for _, cause := range []error{errNotFound, errTransient} {
		v, err := bulwark.Do(context.Background(), func(context.Context) (string, error) { return "", cause }, fb)
		fmt.Println(v, err)
	}
	// Output:
	// guest <nil>
	// unknown <nil>
}
