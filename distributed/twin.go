package distributed

import (
	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
)

// newTwin returns the local limiter that decides for a Redis-backed one
// when Redis cannot: same algorithm, same limit, so a degraded decision
// follows the same arithmetic on this replica's own state. It is the single
// place where a fallback policy (a fair share of the limit, fail open, fail
// closed) plugs in. A nil twin means fail open.
func newTwin(alg string, l bulwark.Limit) (bulwark.Limiter, error) {
	switch alg {
	case algTokenBucket:
		return local.NewTokenBucket(l)
	case algFixedWindow:
		return local.NewFixedWindow(l)
	case algSlidingWindow:
		return local.NewSlidingWindow(l)
	case algSlidingLog:
		return local.NewSlidingLog(l)
	}
	return nil, nil
}
