package distributed

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// deadlineCtx is a context with an earlier deadline and no timer. A store
// uses it for a call's time budget when its client applies context
// deadlines to every socket read, write and dial (ContextTimeoutEnabled)
// and waits for a pooled connection no longer than the budget
// (PoolTimeout): then the deadline alone bounds the call, and the timer and
// channel of context.WithDeadline (three allocations per call) buy
// nothing. Done is the parent's; Err reports DeadlineExceeded once the
// deadline has passed.
type deadlineCtx struct {
	context.Context
	d time.Time
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.d, true }

func (c *deadlineCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.d) {
		return context.DeadlineExceeded
	}
	return nil
}

// deadlineBounds reports whether a deadline alone bounds a call of client
// to timeout: the client honours context deadlines on its sockets and its
// pool wait is at most timeout.
func deadlineBounds(client Client, timeout time.Duration) bool {
	var o struct {
		cte  bool
		pool time.Duration
	}
	switch c := client.(type) {
	case *redis.Client:
		o.cte, o.pool = c.Options().ContextTimeoutEnabled, c.Options().PoolTimeout
	case *redis.ClusterClient:
		o.cte, o.pool = c.Options().ContextTimeoutEnabled, c.Options().PoolTimeout
	default:
		return false
	}
	return o.cte && timeout > 0 && o.pool > 0 && o.pool <= timeout
}
