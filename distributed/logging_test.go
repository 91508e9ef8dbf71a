package distributed_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// logBuffer collects the lines of a slog handler, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// count returns how many lines hold every one of parts.
func (b *logBuffer) count(parts ...string) int {
	n := 0
	for _, l := range b.lines() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}

func newLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestLoggerOutage: a store with a logger writes one line when Redis goes
// away and one when it is back (with the outage's length), however many
// calls it decided meanwhile; go-redis's own lines, routed through
// NewRedisLogger, are rate-limited alike.
func TestLoggerOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	client := distributed.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	var logs, redisLogs logBuffer
	redis.SetLogger(distributed.NewRedisLogger(newLogger(&redisLogs), slog.LevelDebug))
	t.Cleanup(logging.Enable) // go-redis's default logger again for the tests after
	s, err := distributed.New(client, distributed.WithPrefix("logtest"), distributed.WithLogger(newLogger(&logs)),
		distributed.WithProbeInterval(10*time.Millisecond), distributed.WithMinDegraded(0), distributed.WithRecoveryThreshold(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tb, err := s.TokenBucket("api", bulwark.PerSecond(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := func(n int) (degraded int) {
		for range n {
			d, err := tb.Allow(ctx, "k", 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Degraded {
				degraded++
			}
		}
		return degraded
	}
	if d := calls(50); d != 0 {
		t.Fatalf("%d degraded decisions before the outage", d)
	}
	if n := len(logs.lines()); n != 0 {
		t.Fatalf("a healthy store logged %d lines: %q", n, logs.lines())
	}
	srv.Kill()
	eventually(t, 10*time.Second, "degraded", func() bool { calls(10); return !s.Healthy() })
	if d := calls(2000); d != 2000 {
		t.Fatalf("%d of 2000 decisions degraded during the outage, want all", d)
	}
	time.Sleep(100 * time.Millisecond) // not for correctness: lets the prober fail (and go-redis log) a few times
	srv.Restart()
	eventually(t, 10*time.Second, "back on Redis", func() bool { calls(1); return s.Healthy() })
	calls(50)
	if got := logs.count("level=WARN", "store degraded", "prefix=logtest"); got != 1 {
		t.Errorf("%d 'store degraded' lines, want 1:\n%s", got, strings.Join(logs.lines(), "\n"))
	}
	if got := logs.count("level=INFO", "store back on Redis", "outage="); got != 1 {
		t.Errorf("%d 'back on Redis' lines, want 1:\n%s", got, strings.Join(logs.lines(), "\n"))
	}
	if n := len(logs.lines()); n > 2 {
		t.Errorf("the outage wrote %d lines, want 2:\n%s", n, strings.Join(logs.lines(), "\n"))
	}
	t.Logf("store lines:\n%s\ngo-redis lines:\n%s", strings.Join(logs.lines(), "\n"), strings.Join(redisLogs.lines(), "\n"))
	// go-redis logged each failed dial (one per probe); the rate limit
	// keeps a handful.
	if n := len(redisLogs.lines()); n > 5 {
		t.Errorf("go-redis wrote %d lines through NewRedisLogger, want at most 5:\n%s", n, strings.Join(redisLogs.lines(), "\n"))
	}
}

// TestLoggerBreakerTransitions: a breaker's transitions are logged, Warn
// when it opens and Info when it closes.
func TestLoggerBreakerTransitions(t *testing.T) {
	var logs logBuffer
	s, _, _ := testStore(t, nil, distributed.WithLogger(newLogger(&logs)))
	b, err := s.Breaker("logged", bulwark.DefaultBreakerConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b.State(ctx) != bulwark.Closed {
		t.Fatal("not closed")
	}
	if err := b.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { t.Logf("log:\n%s", strings.Join(logs.lines(), "\n")) }()
	eventually(t, 5*time.Second, "the open transition logged", func() bool {
		return logs.count("level=WARN", "breaker state changed", "breaker=logged", "from=closed", "to=open") == 1
	})
	if err := b.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the close transition logged", func() bool {
		return logs.count("level=INFO", "breaker state changed", "breaker=logged", "from=open", "to=closed") == 1
	})
}

// TestLoggerSilentByDefault: without a logger nothing reaches the default
// slog logger, even through an outage.
func TestLoggerSilentByDefault(t *testing.T) {
	var logs logBuffer
	prev := slog.Default()
	slog.SetDefault(newLogger(&logs))
	defer slog.SetDefault(prev)
	dead := distributed.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer dead.Close()
	s, err := distributed.New(dead, distributed.WithProbeInterval(time.Millisecond), distributed.WithMinDegraded(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tb, err := s.TokenBucket("api", bulwark.PerSecond(10))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := tb.Allow(context.Background(), "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count("bulwark"); n != 0 {
		t.Fatalf("a store without a logger wrote %d lines", n)
	}
}

// TestRedisLoggerRateLimits: each distinct go-redis line is written at
// most once per interval; a nil logger writes nothing.
func TestRedisLoggerRateLimits(t *testing.T) {
	var logs logBuffer
	rl := distributed.NewRedisLogger(newLogger(&logs), slog.LevelWarn)
	for i := range 100 {
		rl.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 1, fmt.Errorf("refused %d", i))
	}
	if n := logs.count("level=WARN", "failed to dial", "source=go-redis"); n != 1 || len(logs.lines()) != 1 {
		t.Fatalf("100 identical go-redis lines wrote %d lines, want 1:\n%s", len(logs.lines()), strings.Join(logs.lines(), "\n"))
	}
	distributed.NewRedisLogger(nil, slog.LevelWarn).Printf(context.Background(), "x %d", 1) // writes nowhere, does not panic
}
