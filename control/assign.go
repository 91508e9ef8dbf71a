package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/policy"
)

// Assignment is one field change of a live value: "ratelimit.limit=50".
type Assignment struct {
	// Path is the field, as spelled in a Spec's JSON with dots between
	// blocks: "ratelimit.limit", "circuitbreaker.force", "timeout".
	Path string
	// Value is the new value as JSON (50, true, "2s", [502,503]); nil
	// removes the field from the live value, so the default applies again.
	Value json.RawMessage
}

// ParseAssignment reads "path=value". The value is taken as JSON when it
// is a number, true, false, an array or an object, or a quoted string; any
// other text is a string (so "timeout=2s" and "circuitbreaker.force=open"
// need no quotes). An empty value, "null" or "unset" removes the field. It
// returns an error wrapping bulwark.ErrInvalidArgument for text without
// "=" or with an empty path.
func ParseAssignment(s string) (Assignment, error) {
	path, val, ok := strings.Cut(s, "=")
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return Assignment{}, core.ArgumentError("control: %q is not path=value (such as ratelimit.limit=50)", s)
	}
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			return Assignment{}, core.ArgumentError("control: %q: empty field name in the path", s)
		}
	}
	val = strings.TrimSpace(val)
	a := Assignment{Path: path}
	switch {
	case val == "" || val == "null" || val == "unset":
		return a, nil
	case json.Valid([]byte(val)) && (val[0] != '"' || len(val) > 1):
		a.Value = json.RawMessage(val)
	default:
		b, _ := json.Marshal(val)
		a.Value = b
	}
	return a, nil
}

// String returns "path=value".
func (a Assignment) String() string {
	if a.Value == nil {
		return a.Path + "="
	}
	return a.Path + "=" + string(a.Value)
}

// Apply returns layer with the assignments made, in order. It returns an
// error wrapping bulwark.ErrInvalidConfig, listing every problem with its
// path, for an unknown field (with the nearest valid one), a value of the
// wrong type, or a path through a field that is not a block. Ranges are
// not checked here; [Store.Set] validates the result over the defaults.
func Apply(layer policy.Spec, as ...Assignment) (policy.Spec, error) {
	data, err := json.Marshal(layer)
	if err != nil {
		return policy.Spec{}, fmt.Errorf("control: %w", err)
	}
	var root map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&root); err != nil {
		return policy.Spec{}, fmt.Errorf("control: %w", err)
	}
	var ps []policy.Problem
	for _, a := range as {
		if p, ok := assign(root, a); !ok {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		return policy.Spec{}, &policy.Error{Problems: ps}
	}
	prune(root)
	out, err := policy.Decode(root)
	if err != nil {
		return policy.Spec{}, err
	}
	return out, nil
}

// assign sets (or removes) a.Path in root.
func assign(root map[string]any, a Assignment) (policy.Problem, bool) {
	parts := strings.Split(a.Path, ".")
	m := root
	for i, part := range parts[:len(parts)-1] {
		switch x := m[part].(type) {
		case map[string]any:
			m = x
		case nil:
			if a.Value == nil {
				return policy.Problem{}, true // removing from a block that is not there
			}
			n := map[string]any{}
			m[part] = n
			m = n
		default:
			return policy.Problem{Path: strings.Join(parts[:i+1], "."), Message: "is not a block: " + a.Path + " cannot be set"}, false
		}
	}
	last := parts[len(parts)-1]
	if a.Value == nil {
		delete(m, last)
		return policy.Problem{}, true
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(a.Value))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return policy.Problem{Path: a.Path, Message: "not a valid value: " + err.Error()}, false
	}
	m[last] = v
	return policy.Problem{}, true
}

// prune removes the blocks an unset left empty, so that removing a block's
// last field removes the block (and its inherited settings stay).
func prune(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			prune(sub)
			if len(sub) == 0 {
				delete(m, k)
			}
		}
	}
}
