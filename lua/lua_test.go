package lua_test

import (
	"context"
	"embed"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/lua"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var scripts = map[string]*redis.Script{
	"token_bucket":       lua.TokenBucket,
	"multi_token_bucket": lua.MultiTokenBucket,
	"fixed_window":       lua.FixedWindow,
	"sliding_window":     lua.SlidingWindow,
	"sliding_log":        lua.SlidingLog,
}

// allScripts is every script of the package, by the name of its file.
var allScripts = map[string]*redis.Script{
	"token_bucket":       lua.TokenBucket,
	"multi_token_bucket": lua.MultiTokenBucket,
	"token_bucket_lease": lua.TokenBucketLease,
	"fixed_window":       lua.FixedWindow,
	"sliding_window":     lua.SlidingWindow,
	"sliding_log":        lua.SlidingLog,
	"breaker_state":      lua.BreakerState,
	"membership":         lua.Membership,
	"config_set":         lua.ConfigSet,
	"semaphore_acquire":  lua.SemaphoreAcquire,
	"semaphore_release":  lua.SemaphoreRelease,
	"semaphore_renew":    lua.SemaphoreRenew,
	"semaphore_inspect":  lua.SemaphoreInspect,
	"pace_hold":          lua.PaceHold,

	"singleflight_claim":    lua.SingleflightClaim,
	"singleflight_renew":    lua.SingleflightRenew,
	"singleflight_complete": lua.SingleflightComplete,
	"singleflight_forget":   lua.SingleflightForget,
}

// bare names the scripts whose text is their file alone, without the
// prelude.
var bare = map[string]bool{"token_bucket": true, "fixed_window": true, "sliding_window": true}

//go:embed *.lua
var files embed.FS

// TestScriptConventions: each script is the shared prelude followed by its
// own file (or, for the bare token bucket, its file alone, defining no
// function); the file opens with a comment naming its KEYS, ARGV and reply;
// no script calls redis.replicate_commands() (a no-op since Redis 7, the
// default since 5.0, the minimum version); the prelude only defines local
// functions, so it runs no command and touches no global; nothing swallows
// errors with pcall.
// (Globals are refused by Redis itself, so TestScriptsRun covers them.)
func TestScriptConventions(t *testing.T) {
	prelude, err := files.ReadFile("prelude.lua")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(prelude), "\n") {
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, " ") ||
			strings.HasPrefix(line, "local function ") || line == "end" {
			continue
		}
		t.Errorf("prelude: top-level line %q is not a local function definition", line)
	}
	reply := regexp.MustCompile(`Reply[^:\n]*:`)
	entries, err := files.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".lua")
		if _, ok := allScripts[name]; !ok && name != "prelude" {
			t.Errorf("%s: not a script of the package", e.Name())
		}
	}
	for name, s := range allScripts {
		body, err := files.ReadFile(name + ".lua")
		if err != nil {
			t.Fatal(err)
		}
		src := lua.Source(s)
		switch {
		case bare[name]:
			if src != string(body) {
				t.Errorf("%s: source is not %s.lua", name, name)
			}
			if regexp.MustCompile(`(?m)^[^-]*\bfunction\b`).MatchString(src) {
				t.Errorf("%s: defines a function (a closure built on every call)", name)
			}
		case src != string(prelude)+"\n"+string(body):
			t.Errorf("%s: source is not the prelude followed by %s.lua", name, name)
		}
		if !strings.HasPrefix(string(body), "-- ") {
			t.Errorf("%s: does not start with a comment", name)
		}
		var header []string
		var code []string
		for _, line := range strings.Split(string(body), "\n") {
			switch {
			case len(code) == 0 && strings.HasPrefix(line, "--"):
				header = append(header, line)
			case strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--"):
				code = append(code, line)
			}
		}
		h := strings.Join(header, "\n")
		for _, want := range []string{"KEYS[", "ARGV[1]"} {
			if !strings.Contains(h, want) {
				t.Errorf("%s: header comment does not mention %s", name, want)
			}
		}
		if !reply.MatchString(h) {
			t.Errorf("%s: header comment does not describe the reply", name)
		}
		if strings.Contains(src, "replicate_commands") {
			t.Errorf("%s: calls redis.replicate_commands()", name)
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
		// 10 per second: E 1, P 100000 (divided by 10), tau 10 × P.
		"token_bucket":       {"", "0", 1, "1", "100000", "1000000"},
		"multi_token_bucket": {"", "0", 1, "10", "1000000", "10"},
		"fixed_window":       {"", "0", 1, "10", "1000000"},
		"sliding_window":     {"", "0", 1, "10", "1000000"},
		"sliding_log":        {"", "0", 1, "10", "1000000"},
	}
	for name, s := range scripts {
		key := prefix + name + "{k}"
		v, err := s.Run(ctx, c, []string{key}, args[name]...).Int64Slice()
		if name == "token_bucket" {
			// {allowed, need}: one token of debt.
			if err != nil || len(v) != 2 || v[0] != 1 || v[1] != 100000 {
				t.Errorf("%s: reply %v, %v; want [1 100000]", name, v, err)
			}
		} else if err != nil || len(v) != 4 || v[0] != 1 || v[1] != 9 {
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
