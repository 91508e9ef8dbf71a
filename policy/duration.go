package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("500ms", "1m30s") or a number of seconds (0.5, 60), and writes as a Go
// duration string.
type Duration time.Duration

// D returns d as a *Duration, for building Specs in Go:
// Timeout: policy.D(2 * time.Second).
func D(d time.Duration) *Duration { v := Duration(d); return &v }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the Go duration string of d.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	got, err := parseDuration(v)
	if err != nil {
		return err
	}
	*d = got
	return nil
}

// ParseDuration reads a duration as Decode does: a Go duration string
// ("500ms"), a string holding a number of seconds ("1.5"), or a number of
// seconds of any Go numeric type or json.Number. Negative durations are
// returned as they are, for Validate to reject with the field's name.
func ParseDuration(v any) (Duration, error) { return parseDuration(v) }

func parseDuration(v any) (Duration, error) {
	switch x := v.(type) {
	case string:
		if d, err := time.ParseDuration(x); err == nil {
			return Duration(d), nil
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return secondsDuration(f)
		}
		return 0, fmt.Errorf("%q is not a duration (use a Go duration such as \"500ms\" or \"1m\", or a number of seconds)", x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of seconds", x.String())
		}
		return secondsDuration(f)
	case bool, nil, map[string]any, []any:
		return 0, fmt.Errorf("%s is not a duration (use a Go duration such as \"500ms\" or a number of seconds)", describe(v))
	}
	if f, ok := toFloat(v); ok {
		return secondsDuration(f)
	}
	return 0, fmt.Errorf("%s is not a duration", describe(v))
}

func secondsDuration(f float64) (Duration, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
		return 0, fmt.Errorf("%v seconds is out of range", f)
	}
	return Duration(math.Round(f * float64(time.Second))), nil
}
