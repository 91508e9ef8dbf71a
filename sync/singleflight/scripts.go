package singleflight

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/lua"
	"github.com/redis/go-redis/v9"
)

// completeTimeout bounds the call that hands a run's outcome to Redis (it
// runs after the caller may have gone, so it has no caller deadline).
const completeTimeout = 5 * time.Second

type claimKind int

const (
	claimWait claimKind = iota
	claimLead
	claimStored
)

// claimReply is the decoded reply of lua.SingleflightClaim.
type claimReply struct {
	kind   claimKind
	token  uint64        // claimLead
	pttl   time.Duration // claimWait
	record string        // claimStored
}

// decodeClaim decodes {2, record}, {1, token} or {0, pttl ms}.
func decodeClaim(v any) (claimReply, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return claimReply{}, unexpected("claim", v)
	}
	k, ok := a[0].(int64)
	if !ok {
		return claimReply{}, unexpected("claim", v)
	}
	switch k {
	case 2:
		if rec, ok := a[1].(string); ok {
			return claimReply{kind: claimStored, record: rec}, nil
		}
	case 1:
		if t, ok := a[1].(int64); ok && t > 0 {
			return claimReply{kind: claimLead, token: uint64(t)}, nil
		}
	case 0:
		if ms, ok := a[1].(int64); ok && ms >= 0 {
			return claimReply{kind: claimWait, pttl: time.Duration(ms) * time.Millisecond}, nil
		}
	}
	return claimReply{}, unexpected("claim", v)
}

// decodeFlag decodes a reply of 0 or 1.
func decodeFlag(script string, v any) (bool, error) {
	if i, ok := v.(int64); ok && (i == 0 || i == 1) {
		return i == 1, nil
	}
	return false, unexpected(script, v)
}

func unexpected(script string, v any) error {
	return fmt.Errorf("singleflight: unexpected reply from the %s script: %#v", script, v)
}

// runScript runs one script through the runner under the group's timeout.
func (g *Group[T]) runScript(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	if g.o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.o.timeout)
		defer cancel()
	}
	return g.run(ctx, s, keys, args...)
}

func (g *Group[T]) claim(ctx context.Context, keys keySet, id string) (claimReply, error) {
	v, err := g.runScript(ctx, lua.SingleflightClaim, keys.claim, id, g.o.leaseTTL.Milliseconds(), FenceTTL.Milliseconds())
	if err != nil {
		return claimReply{}, err
	}
	return decodeClaim(v)
}

func (g *Group[T]) renew(keys keySet, lease string) (bool, error) {
	v, err := g.runScript(g.ctx, lua.SingleflightRenew, keys.renew, lease, g.o.leaseTTL.Milliseconds())
	if err != nil {
		return false, err
	}
	return decodeFlag("renew", v)
}

// complete hands the outcome over and reports whether the caller still
// held the lease. A failure leaves the lease to expire (the waiters then
// take over); the callers of this replica have their outcome already.
func (g *Group[T]) complete(keys keySet, lease, record string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	v, err := g.runScript(ctx, lua.SingleflightComplete, keys.complete,
		lease, record, max(ttl.Milliseconds(), 1), g.channel, keys.topic+" d")
	if err != nil {
		return false, err
	}
	return decodeFlag("complete", v)
}

func (g *Group[T]) forget(ctx context.Context, keys keySet) (bool, error) {
	v, err := g.runScript(ctx, lua.SingleflightForget, keys.complete[1:2])
	if err != nil {
		return false, err
	}
	return decodeFlag("forget", v)
}
