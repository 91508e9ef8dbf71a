package distributed

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The optional methods the store looks for (see Client) are those of
// go-redis's clients: these fail to compile if go-redis changes them.
var (
	_ interface{ Options() *redis.Options }        = (*redis.Client)(nil)
	_ interface{ Options() *redis.ClusterOptions } = (*redis.ClusterClient)(nil)
	_ interface{ Options() *redis.RingOptions }    = (*redis.Ring)(nil)
	_ interface{ ReloadState(context.Context) }    = (*redis.ClusterClient)(nil)
	_ interface {
		ForEachMaster(ctx context.Context, fn func(ctx context.Context, client *redis.Client) error) error
	} = (*redis.ClusterClient)(nil)
	_ Client = (*redis.Client)(nil)
	_ Client = (*redis.ClusterClient)(nil)
	_ Client = (*redis.Ring)(nil)
	_ Client = redis.UniversalClient(nil)
)

// An embedding wrapper is read as honouring deadlines exactly when the
// client it embeds does.
func TestHonoursContextThroughEmbedding(t *testing.T) {
	type wrapper struct{ *redis.Client }
	on := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	off := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer on.Close()
	defer off.Close()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer cc.Close()
	for name, tc := range map[string]struct {
		c    Client
		want bool
	}{
		"client on": {on, true}, "client off": {off, false},
		"wrapper on": {wrapper{on}, true}, "wrapper off": {wrapper{off}, false},
		"cluster on": {cc, true}, "no Options method": {processScripter{on}, false},
	} {
		if got := honoursContext(tc.c); got != tc.want {
			t.Errorf("%s: honoursContext = %v, want %v", name, got, tc.want)
		}
	}
}
