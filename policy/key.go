package policy

import (
	"fmt"
	"net/textproto"
	"strings"
)

// KeyKind says where a request's rate-limit key (or priority) comes from.
type KeyKind uint8

// The key sources.
const (
	KeyIP     KeyKind = iota + 1 // the client's address
	KeyHeader                    // the first value of a request header
	KeyQuery                     // the first value of a query parameter
	KeyRoute                     // the operation: one budget for all its callers
	KeyGlobal                    // one budget for everything sharing the stack's name
)

// Key is a parsed key source: "ip", "header:NAME", "query:NAME", "route"
// or "global".
type Key struct {
	Kind KeyKind
	Name string // the header (canonical form) or query parameter, for KeyHeader and KeyQuery
}

// String returns the key source as spelled in a Spec.
func (k Key) String() string {
	switch k.Kind {
	case KeyIP:
		return "ip"
	case KeyHeader:
		return "header:" + k.Name
	case KeyQuery:
		return "query:" + k.Name
	case KeyRoute:
		return "route"
	case KeyGlobal:
		return "global"
	}
	return fmt.Sprintf("KeyKind(%d)", k.Kind)
}

// ParseKey parses a key source. The empty string is "ip".
func ParseKey(s string) (Key, error) {
	kind, name, hasName := strings.Cut(s, ":")
	switch {
	case s == "" || s == "ip":
		return Key{Kind: KeyIP}, nil
	case s == "route":
		return Key{Kind: KeyRoute}, nil
	case s == "global":
		return Key{Kind: KeyGlobal}, nil
	case hasName && (kind == "header" || kind == "query"):
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return Key{}, fmt.Errorf("key source %q needs a %s name without spaces or colons", s, kind)
		}
		if kind == "header" {
			return Key{Kind: KeyHeader, Name: textproto.CanonicalMIMEHeaderKey(name)}, nil
		}
		return Key{Kind: KeyQuery, Name: name}, nil
	}
	msg := fmt.Sprintf("unknown key source %q (use ip, header:NAME, query:NAME, route or global)", s)
	if sug := Suggest(kind, []string{"ip", "header", "query", "route", "global"}); sug != "" && sug != kind {
		msg += fmt.Sprintf("; did you mean %q?", sug)
	}
	return Key{}, fmt.Errorf("%s", msg)
}
