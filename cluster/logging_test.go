package cluster_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(parts ...string) (n int, all string) {
	b.mu.Lock()
	all = b.buf.String()
	b.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(all), "\n") {
		ok := l != ""
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			n++
		}
	}
	return n, all
}

func bufLogger(b *logBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// TestMembershipLogsCountChanges: the first count is logged at once, a
// change within 10s of the last line is held back, and the log catches up
// with the count once 10s passed.
func TestMembershipLogsCountChanges(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	clk := fakeclock.New(fakeclock.Epoch)
	var logs logBuffer
	opts := []cluster.Option{cluster.WithTTL(time.Minute), cluster.WithHeartbeatInterval(2 * time.Second)}
	join(t, c, prefix, clk, append(opts, cluster.WithLogger(bufLogger(&logs)))...)
	clk.WaitTimers(1) // the first heartbeat ran and was logged
	if n, all := logs.count("replica count changed", "from=0", "to=1"); n != 1 {
		t.Fatalf("first count: %d lines, want 1:\n%s", n, all)
	}
	join(t, c, prefix, clk, opts...)
	clk.WaitTimers(2)
	clk.Advance(2 * time.Second) // 2s after the last line: the change to 2 is held back
	clk.WaitTimers(2)
	if n, all := logs.count("replica count changed"); n != 1 {
		t.Fatalf("a change 2s after the last line was logged at once:\n%s", all)
	}
	for range 4 { // to 10s after the last line
		clk.Advance(2 * time.Second)
		clk.WaitTimers(2)
	}
	if n, all := logs.count("replica count changed", "from=1", "to=2"); n != 1 {
		t.Fatalf("the log did not catch up with the count: %d lines:\n%s", n, all)
	}
}

// TestMembershipLogsHeartbeatOutage: heartbeats failing against an
// unreachable Redis write one line, however many fail.
func TestMembershipLogsHeartbeatOutage(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer dead.Close()
	clk := fakeclock.New(fakeclock.Epoch)
	var logs logBuffer
	m, err := cluster.Join(dead, cluster.WithClock(clk), cluster.WithTimeout(200*time.Millisecond), cluster.WithLogger(bufLogger(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range 10 {
		clk.WaitTimers(1)
		clk.Advance(time.Second)
	}
	clk.WaitTimers(1)
	n, all := logs.count("level=WARN", "membership heartbeat failing")
	if total, _ := logs.count("bulwark"); n != 1 || total != 1 {
		t.Fatalf("11 failed heartbeats wrote %d lines (%d failing), want 1:\n%s", total, n, all)
	}
}
