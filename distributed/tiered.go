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
// tier's alone. Which tier denied is not always readable from the combined
// decision (when both tiers are spent, Limit and Remaining may be either's):
// [Tiered.AllowTier] says it.
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
	if core.IsNil(local) || core.IsNil(global) {
		return nil, core.ConfigError("tiered limiter needs a local and a global limiter")
	}
	return &Tiered{local: local, global: global}, nil
}

// Tier names a tier of a [Tiered] limiter: the one that denied a request.
type Tier uint8

// The tiers.
const (
	// TierNone: no tier denied; the request was admitted.
	TierNone Tier = iota
	// TierLocal: the local, per-replica tier denied (the global tier was
	// not asked).
	TierLocal
	// TierGlobal: the local tier admitted and the global, fleet-wide tier
	// denied.
	TierGlobal
)

// String returns "none", "local" or "global".
func (t Tier) String() string {
	switch t {
	case TierNone:
		return "none"
	case TierLocal:
		return "local"
	case TierGlobal:
		return "global"
	}
	return "unknown"
}

// TieredDecision is the decision of a [Tiered] limiter together with the
// tier that denied it.
type TieredDecision struct {
	bulwark.Decision
	// DeniedBy is the tier that denied the request: TierNone when it was
	// admitted, TierLocal when this replica's own limit refused it,
	// TierGlobal when the fleet's did.
	DeniedBy Tier
}

// Allow asks the local tier for n tokens of key and, if it admits, the
// global tier; see [Tiered] for how the decisions combine.
func (t *Tiered) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	d, err := t.AllowTier(ctx, key, n)
	return d.Decision, err
}

// AllowTier is [Tiered.Allow] that also says which tier denied: for a
// per-tier metric, log line or response ("this replica is busy" versus
// "your organisation's quota is spent").
//
//	d, err := tiered.AllowTier(ctx, tenant, 1)
//	if err == nil && d.DeniedBy == distributed.TierGlobal {
//		// the fleet-wide limit refused it
//	}
func (t *Tiered) AllowTier(ctx context.Context, key string, n int) (TieredDecision, error) {
	ld, err := t.local.Allow(ctx, key, n)
	if err != nil {
		return TieredDecision{Decision: ld}, err
	}
	if !ld.Allowed {
		return TieredDecision{Decision: ld, DeniedBy: TierLocal}, nil
	}
	gd, err := t.global.Allow(ctx, key, n)
	if err != nil {
		return TieredDecision{}, err
	}
	d := TieredDecision{Decision: combine(ld, gd)}
	if !gd.Allowed {
		d.DeniedBy = TierGlobal
	}
	return d, nil
}
