package cluster_test

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func TestJoinRejectsTypedNilClient(t *testing.T) {
	for name, c := range map[string]redis.Scripter{
		"*redis.Client":        (*redis.Client)(nil),
		"*redis.ClusterClient": (*redis.ClusterClient)(nil),
	} {
		m, err := cluster.Join(c)
		if !errors.Is(err, bulwark.ErrInvalidConfig) {
			if m != nil {
				_ = m.Close()
			}
			t.Errorf("Join(%s(nil)) error = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestJoinRejectsEmptyID(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	m, err := cluster.Join(c, cluster.WithID(""))
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		if m != nil {
			_ = m.Close()
		}
		t.Fatalf("Join(WithID(\"\")) error = %v, want ErrInvalidConfig", err)
	}
	m, err = cluster.Join(c, cluster.WithClock((*fakeclock.Clock)(nil)))
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		if m != nil {
			_ = m.Close()
		}
		t.Fatalf("Join(WithClock(typed nil)) error = %v, want ErrInvalidConfig", err)
	}
}

func TestNewBroadcastRejectsTypedNilClient(t *testing.T) {
	b, err := cluster.NewBroadcast((*redis.Client)(nil), "ch")
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		if b != nil {
			_ = b.Close()
		}
		t.Fatalf("NewBroadcast((*redis.Client)(nil)) error = %v, want ErrInvalidConfig", err)
	}
}
