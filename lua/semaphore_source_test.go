package lua_test

import (
	"crypto/sha1"
	"encoding/hex"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/lua"
)

// Source knows the semaphore's scripts, so that a caller sending them
// with its own EVALSHA/EVAL commands (a distributed store) can fall back to
// EVAL after NOSCRIPT: the source must hash to the script's SHA-1.
func TestSourceOfSemaphoreScripts(t *testing.T) {
	for name, s := range map[string]*redis.Script{
		"semaphore_acquire": lua.SemaphoreAcquire,
		"semaphore_release": lua.SemaphoreRelease,
		"semaphore_renew":   lua.SemaphoreRenew,
		"semaphore_inspect": lua.SemaphoreInspect,
	} {
		src := lua.Source(s)
		sum := sha1.Sum([]byte(src))
		if src == "" || hex.EncodeToString(sum[:]) != s.Hash() {
			t.Errorf("%s: Source is %d bytes hashing to %x, want the script hashing to %s", name, len(src), sum, s.Hash())
		}
	}
}
