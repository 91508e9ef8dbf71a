package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		srv := StartRedis(t, WithBackend(b), WithArgs("--maxmemory", "5mb"))
		if srv.Backend() != b {
			t.Fatalf("Backend() = %v, want %v", srv.Backend(), b)
		}
		ctx := context.Background()
		c := srv.Client(t)
		if err := c.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
			t.Fatalf("GET k = %q, %v; want v", got, err)
		}
		if got := srv.Do(t, "CONFIG", "GET", "maxmemory"); fmt.Sprint(got) != "map[maxmemory:5242880]" {
			t.Fatalf("CONFIG GET maxmemory = %v, want 5242880 (WithArgs)", got)
		}

		srv.Pause()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := srv.Exec(short, "PING")
		cancel()
		if err == nil {
			t.Fatal("PING answered while the server was paused")
		}
		srv.Resume()
		if got := srv.Do(t, "PING"); got != "PONG" {
			t.Fatalf("PING after Resume = %v", got)
		}

		srv.Kill()
		if srv.Running() {
			t.Fatal("Running() after Kill")
		}
		if _, err := srv.Exec(ctx, "PING"); err == nil {
			t.Fatal("PING answered after Kill")
		}
		srv.Restart()
		if got, err := c.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET k after Restart = %q, %v; want an empty data set", got, err)
		}
	})
}
