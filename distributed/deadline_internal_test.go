package distributed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDeadlineBounds: the timer-free deadline is used only for a client
// whose sockets and pool wait are bounded by the call's deadline.
func TestDeadlineBounds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		client  Client
		timeout time.Duration
		want    bool
	}{
		{"ClientOptions", redis.NewClient(ClientOptions(&redis.Options{Addr: "127.0.0.1:1"}, time.Second)), time.Second, true},
		{"pool wait beyond the budget", redis.NewClient(ClientOptions(&redis.Options{Addr: "127.0.0.1:1"}, time.Second)), 100 * time.Millisecond, false},
		{"no ContextTimeoutEnabled", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", PoolTimeout: time.Millisecond}), time.Second, false},
		{"cluster", redis.NewClusterClient(ClusterClientOptions(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}, time.Second)), time.Second, true},
		{"no budget", redis.NewClient(ClientOptions(&redis.Options{Addr: "127.0.0.1:1"}, time.Second)), 0, false},
	} {
		if got := deadlineBounds(tc.client, tc.timeout); got != tc.want {
			t.Errorf("%s: deadlineBounds = %v, want %v", tc.name, got, tc.want)
		}
		if c, ok := tc.client.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
}

// TestDeadlineCtx: its deadline is its own, Err turns DeadlineExceeded once
// the deadline passed, and the parent's cancellation shows through.
func TestDeadlineCtx(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	d := time.Now().Add(time.Hour)
	c := &deadlineCtx{Context: parent, d: d}
	if got, ok := c.Deadline(); !ok || !got.Equal(d) {
		t.Errorf("Deadline %v %v", got, ok)
	}
	if c.Err() != nil {
		t.Errorf("Err %v before the deadline", c.Err())
	}
	past := &deadlineCtx{Context: parent, d: time.Now().Add(-time.Millisecond)}
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Errorf("Err %v after the deadline", past.Err())
	}
	cancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err %v after the parent's cancel", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after the parent's cancel")
	}
}
