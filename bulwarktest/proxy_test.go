package bulwarktest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// quick makes a client fail fast instead of retrying and waiting.
func quick(o *redis.Options) {
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	o.MaxRetries = -1
	o.PoolSize = 2
}

// waitHealed polls PING through c until it answers.
func waitHealed(t *testing.T, c *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PING after Heal: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFaults(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		srv := StartRedis(t, WithBackend(b))
		p := srv.Proxy(t)
		c := p.Client(t, quick)
		ctx := context.Background()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}

		t.Run("cut", func(t *testing.T) {
			p.Cut()
			err := c.Ping(ctx).Err()
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("PING while cut = %v, want a connection error (not a timeout)", err)
			}
			if p.Fault() != Cut {
				t.Fatalf("Fault() = %v, want cut", p.Fault())
			}
			p.Heal()
			waitHealed(t, c)
		})
		t.Run("freeze", func(t *testing.T) {
			p.Freeze()
			err := c.Ping(ctx).Err()
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("PING while frozen = %v, want a timeout", err)
			}
			p.Heal()
			waitHealed(t, c)
		})
		t.Run("slow", func(t *testing.T) {
			slow := p.Client(t, func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
			if err := slow.Ping(ctx).Err(); err != nil { // connect before the fault
				t.Fatal(err)
			}
			p.Slow(150 * time.Millisecond)
			start := time.Now()
			if err := slow.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING while slow: %v", err)
			}
			if took := time.Since(start); took < 300*time.Millisecond {
				t.Fatalf("PING while slowed by 150ms each way took %v, want at least 300ms", took)
			}
			p.Heal()
			waitHealed(t, c)
		})
		t.Run("drop-replies", func(t *testing.T) {
			p.DropReplies()
			err := c.Set(ctx, "dropped", "ran", time.Minute).Err()
			if err == nil {
				t.Fatal("SET answered while replies are dropped")
			}
			// The command ran all the same.
			deadline := time.Now().Add(5 * time.Second)
			for srv.Do(t, "GET", "dropped") != "ran" {
				if time.Now().After(deadline) {
					t.Fatal("SET with a dropped reply did not run on the server")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if p.DroppedReplies() == 0 {
				t.Fatal("DroppedReplies() = 0")
			}
			p.Heal()
			waitHealed(t, c)
		})
	})
}

func TestSchedule(t *testing.T) {
	srv := StartRedis(t)
	p := srv.Proxy(t)
	s := p.Schedule(t, At(100*time.Millisecond, Heal), At(0, Slow(time.Millisecond)), At(50*time.Millisecond, Cut))
	s.Wait()
	got := s.Applied()
	want := []Fault{Slow(time.Millisecond), Cut, Heal}
	if len(got) != len(want) {
		t.Fatalf("Applied() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Fault != want[i] {
			t.Fatalf("step %d applied %v, want %v", i, got[i].Fault, want[i])
		}
		if i > 0 && got[i].At.Before(got[i-1].At) {
			t.Fatalf("step %d applied at %v, before step %d", i, got[i].At, i-1)
		}
	}
	if p.Fault() != Heal || len(p.Events()) != 3 {
		t.Fatalf("after the schedule: Fault() = %v, %d events; want heal, 3", p.Fault(), len(p.Events()))
	}
	waitHealed(t, p.Client(t, quick))

	// Stop ends a schedule before its steps.
	s = p.Schedule(t, At(time.Hour, Cut))
	s.Stop()
	s.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if len(s.Applied()) != 0 || p.Fault() != Heal {
		t.Fatalf("a stopped schedule applied %v; fault %v", s.Applied(), p.Fault())
	}
}

func TestFaultString(t *testing.T) {
	for f, want := range map[Fault]string{Heal: "heal", Cut: "cut", Freeze: "freeze", DropReplies: "drop-replies", Slow(time.Second): "slow(1s)", Slow(0): "heal"} {
		if got := f.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", f, got, want)
		}
	}
}
