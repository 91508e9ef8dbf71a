package policy

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Change is one field that differs between two Specs.
type Change struct {
	Path string // as in Problem.Path: "ratelimit.limit"
	Old  string // the old value as JSON, "" when unset
	New  string // the new value as JSON, "" when unset
}

// String returns "path: old -> new", unset values shown as "(unset)".
func (c Change) String() string {
	show := func(s string) string {
		if s == "" {
			return "(unset)"
		}
		return s
	}
	return fmt.Sprintf("%s: %s -> %s", c.Path, show(c.Old), show(c.New))
}

// Diff lists the fields set differently in a and b, sorted by path: what a
// control plane shows before applying b over a. Lists compare whole.
func Diff(a, b Spec) []Change {
	fa, fb := flatten(a), flatten(b)
	paths := make(map[string]bool, len(fa)+len(fb))
	for k := range fa {
		paths[k] = true
	}
	for k := range fb {
		paths[k] = true
	}
	var out []Change
	for k := range paths {
		if fa[k] != fb[k] {
			out = append(out, Change{Path: k, Old: fa[k], New: fb[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Equal reports whether a and b set the same fields to the same values.
func Equal(a, b Spec) bool { return len(Diff(a, b)) == 0 }

func flatten(s Spec) map[string]string {
	data, err := json.Marshal(s)
	if err != nil {
		return map[string]string{"": err.Error()}
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	out := make(map[string]string)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if obj, ok := v.(map[string]any); ok && (len(obj) > 0 || prefix == "") {
			for k, x := range obj {
				walk(join(prefix, k), x)
			}
			return
		}
		b, _ := json.Marshal(v)
		out[prefix] = string(b)
	}
	walk("", m)
	return out
}
