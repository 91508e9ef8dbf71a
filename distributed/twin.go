package distributed

import (
	"context"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

// twin is the local limiter that decides for a Redis-backed one when Redis
// cannot (the FailLocal policy): same algorithm, this replica's fair share
// of the limit, its own in-memory state. It is built lazily, and built
// anew after each recovery of the store (so each outage starts from empty
// buckets; the failed calls that lead to an outage already count in its
// twin) or when the replica count changed.
type twin struct {
	alg   string
	limit bulwark.Limit
	clock bulwark.Clock // the store's, or nil
	cur   atomic.Pointer[twinState]
}

type twinState struct {
	epoch    uint64 // the store's recovery count when built
	replicas int
	capacity int // the share's largest n
	lim      bulwark.Limiter
}

func newTwin(alg string, l bulwark.Limit, clock bulwark.Clock) *twin {
	return &twin{alg: alg, limit: l, clock: clock}
}

// state returns the twin for the store's current outage and replica count.
func (t *twin) state(s *Store) (*twinState, error) {
	epoch, n := s.health.epoch.Load(), s.replicaCount()
	for {
		cur := t.cur.Load()
		if cur != nil && cur.epoch == epoch && cur.replicas == n {
			return cur, nil
		}
		share := shareLimit(t.limit, n)
		var opts []local.Option
		if t.clock != nil {
			opts = append(opts, local.WithClock(t.clock))
		}
		var lim bulwark.Limiter
		var err error
		capacity := share.Events
		switch t.alg {
		case algTokenBucket:
			lim, err = local.NewTokenBucket(share, opts...)
			capacity = share.Capacity()
		case algFixedWindow:
			lim, err = local.NewFixedWindow(share, opts...)
		case algSlidingWindow:
			lim, err = local.NewSlidingWindow(share, opts...)
		default:
			lim, err = local.NewSlidingLog(share, opts...)
		}
		if err != nil {
			return nil, err
		}
		next := &twinState{epoch: epoch, replicas: n, capacity: capacity, lim: lim}
		if t.cur.CompareAndSwap(cur, next) {
			return next, nil
		}
	}
}

// allow decides n tokens of key locally. An n above the share's capacity is
// denied (it could never be admitted locally during this outage), with
// RetryAfter the store's probe interval.
func (t *twin) allow(ctx context.Context, s *Store, key string, n int) (bulwark.Decision, error) {
	st, err := t.state(s)
	if err != nil {
		return bulwark.Decision{}, err
	}
	if n > st.capacity {
		return bulwark.Decision{
			Limit:      st.capacity,
			RetryAfter: s.health.interval,
			ResetAfter: s.health.interval,
			Degraded:   true,
		}, nil
	}
	d, err := st.lim.Allow(ctx, key, n)
	d.Degraded = true
	return d, err
}
