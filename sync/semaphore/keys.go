package semaphore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// maxPlainName is the longest name kept readable (base64url) inside the
// hash tag; longer names are replaced by their SHA-256.
const maxPlainName = 48

// keySet holds every Redis key and the channel of one semaphore, in the
// order the scripts take them.
type keySet struct {
	leases, holders, waiters, waitexp, fence string
	channel                                  string
	acquire                                  []string // leases, holders, waiters, waitexp, fence
	release                                  []string // leases, holders, waiters, waitexp
	renew                                    []string // leases, holders, waiters
	inspect                                  []string // leases, holders, waitexp
}

// tag encodes a semaphore name for the Redis Cluster hash tag. The result
// never contains braces, so the tag is exactly what the library built,
// whatever bytes the name holds: "b" + base64url for names up to
// maxPlainName bytes, "h" + hex SHA-256 for longer ones (the leading letter
// keeps the two forms from colliding).
func tag(name string) string {
	if len(name) <= maxPlainName {
		return "b" + base64.RawURLEncoding.EncodeToString([]byte(name))
	}
	sum := sha256.Sum256([]byte(name))
	return "h" + hex.EncodeToString(sum[:])
}

// newKeySet lays out the keys: <prefix>sem:{<tag>}:<part>.
func newKeySet(prefix, name string) keySet {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString("sem:{")
	b.WriteString(tag(name))
	b.WriteString("}:")
	base := b.String()
	k := keySet{
		leases:  base + "leases",
		holders: base + "holders",
		waiters: base + "waiters",
		waitexp: base + "waitexp",
		fence:   base + "fence",
		channel: base + "wake",
	}
	k.acquire = []string{k.leases, k.holders, k.waiters, k.waitexp, k.fence}
	k.release = k.acquire[:4:4]
	k.renew = k.acquire[:3:3]
	k.inspect = []string{k.leases, k.holders, k.waitexp}
	return k
}
