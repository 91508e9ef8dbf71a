package lua

import (
	_ "embed"
)

//go:embed membership.lua
var membershipSrc string

// Membership renews (or removes) one replica in a group's member set and
// returns how many members are live; package cluster runs it. It is
// idempotent (a repeated heartbeat changes nothing but the expiry), so it is
// sent with Script.Run and ordinary client retries.
//
//	KEYS[1]  members: ZSET, member = replica id, score = expiry in ms
//	ARGV[1]  now in ms, or "" to read Redis TIME
//	ARGV[2]  heartbeat TTL in ms
//	ARGV[3]  member id
//	ARGV[4]  "1" join or renew, "0" leave
//
// Reply: the live member count.
var Membership = newScript(membershipSrc)
