package singleflight

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// maxPlainTag is the longest (name, key) pair kept readable (base64url)
// inside the hash tag; longer pairs are replaced by their SHA-256.
const maxPlainTag = 96

// tag encodes a group name and a key for the Redis Cluster hash tag and the
// wake-up topic. The result holds only [A-Za-z0-9_-] after its first
// letter, so it never contains a brace or a space, whatever bytes the name
// and key hold: "b" + base64url(len(name) as 4 bytes, name, key) for short
// pairs, "h" + base64url(SHA-256 of the same bytes) for long ones. The
// length prefix keeps ("ab", "c") apart from ("a", "bc"); the leading
// letter keeps the two forms apart.
func tag(name, key string) string {
	raw := make([]byte, 0, 4+len(name)+len(key))
	n := len(name)
	raw = append(raw, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	raw = append(raw, name...)
	raw = append(raw, key...)
	if len(raw) <= maxPlainTag {
		return "b" + base64.RawURLEncoding.EncodeToString(raw)
	}
	sum := sha256.Sum256(raw)
	return "h" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// keySet holds the Redis keys of one key of a group, in the order the
// scripts take them, and its wake-up topic.
type keySet struct {
	topic    string   // the tag: the broadcast topic of the key
	claim    []string // lease, result, fence
	renew    []string // lease
	complete []string // lease, result
}

// newKeySet lays out the keys: <prefix>sf:{<tag>}:<part>.
func newKeySet(prefix, name, key string) keySet {
	t := tag(name, key)
	var b strings.Builder
	b.Grow(len(prefix) + len(t) + 8)
	b.WriteString(prefix)
	b.WriteString("sf:{")
	b.WriteString(t)
	b.WriteString("}:")
	base := b.String()
	claim := []string{base + "lease", base + "result", base + "fence"}
	return keySet{topic: t, claim: claim, renew: claim[:1:1], complete: claim[:2:2]}
}

// channelName is the pub/sub channel of a group: one per prefix and name.
func channelName(prefix, name string) string {
	return prefix + "sf:" + tag(name, "") + ":done"
}
