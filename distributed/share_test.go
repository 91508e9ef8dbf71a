package distributed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
)

// fixedCounter is a ReplicaCounter with a settable count.
type fixedCounter struct{ n int }

func (c *fixedCounter) Replicas() int { return c.n }

// TestReplicaStartedDuringOutageEnforcesItsShare: a replica whose Redis is
// unreachable from the start has a membership that never heard a
// heartbeat (it counts 0 replicas). Without a fleet size it enforces the
// whole limit on its own; with WithMinReplicas (or WithReplicas) it
// enforces its share.
func TestReplicaStartedDuringOutageEnforcesItsShare(t *testing.T) {
	dead := distributed.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // refuses connections
	defer dead.Close()
	m, err := cluster.Join(dead, cluster.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	limit := bulwark.PerSecond(100)
	firstLimit := func(opts ...distributed.Option) int {
		t.Helper()
		s, err := distributed.New(dead, append([]distributed.Option{distributed.WithReplicaCounter(m)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		tb, err := s.TokenBucket("api", limit)
		if err != nil {
			t.Fatal(err)
		}
		d, err := tb.Allow(context.Background(), "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Degraded || !d.Allowed {
			t.Fatalf("decision %+v, want an admitting degraded one", d)
		}
		return d.Limit
	}
	if n := m.Replicas(); n != 0 {
		t.Fatalf("membership counts %d replicas without Redis, want 0", n)
	}
	if got := firstLimit(); got != 100 {
		t.Errorf("no fleet size: limit %d, want the whole 100 (the behaviour the options fix)", got)
	}
	if got := firstLimit(distributed.WithMinReplicas(4)); got != 25 {
		t.Errorf("WithMinReplicas(4): limit %d, want the share 25", got)
	}
	if got := firstLimit(distributed.WithReplicas(5)); got != 20 {
		t.Errorf("WithReplicas(5): limit %d, want the share 20", got)
	}
}

// TestMinReplicasIsAFloor: the floor applies under any count, and a
// higher count wins over it.
func TestMinReplicasIsAFloor(t *testing.T) {
	dead := distributed.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer dead.Close()
	c := &fixedCounter{n: 2}
	s, err := distributed.New(dead, distributed.WithReplicaCounter(c), distributed.WithMinReplicas(4))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tb, err := s.TokenBucket("api", bulwark.PerSecond(100))
	if err != nil {
		t.Fatal(err)
	}
	d, err := tb.Allow(context.Background(), "floor", 1)
	if err != nil || d.Limit != 25 {
		t.Fatalf("count 2, floor 4: %+v, %v; want limit 25", d, err)
	}
	s2, err := distributed.New(dead, distributed.WithReplicaCounter(&fixedCounter{n: 8}), distributed.WithMinReplicas(4))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	tb2, err := s2.TokenBucket("api", bulwark.PerSecond(100))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := tb2.Allow(context.Background(), "floor", 1); err != nil || d.Limit != 13 {
		t.Fatalf("count 8, floor 4: %+v, %v; want limit 13 (100/8 rounded up)", d, err)
	}
	if _, err := distributed.New(dead, distributed.WithMinReplicas(-1)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("WithMinReplicas(-1): %v, want ErrInvalidConfig", err)
	}
}
