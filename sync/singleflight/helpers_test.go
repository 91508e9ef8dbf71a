package singleflight

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/eventrec"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// openGroup opens a group on client under prefix; Close runs at cleanup.
func openGroup[T any](t *testing.T, client Client, prefix, name string, codec Codec[T], opts ...Option) *Group[T] {
	t.Helper()
	g, err := New(client, name, codec, append([]Option{WithPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// replicas returns n clients of the shared test Redis (one per replica)
// and a prefix of the test's own.
func replicas(t testing.TB, n int) ([]redis.UniversalClient, string) {
	t.Helper()
	first := redistest.Default(t)
	prefix := redistest.Prefix(t, first)
	out := []redis.UniversalClient{first}
	addr := first.(*redis.Client).Options().Addr
	for len(out) < n {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		out = append(out, c)
	}
	return out, prefix
}

// clusterReplicas returns n clients of the shared test cluster and a
// prefix of the test's own.
func clusterReplicas(t testing.TB, n int) ([]redis.UniversalClient, string) {
	t.Helper()
	cl := redistest.SharedCluster(t)
	first := cl.Client(t)
	prefix := redistest.Prefix(t, first)
	out := []redis.UniversalClient{first}
	for len(out) < n {
		out = append(out, cl.Client(t))
	}
	return out, prefix
}

// backends are the deployments the fleet tests run on.
var backends = []struct {
	name string
	open func(t testing.TB, n int) ([]redis.UniversalClient, string)
}{{"standalone", replicas}, {"cluster", clusterReplicas}}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitersOf returns how many callers of g wait on the flight of key.
func waitersOf[T any](g *Group[T], key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.flights[key]; f != nil {
		return f.waiters
	}
	return 0
}

// recorder keeps every event a test's pattern reported.
type recorder = eventrec.Recorder
