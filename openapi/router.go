package openapi

import (
	"fmt"
	"strings"
)

// The routing table: a tree of path segments compiled at load. A segment
// of a template is literal ("pets") or holds one parameter with an optional
// literal prefix and suffix ("{id}", "v{version}.json"). Matching walks the
// request path segment by segment, tries literal children before parameter
// ones (backtracking when a literal branch dead-ends), and allocates
// nothing: map lookups with substrings of the path copy no bytes.

const numMethods = 10 // methodOrder

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "CONNECT":
		return 8
	case "QUERY":
		return 9
	}
	return -1
}

type router struct{ root *node }

type node struct {
	static map[string]*node
	params []*param
	ops    [numMethods]int32 // operation index + 1; 0 means none
}

type param struct {
	prefix, suffix string
	child          *node
}

func compileRouter(ops []*Operation) (*router, error) {
	r := &router{root: &node{}}
	for i, op := range ops {
		mi := methodIndex(op.Method)
		if mi < 0 {
			continue
		}
		n := r.root
		rest := strings.TrimPrefix(op.Path, "/")
		for {
			seg, tail, more := strings.Cut(rest, "/")
			var err error
			if n, err = n.child(seg); err != nil {
				return nil, fmt.Errorf("path %q: %w", op.Path, err)
			}
			if !more {
				break
			}
			rest = tail
		}
		if n.ops[mi] == 0 {
			n.ops[mi] = int32(i + 1)
		}
	}
	return r, nil
}

func (n *node) child(seg string) (*node, error) {
	open := strings.IndexByte(seg, '{')
	if open < 0 {
		if n.static == nil {
			n.static = map[string]*node{}
		}
		c := n.static[seg]
		if c == nil {
			c = &node{}
			n.static[seg] = c
		}
		return c, nil
	}
	end := strings.IndexByte(seg, '}')
	if end < open || strings.IndexByte(seg[end+1:], '{') >= 0 {
		return nil, fmt.Errorf("segment %q: one {parameter} per segment", seg)
	}
	prefix, suffix := seg[:open], seg[end+1:]
	for _, p := range n.params {
		if p.prefix == prefix && p.suffix == suffix {
			return p.child, nil
		}
	}
	p := &param{prefix: prefix, suffix: suffix, child: &node{}}
	// Longer literal parts are more specific: try them first.
	i := len(n.params)
	for i > 0 && len(n.params[i-1].prefix)+len(n.params[i-1].suffix) < len(prefix)+len(suffix) {
		i--
	}
	n.params = append(n.params, nil)
	copy(n.params[i+1:], n.params[i:])
	n.params[i] = p
	return p.child, nil
}

// match returns the index of the operation for method and urlPath, or -1.
func (r *router) match(method, urlPath, base string) int {
	mi := methodIndex(method)
	if mi < 0 || r == nil {
		return -1
	}
	if base != "" {
		if !strings.HasPrefix(urlPath, base) {
			return -1
		}
		urlPath = urlPath[len(base):]
	}
	if len(urlPath) == 0 || urlPath[0] != '/' {
		return -1
	}
	got := r.root.match(urlPath[1:], mi)
	if got == 0 && mi == 1 { // HEAD without its own operation is served as GET, as net/http does
		got = r.root.match(urlPath[1:], 0)
	}
	return int(got) - 1
}

func (n *node) match(rest string, mi int) int32 {
	seg, tail, more := strings.Cut(rest, "/")
	if c := n.static[seg]; c != nil {
		if got := c.next(tail, more, mi); got > 0 {
			return got
		}
	}
	for _, p := range n.params {
		if len(seg) > len(p.prefix)+len(p.suffix) && strings.HasPrefix(seg, p.prefix) && strings.HasSuffix(seg, p.suffix) {
			if got := p.child.next(tail, more, mi); got > 0 {
				return got
			}
		}
	}
	return 0
}

func (n *node) next(tail string, more bool, mi int) int32 {
	if !more {
		return n.ops[mi]
	}
	return n.match(tail, mi)
}
