package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/bulwark-go/bulwark"
)

// Problem is one thing wrong with a Spec.
type Problem struct {
	// Path is the dot-separated path of the field at fault from the Spec's
	// root, as spelled in JSON: "ratelimit.burst", "retry.statuses.1";
	// empty for the Spec itself.
	Path string
	// Message says what is wrong, in lower case, with the nearest valid key
	// for an unknown one.
	Message string
	// Key is true when the problem is the key at Path itself (an unknown
	// key), false when it is the key's value: a linter points at one or
	// the other.
	Key bool
}

// String returns "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error lists every problem found in a Spec. It wraps
// bulwark.ErrInvalidConfig.
type Error struct {
	Problems []Problem
}

// Error joins the problems, one per "; ".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(bulwark.ErrInvalidConfig.Error())
	b.WriteString(": ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns bulwark.ErrInvalidConfig.
func (e *Error) Unwrap() error { return bulwark.ErrInvalidConfig }

// asError returns nil for no problems, else an *Error.
func asError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// Problems returns the problems listed by err when it is (or wraps) an
// *Error, or one problem with err's text otherwise; nil for a nil err.
func Problems(err error) []Problem {
	if err == nil {
		return nil
	}
	var e *Error
	if ok := asErr(err, &e); ok {
		return e.Problems
	}
	return []Problem{{Message: err.Error()}}
}

// Decode reads a Spec from v, a decoded JSON or YAML object:
// map[string]any (as encoding/json and gopkg.in/yaml.v3 produce; json.Number
// values are accepted). Keys are the JSON names of Spec's fields.
// Durations are Go duration strings or numbers of seconds. It reports every
// problem at once: unknown keys (with the nearest valid key), values of the
// wrong type, non-integral counts. It does not check ranges or enumerations;
// [Spec.Validate] does, on the merged Spec. With the error it returns the
// fields that did decode, so that a linter can check them further.
func Decode(v any) (Spec, error) {
	var s Spec
	var ps []Problem
	decodeStruct(v, reflect.ValueOf(&s).Elem(), "", &ps)
	return s, asError(ps)
}

// Parse reads a Spec from JSON, as Decode does.
func Parse(data []byte) (Spec, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return Spec{}, fmt.Errorf("%w: %v", bulwark.ErrInvalidConfig, err)
	}
	if d.More() {
		return Spec{}, fmt.Errorf("%w: data after the JSON object", bulwark.ErrInvalidConfig)
	}
	return Decode(v)
}

// UnmarshalJSON reads a Spec as Parse does, so unknown keys are errors.
func (s *Spec) UnmarshalJSON(data []byte) error {
	got, err := Parse(data)
	if err != nil {
		return err
	}
	*s = got
	return nil
}

// Keys returns the valid keys of the Spec object at path ("" for the root,
// "ratelimit", "ratelimit.backpressure", ...), sorted; nil when path names
// no object.
func Keys(path string) []string {
	t := reflect.TypeFor[Spec]()
	if path != "" {
		for _, part := range strings.Split(path, ".") {
			f, ok := fieldByTag(t, part)
			if !ok {
				return nil
			}
			t = f.Type
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Struct || t == reflect.TypeFor[Duration]() {
				return nil
			}
		}
	}
	return tagNames(t)
}

var durationType = reflect.TypeFor[Duration]()

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func toMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	return nil, false
}

func decodeStruct(v any, dst reflect.Value, path string, ps *[]Problem) {
	m, ok := toMap(v)
	if !ok {
		*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf("must be an object, got %s", describe(v))})
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t := dst.Type()
	for _, k := range keys {
		p := join(path, k)
		f, ok := fieldByTag(t, k)
		if !ok {
			msg := fmt.Sprintf("unknown key %q", k)
			if s := Suggest(k, tagNames(t)); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			*ps = append(*ps, Problem{Path: p, Message: msg, Key: true})
			continue
		}
		decodeField(m[k], dst.FieldByIndex(f.Index), p, ps)
	}
}

func decodeField(v any, dst reflect.Value, path string, ps *[]Problem) {
	bad := func(format string, args ...any) {
		*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	t := dst.Type()
	if t.Kind() == reflect.Pointer {
		if v == nil {
			bad("must not be null")
			return
		}
		nv := reflect.New(t.Elem())
		n := len(*ps)
		decodeField(v, nv.Elem(), path, ps)
		if len(*ps) == n {
			dst.Set(nv)
		}
		return
	}
	switch {
	case t == durationType:
		d, err := parseDuration(v)
		if err != nil {
			bad("%v", err)
			return
		}
		dst.SetInt(int64(d))
	case t.Kind() == reflect.Struct:
		decodeStruct(v, dst, path, ps)
	case t.Kind() == reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			bad("must be true or false, got %s", describe(v))
			return
		}
		dst.SetBool(b)
	case t.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			bad("must be a string, got %s", describe(v))
			return
		}
		dst.SetString(s)
	case t.Kind() == reflect.Int:
		f, ok := toFloat(v)
		if !ok {
			bad("must be a whole number, got %s", describe(v))
			return
		}
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			bad("must be a whole number, got %v", f)
			return
		}
		dst.SetInt(int64(f))
	case t.Kind() == reflect.Float64:
		f, ok := toFloat(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			bad("must be a number, got %s", describe(v))
			return
		}
		dst.SetFloat(f)
	case t.Kind() == reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			bad("must be a list, got %s", describe(v))
			return
		}
		out := reflect.MakeSlice(t, len(list), len(list))
		for i, x := range list {
			decodeField(x, out.Index(i), join(path, fmt.Sprint(i)), ps)
		}
		dst.Set(out)
	}
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case map[string]any, map[any]any:
		return "an object"
	case []any:
		return "a list"
	}
	if f, ok := toFloat(v); ok {
		return fmt.Sprintf("the number %v", f)
	}
	return fmt.Sprintf("a %T", v)
}
