package distributed

import (
	"context"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Tiered admits a request only when a local, per-replica limiter and a
// global, fleet-wide one both admit it: "at most 100/s per replica and
// 1000/s across the fleet".
//
// The local tier is asked first. When it denies, the global tier is not
// asked, so requests a replica rejects on its own never spend the fleet's
// tokens (and cost no Redis round trip). When the local tier admits and the
// global one denies, the tokens the local tier took stay taken: the Limiter
// interface cannot give them back. The local tier then counts a request the
// fleet refused, which makes it stricter, never looser, while the global
// limit is the bottleneck. The reverse order would spend fleet-wide tokens
// on requests a single replica refuses, starving the other replicas.
//
// The decision combines both tiers: Allowed only if both admit; Remaining is
// the smaller (and Limit that tier's), RetryAfter and ResetAfter the longer,
// Degraded if either is. A decision denied by the local tier is the local
// tier's alone.
//
// n must suit both tiers: an n the global tier rejects as invalid is
// reported after the local tier took its tokens, so give the local tier a
// capacity no larger than the global one.
//
// Tiers can be nested (a Tiered is a Limiter) to chain more limits whose
// keys cannot share a Redis hash slot; see [Multi] for limits that can.
// Safe for concurrent use when both tiers are.
type Tiered struct {
	local, global bulwark.Limiter
}

var _ bulwark.Limiter = (*Tiered)(nil)

// NewTiered returns a limiter that asks local, then global (see [Tiered]).
// Either being nil is an error wrapping bulwark.ErrInvalidConfig.
func NewTiered(local, global bulwark.Limiter) (*Tiered, error) {
	if local == nil || global == nil {
		return nil, core.ConfigError("tiered limiter needs a local and a global limiter")
	}
	return &Tiered{local: local, global: global}, nil
}

// Allow asks the local tier for n tokens of key and, if it admits, the
// global tier; see [Tiered] for how the decisions combine.
func (t *Tiered) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	ld, err := t.local.Allow(ctx, key, n)
	if err != nil || !ld.Allowed {
		return ld, err
	}
	gd, err := t.global.Allow(ctx, key, n)
	if err != nil {
		return bulwark.Decision{}, err
	}
	return combine(ld, gd), nil
}
