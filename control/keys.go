package control

import (
	"strings"

	"github.com/bulwark-go/bulwark/internal/core"
)

// keys are the Redis keys and channel of one prefix.
//
// The configuration itself (what only operators may write) lives under
// "<prefix>:{config}:"; everything replicas write lives under
// "<prefix>:control:". The brace right after the prefix sets the two apart
// for Redis ACL key patterns (see the package doc) and keeps the keys one
// script writes in one Redis Cluster hash slot.
type keys struct {
	prefix   string
	version  string // STRING: the version counter
	live     string // HASH: name -> "<version> <layer JSON>"
	history  string // + name: LIST of "<version> <record JSON>", newest first
	channel  string // pub/sub channel of the announcements
	defaults string // HASH: name -> defaults JSON (written by replicas)
	replicas string // HASH: replica id -> status JSON (written by replicas)
}

func newKeys(prefix string) keys {
	return keys{
		prefix:   prefix,
		version:  prefix + ":{config}:version",
		live:     prefix + ":{config}:live",
		history:  prefix + ":{config}:history:",
		channel:  prefix + ":config:events",
		defaults: prefix + ":control:defaults",
		replicas: prefix + ":control:replicas",
	}
}

func (k keys) historyOf(name string) string { return k.history + name }

// DefaultPrefix is the key prefix when WithPrefix is not given: the same as
// distributed.DefaultPrefix, so a control plane and the patterns it
// configures share one prefix.
const DefaultPrefix = "bulwark"

func validPrefix(p string) error {
	if p == "" || len(p) > 128 {
		return core.ConfigError("control: prefix must be 1 to 128 bytes, got %d", len(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("{}*?[]\\", c) >= 0 {
			return core.ConfigError("control: prefix %q must be printable ASCII without braces, spaces or *?[]\\", p)
		}
	}
	return nil
}

// validName checks a policy name: what package policy accepts as a stack's
// name (1 to 64 printable ASCII bytes without spaces, quotes or
// backslashes).
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return core.ArgumentError("control: policy name must be 1 to 64 bytes, got %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return core.ArgumentError("control: policy name %q must be printable ASCII without spaces, quotes or backslashes", name)
		}
	}
	return nil
}
