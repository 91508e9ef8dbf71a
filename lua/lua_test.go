package lua_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var scripts = map[string]*redis.Script{
	"token_bucket":   lua.TokenBucket,
	"fixed_window":   lua.FixedWindow,
	"sliding_window": lua.SlidingWindow,
	"sliding_log":    lua.SlidingLog,
}

// TestScriptConventions: each script opens with a comment naming its KEYS,
// ARGV and reply, calls redis.replicate_commands() before any command and
// never swallows errors with pcall. (Globals are refused by Redis itself,
// so TestScriptsRun covers them.)
func TestScriptConventions(t *testing.T) {
	for name, s := range scripts {
		src := lua.Source(s)
		if src == "" {
			t.Fatalf("%s: no source", name)
		}
		if !strings.HasPrefix(src, "-- ") {
			t.Errorf("%s: does not start with a comment", name)
		}
		header := src[:strings.Index(src, "redis.replicate_commands()")]
		for _, want := range []string{"KEYS[", "ARGV[1]", "Reply:"} {
			if !strings.Contains(header, want) {
				t.Errorf("%s: header comment does not mention %s", name, want)
			}
		}
		if strings.Contains(header, "redis.call") {
			t.Errorf("%s: a command runs before redis.replicate_commands()", name)
		}
		if strings.Contains(src, "pcall") {
			t.Errorf("%s: uses pcall", name)
		}
	}
	if lua.Source(redis.NewScript("return 1")) != "" {
		t.Error("Source of a foreign script is not empty")
	}
}

// TestScriptsRun: every script loads on a real Redis, answers an array of
// integers, and refuses state of a foreign shape with an error rather than
// misreading it.
func TestScriptsRun(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	ctx := context.Background()
	args := map[string][]any{
		"token_bucket":   {"", "0", 1, "10", "1000000", "10"},
		"fixed_window":   {"", "0", 1, "10", "1000000"},
		"sliding_window": {"", "0", 1, "10", "1000000"},
		"sliding_log":    {"", "0", 1, "10", "1000000"},
	}
	for name, s := range scripts {
		key := prefix + name + "{k}"
		v, err := s.Run(ctx, c, []string{key}, args[name]...).Int64Slice()
		if err != nil || len(v) != 4 || v[0] != 1 || v[1] != 9 {
			t.Errorf("%s: reply %v, %v; want allowed with 9 left", name, v, err)
		}
		if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 {
			t.Errorf("%s: key without TTL (%v)", name, ttl)
		}
		bad := prefix + name + "{bad}"
		if name == "sliding_log" {
			c.Set(ctx, bad, "x", 0) // a string where a sorted set belongs
		} else {
			c.Set(ctx, bad, "garbage", 0)
		}
		if err := s.Run(ctx, c, []string{bad}, args[name]...).Err(); err == nil {
			t.Errorf("%s: no error on malformed state", name)
		}
	}
}
