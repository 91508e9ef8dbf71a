package bulwark

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Sentinel errors. Match them with errors.Is; the errors returned by this
// module wrap them with detail.
var (
	// ErrRateLimited is returned by policies that turn a denied [Decision]
	// into an error. Errors carrying a wait time are [*RateLimitedError].
	ErrRateLimited = errors.New("bulwark: rate limited")
	// ErrOpen is returned by [Breaker.Allow] while the breaker rejects calls
	// (open, or half-open with every trial call taken).
	ErrOpen = errors.New("bulwark: circuit breaker is open")
	// ErrBulkheadFull is returned by [Bulkhead.Acquire] when no slot came
	// within the bulkhead's max wait, or the waiting queue was full.
	ErrBulkheadFull = errors.New("bulwark: bulkhead full")
	// ErrTimeout is returned when a call ran past its time budget.
	ErrTimeout = errors.New("bulwark: timeout")
	// ErrInvalidConfig is wrapped by every constructor error caused by a bad
	// configuration value.
	ErrInvalidConfig = errors.New("bulwark: invalid config")
	// ErrInvalidArgument is wrapped by errors caused by a bad argument to a
	// call, such as Allow with n < 1 or n above the limiter's capacity.
	ErrInvalidArgument = errors.New("bulwark: invalid argument")
)

// RateLimitedError is a denial turned into an error: it matches
// [ErrRateLimited] with errors.Is and carries how long to wait.
type RateLimitedError struct {
	// RetryAfter is how long to wait before the request can be admitted.
	RetryAfter time.Duration
	// Decision is the denied decision itself.
	Decision Decision
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("bulwark: rate limited, retry after %v", e.RetryAfter)
}

// Is reports whether target is [ErrRateLimited].
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// configError builds an error wrapping ErrInvalidConfig.
func configError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// isNil reports whether v is nil or a typed nil (a nil pointer, map,
// slice, channel or function held by an interface), which compares unequal
// to nil but fails on first use.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return r.IsNil()
	}
	return false
}

// argumentError builds an error wrapping ErrInvalidArgument.
func argumentError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
