package openapi

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bulwark-go/bulwark"
)

// Problem is one mistake in a spec's x-bulwark or x-telstra blocks (or a
// spec that cannot be read at all).
type Problem struct {
	// Path is where the mistake is, as keys from the document's root joined
	// by dots: "paths./pets/{id}.get.x-bulwark.ratelimit.limit".
	Path string
	// Message says what is wrong; for an unknown key it suggests the
	// nearest valid one.
	Message string
	// Line and Column locate the key (for an unknown key) or its value in
	// the file, from 1; 0 when unknown.
	Line, Column int
}

// String returns "LINE:COL: path: message" (without the position when it
// is unknown).
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is a spec rejected at load, with every problem found. It wraps
// bulwark.ErrInvalidConfig.
type Error struct {
	File     string // the file name given to Load, or "" for Parse
	Problems []Problem
}

// Error lists the problems, one per line, each as
// "FILE:LINE:COL: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: openapi spec has %d problem(s):", bulwark.ErrInvalidConfig, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(e.Format(p))
	}
	return b.String()
}

// Format returns p as a linter prints it: "FILE:LINE:COL: path: message".
func (e *Error) Format(p Problem) string {
	file := e.File
	if file == "" {
		file = "spec"
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, p.Line, p.Column, strings.TrimPrefix(p.String(), fmt.Sprintf("%d:%d: ", p.Line, p.Column)))
}

// Unwrap returns bulwark.ErrInvalidConfig.
func (e *Error) Unwrap() error { return bulwark.ErrInvalidConfig }

func sortProblems(ps []Problem) []Problem {
	seen := make(map[string]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		k := p.Path + "\x00" + p.Message
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Path < b.Path
	})
	return out
}
