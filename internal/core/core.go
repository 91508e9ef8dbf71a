package core

import (
	"fmt"
	"reflect"
	"time"

	"github.com/bulwark-go/bulwark"
)

// ConfigError returns an error wrapping [bulwark.ErrInvalidConfig] with a
// formatted message, so every configuration error reads the same way.
func ConfigError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{bulwark.ErrInvalidConfig}, args...)...)
}

// ArgumentError returns an error wrapping [bulwark.ErrInvalidArgument] with
// a formatted message.
func ArgumentError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{bulwark.ErrInvalidArgument}, args...)...)
}

// Emit sends e to o when o is not nil.
func Emit(o bulwark.Observer, e bulwark.Event) {
	if o != nil {
		o.Observe(e)
	}
}

// MaxSafeInteger is the largest integer a Lua number (an IEEE double) holds
// exactly. Limits are validated so that every intermediate value of the
// limiter arithmetic, in microseconds, stays below it on both the local and
// the Redis side.
const MaxSafeInteger = 1<<53 - 1

// Micros returns t as whole microseconds since the Unix epoch, rounded
// down. Both the local and the Redis implementations reason in these units,
// so their decisions agree field for field.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// NewTimer returns a timer from c when it is a [bulwark.TimerClock], and a
// real timer otherwise (also for a nil c).
func NewTimer(c bulwark.Clock, d time.Duration) bulwark.Timer {
	if tc, ok := c.(bulwark.TimerClock); ok {
		return tc.NewTimer(d)
	}
	return bulwark.SystemClock.(bulwark.TimerClock).NewTimer(d)
}

// IsNil reports whether v is nil or holds a nil pointer, map, slice,
// channel or function: a typed nil, such as a (*redis.Client)(nil) passed as
// an interface, which compares unequal to nil but fails on first use.
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return r.IsNil()
	}
	return false
}
