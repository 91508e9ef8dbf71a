package distributed_test

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// nilCounter is a ReplicaCounter whose typed nil must be refused.
type nilCounter struct{ n int }

func (c *nilCounter) Replicas() int { return c.n }

func TestNewRejectsTypedNilClients(t *testing.T) {
	cases := map[string]distributed.Client{
		"*redis.Client":        (*redis.Client)(nil),
		"*redis.ClusterClient": (*redis.ClusterClient)(nil),
		"*redis.Ring":          (*redis.Ring)(nil),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := distributed.New(c)
			if !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("New(%s(nil)) = %v, %v; want an error wrapping ErrInvalidConfig", name, s, err)
			}
		})
	}
}

func TestNewRejectsTypedNilOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	cases := map[string]distributed.Option{
		"clock":    distributed.WithClock((*fakeclock.Clock)(nil)),
		"observer": distributed.WithObserver((*nilObserver)(nil)),
		"counter":  distributed.WithReplicaCounter((*nilCounter)(nil)),
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := distributed.New(c, o); !errors.Is(err, bulwark.ErrInvalidConfig) {
				t.Fatalf("New with a typed nil %s: error = %v, want ErrInvalidConfig", name, err)
			}
		})
	}
	// Untyped nils still mean "not set".
	s, err := distributed.New(c, nil, distributed.WithClock(nil), distributed.WithObserver(nil), distributed.WithReplicaCounter(nil))
	if err != nil {
		t.Fatalf("New with untyped nil options: %v", err)
	}
	_ = s.Close()
}

type nilObserver struct{ n int }

func (o *nilObserver) Observe(bulwark.Event) { o.n++ }

func TestNewTieredRejectsTypedNils(t *testing.T) {
	var tb *distributed.TokenBucket
	good, err := local.NewTokenBucket(bulwark.PerSecond(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := distributed.NewTiered(good, tb); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("NewTiered(local, typed nil) error = %v, want ErrInvalidConfig", err)
	}
}
