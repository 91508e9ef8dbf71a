package distributed

import (
	"crypto/sha256"
	"encoding/base64"
)

// Key layout. One logical limiter key (a limiter's name and a user's key)
// maps to Redis keys
//
//	<prefix>:<algorithm>:{<name>:<key>}
//
// where <name> and <key> are encoded by [appendPart] so that:
//
//   - the hash tag, between the first "{" and the next "}", is exactly
//     "<name>:<key>": the encoded parts never contain a brace, and the
//     prefix is checked to have none. Every key of one logical limiter
//     therefore hashes to one Redis Cluster slot, and user input cannot pick
//     the slot of another tenant's key;
//   - the tag is never empty (an empty "{}" would hash the whole key);
//   - different (name, key) pairs give different tags: the encoded name
//     never contains ":", so the first ":" splits the tag unambiguously, and
//     the three encodings below are told apart by their first byte;
//   - a key of any length gives a Redis key of bounded length.
//
// Multi-limit keys put a user-chosen tag in the braces and the limit's name
// and key after them: <prefix>:<algorithm>:{<tag>}<name>:<limit>:<key>.
const (
	maxRawPart = 64 // longer parts are hashed
	maxB64Part = 48 // base64url of 48 bytes is 64 characters
)

// Algorithm segments of the key layout.
const (
	algTokenBucket   = "tb"
	algFixedWindow   = "fw"
	algSlidingWindow = "sw"
	algSlidingLog    = "sl"
)

// appendPart appends an encoding of s to dst that holds only printable
// ASCII without braces, and without ":" when colon is false:
//
//   - s itself when it is 1 to 64 bytes of printable ASCII other than
//     { } ~ ! * ? [ ] \ (and ":" unless colon), that is, readable as is;
//   - "~" followed by base64url(s) (no padding) when s is at most 48 bytes
//     otherwise, including the empty string ("~");
//   - "!" followed by base64url(SHA-256(s)) for longer s: 44 bytes, with a
//     collision as unlikely as one of SHA-256.
func appendPart(dst []byte, s string, colon bool) []byte {
	if len(s) > 0 && len(s) <= maxRawPart && isRaw(s, colon) {
		return append(dst, s...)
	}
	if len(s) <= maxB64Part {
		dst = append(dst, '~')
		return base64.RawURLEncoding.AppendEncode(dst, []byte(s))
	}
	sum := sha256.Sum256([]byte(s))
	dst = append(dst, '!')
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}

func isRaw(s string, colon bool) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '{' || c == '}' || c == '~' || c == '!' || c == '*' || c == '?' || c == '[' || c == ']' || c == '\\':
			return false
		case c == ':' && !colon:
			return false
		}
	}
	return true
}

// keyHead returns "<prefix>:<alg>:{<name>:", the fixed start of every key
// of one limiter.
func keyHead(prefix, alg, name string) string {
	b := make([]byte, 0, len(prefix)+len(alg)+8+len(name))
	b = append(b, prefix...)
	b = append(b, ':')
	b = append(b, alg...)
	b = append(b, ":{"...)
	b = appendPart(b, name, false)
	b = append(b, ':')
	return string(b)
}

// limiterKey returns head + encoded key + "}".
func limiterKey(head, key string) string {
	var buf [160]byte
	b := append(buf[:0], head...)
	b = appendPart(b, key, true)
	b = append(b, '}')
	return string(b)
}
