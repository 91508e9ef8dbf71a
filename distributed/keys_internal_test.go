package distributed

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/lua"
)

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first "{" and the next "}" when non-empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// slot is the Redis Cluster hash slot of key: CRC16-XMODEM of its hash tag
// modulo 16384.
func slot(key string) int {
	var crc uint16
	for _, b := range []byte(hashTag(key)) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func TestSlotMatchesRedis(t *testing.T) {
	// Examples of the CLUSTER KEYSLOT documentation, and the CRC16-XMODEM
	// check value of "123456789" (0x31C3).
	for key, want := range map[string]int{"somekey": 11058, "foo{hash_tag}": 2515, "bar{hash_tag}": 2515, "123456789": 0x31C3} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func hostileParts() []string {
	out := []string{
		"", " ", "}", "{", "{}", "}{", "{a}{b}", "a}b", "{x}", "a:b", ":", "::", "~", "!", "~AA", "!x",
		"line\nbreak", "nul\x00", "\xff", "*", "[a]", "\\", strings.Repeat("x", 64), strings.Repeat("x", 65),
		strings.Repeat("}", 48), strings.Repeat("}", 49), strings.Repeat("z", 10<<10),
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for _, s := range out {
		seen[s] = true
	}
	for len(out) < 300 {
		b := make([]byte, r.IntN(80))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(2) == 0 {
				b[i] = "{}:~!ab"[r.IntN(7)]
			}
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, string(b))
		}
	}
	return out
}

// TestKeyLayout: for hostile names and keys, the Redis key keeps exactly
// the hash tag the library built, the tag is never empty, and distinct
// (name, key) pairs never share a Redis key.
func TestKeyLayout(t *testing.T) {
	parts := hostileParts()
	seen := map[string][2]string{}
	for _, name := range parts[:40] {
		head := keyHead("pre:fix", algTokenBucket, name)
		for _, key := range parts {
			k := limiterKey(head, key)
			tag := hashTag(k)
			if tag == k || tag == "" {
				t.Fatalf("key %q (name %q, key %q) has no hash tag", k, name, key)
			}
			if want := k[strings.IndexByte(k, '{')+1 : len(k)-1]; tag != want {
				t.Fatalf("key %q: hash tag %q, want %q", k, tag, want)
			}
			if strings.ContainsAny(tag, "{}") || len(k) > 200 {
				t.Fatalf("key %q: braces in the tag or unbounded length", k)
			}
			if prev, dup := seen[k]; dup {
				t.Fatalf("(%q, %q) and (%q, %q) share key %q", prev[0], prev[1], name, key, k)
			}
			seen[k] = [2]string{name, key}
		}
	}
	// The classic separator collision.
	if limiterKey(keyHead("p", "tb", "a:b"), "c") == limiterKey(keyHead("p", "tb", "a"), "b:c") {
		t.Error(`("a:b", "c") and ("a", "b:c") collide`)
	}
}

func TestAppendPartNameHasNoColon(t *testing.T) {
	for _, s := range hostileParts() {
		enc := string(appendPart(nil, s, false))
		if enc == "" || strings.ContainsAny(enc, "{}: \n\x00") {
			t.Errorf("appendPart(%q) = %q", s, enc)
		}
	}
}

// TestCallLimiterKey: a call's key built in place is limiterKey's, as
// go-redis writes it (MarshalBinary) and as a cluster client formats it to
// find the key's slot (fmt.Sprint, through String), and a pooled call
// reused for another key holds only the new one.
func TestCallLimiterKey(t *testing.T) {
	head := keyHead("p", algTokenBucket, "name")
	c := newCall(lua.TokenBucket)
	defer c.release()
	for _, key := range []string{"user-1", "a}b{c", ""} {
		c.argv = c.argv[:3]
		c.limiterKey(head, key)
		want := limiterKey(head, key)
		arg, ok := c.argv[3].(*keyArg)
		if !ok || c.argv[2] != 1 {
			t.Fatalf("argv %v: want numkeys 1 and a *keyArg", c.argv)
		}
		if b, err := arg.MarshalBinary(); err != nil || string(b) != want {
			t.Errorf("MarshalBinary = %q, %v; want %q", b, err, want)
		}
		if got := fmt.Sprint(arg); got != want {
			t.Errorf("fmt.Sprint = %q, want %q", got, want)
		}
	}
}
