// Command source prints the full Lua source of the scripts bench/evalsha
// measures, each after a line "=== <name>", exactly as package lua builds
// them (the shared prelude and the script's own file).
package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/lua"
)

func main() {
	for _, s := range []struct {
		name   string
		script *redis.Script
	}{
		{"ours", lua.TokenBucket},
		{"ours_fw", lua.FixedWindow},
		{"ours_sw", lua.SlidingWindow},
		{"ours_multi", lua.MultiTokenBucket},
	} {
		fmt.Printf("=== %s\n%s\n", s.name, lua.Source(s.script))
	}
}
