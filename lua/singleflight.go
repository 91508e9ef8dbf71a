package lua

import (
	_ "embed"
)

// Scripts of the cluster-wide singleflight group (package sync/singleflight).
// One key of a group has three Redis keys sharing one hash tag: the
// leader's lease ("<id>:<token>", expiring by PX), the stored outcome of
// the last run (expiring after the group's result or error TTL) and a
// fencing counter.

//go:embed singleflight_claim.lua
var singleflightClaimSrc string

//go:embed singleflight_renew.lua
var singleflightRenewSrc string

//go:embed singleflight_complete.lua
var singleflightCompleteSrc string

//go:embed singleflight_forget.lua
var singleflightForgetSrc string

// SingleflightClaim returns the stored outcome of a key, or makes the
// caller its leader with a new fencing token, or reports how long the
// current leader's lease lasts.
// KEYS: lease, result, fence. ARGV: id, lease TTL ms, fence TTL ms.
// Reply: {2, record}, {1, token} or {0, pttl ms}.
var SingleflightClaim = newScript(singleflightClaimSrc)

// SingleflightRenew extends a leader's lease when it still holds it.
// KEYS: lease. ARGV: "<id>:<token>", lease TTL ms. Reply: 1 or 0.
var SingleflightRenew = newScript(singleflightRenewSrc)

// SingleflightComplete stores a leader's outcome, drops its lease and
// publishes a wake-up, only when the caller still holds the lease.
// KEYS: lease, result. ARGV: "<id>:<token>", record, record TTL ms,
// channel, message. Reply: 1 or 0.
var SingleflightComplete = newScript(singleflightCompleteSrc)

// SingleflightForget drops the stored outcome of a key.
// KEYS: result. ARGV: none. Reply: 1 (dropped) or 0 (none stored).
var SingleflightForget = newScript(singleflightForgetSrc)
