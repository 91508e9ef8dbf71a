package local

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Keyed state for the limiters.
//
// Every keyed limiter of this package keeps its per-key state in a keyStore:
// a fixed set of shards, each a mutex, a map from key to slot and a dense
// slice of slots holding small value structs. A key is mapped to its shard by
// a seeded hash, so calls on distinct keys rarely wait on one another, and a
// call on an existing key looks the key up once and updates its slot in
// place without allocating.
//
// Memory is bounded in two ways.
//
// Idle keys are evicted lazily. Each slot records the time (µs) from which
// its key is idle: its state is back at full capacity, which the limiter
// arithmetic (docs/algorithms.md) treats exactly like absent state, so
// dropping it changes no decision. Whenever a new key is inserted the shard
// moves its sweep hand past the next keySweepPerInsert keys it keeps,
// freeing on the way every key that has been idle for at least the store's
// grace (one Period of the limit); the hand goes round the shard as keys
// come and go, so a shard holds about twice its busy keys. The grace
// keeps a key that calls at least once per period in place, so that it is
// not freed and created again (allocating) on every call.
//
// The number of keys is capped (WithMaxKeys, default DefaultMaxKeys). The
// cap is split between the shards, each holding at most its share, so the
// total never exceeds it. When a new key arrives at a full shard, the shard
// examines the next keyEvictSample slots at its hand: the first idle one
// found (grace or not) is freed; if none is idle, the examined key with the earliest reset
// time is evicted — the key whose state is closest to full capacity, so the
// one whose loss matters least. Evicting a busy key resets it to full
// capacity: beyond the cap the limiter errs toward admitting, never grows and
// never fails. A shard of at most keyEvictSample keys always evicts its key
// with the earliest reset exactly; larger shards choose among a sample.

const (
	// keyMaxShards is the number of shards for large key caps.
	keyMaxShards = 256
	// keyMinPerShard keeps small caps in few shards, so a small cap is
	// shared by all keys rather than split into tiny per-shard shares.
	keyMinPerShard = 64
	// keySweepPerInsert is how many kept slots a shard's sweep passes each
	// time it inserts a new key below its cap.
	keySweepPerInsert = 2
	// keyEvictSample is how many slots a full shard examines to choose the
	// key a new key replaces.
	keyEvictSample = 32
)

// keyStore maps keys to per-key state S. The zero value is not usable; build
// one with newKeyStore.
type keyStore[S any] struct {
	seed   maphash.Seed
	grace  int64 // µs a key stays idle before a sweep frees it
	mask   uint64
	shards []keyShard[S]
}

// keyShard is one lock's worth of keys. Its fields are guarded by mu.
type keyShard[S any] struct {
	mu    sync.Mutex
	index map[string]int // key -> position in slots
	slots []keySlot[S]
	hand  int   // next slot the sweep examines
	last  int   // slot of the latest lookup or insert: checked before the map
	max   int   // this shard's share of the key cap, at least 1
	grace int64 // as keyStore.grace
}

// keySlot is the state of one key.
type keySlot[S any] struct {
	key string
	// reset is the time (µs since the Unix epoch) from which the key's
	// state is back at full capacity and the slot may be freed.
	reset int64
	s     S
}

// newKeyStore returns a store holding at most maxKeys keys (maxKeys ≥ 1),
// whose sweeps free keys idle for grace µs or more.
func newKeyStore[S any](maxKeys int, grace int64) keyStore[S] {
	n := 1
	for n < keyMaxShards && n*2*keyMinPerShard <= maxKeys {
		n *= 2
	}
	st := keyStore[S]{seed: maphash.MakeSeed(), grace: grace, mask: uint64(n - 1), shards: make([]keyShard[S], n)}
	for i := range st.shards {
		st.shards[i].grace = grace
		st.shards[i].max = maxKeys / n
		if i < maxKeys%n {
			st.shards[i].max++
		}
	}
	return st
}

// shard returns the shard that holds key.
func (st *keyStore[S]) shard(key string) *keyShard[S] {
	if st.mask == 0 {
		return &st.shards[0]
	}
	return &st.shards[maphash.String(st.seed, key)&st.mask]
}

// len returns how many keys hold state.
func (st *keyStore[S]) len() int {
	total := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		total += len(sh.slots)
		sh.mu.Unlock()
	}
	return total
}

// lookup returns key's slot, or nil when key holds no state. The pointer is
// valid until the shard next inserts or frees a slot. Requires sh.mu held.
//
// A key asked for again and again (one hot tenant, the usual case of a
// shard) is found by comparing it with the slot of the previous lookup,
// without hashing it into the map: the slot's key is compared, so a slot
// moved or freed since is never mistaken for the key's.
func (sh *keyShard[S]) lookup(key string) *keySlot[S] {
	if i := sh.last; i < len(sh.slots) && sh.slots[i].key == key {
		return &sh.slots[i]
	}
	if i, ok := sh.index[key]; ok {
		sh.last = i
		return &sh.slots[i]
	}
	return nil
}

// insert adds a slot for key, which must hold no state, with the zero S,
// making room first when the shard is at its cap. now (µs) decides which
// keys are idle. Requires sh.mu held; the returned pointer is valid as for
// lookup.
func (sh *keyShard[S]) insert(key string, now int64) *keySlot[S] {
	if len(sh.slots) >= sh.max {
		sh.evict(now)
	} else {
		sh.sweep(now, keySweepPerInsert)
	}
	if sh.index == nil {
		sh.index = make(map[string]int)
	}
	// The key is cloned so that the store never pins the memory of a larger
	// string the caller's key was cut from.
	k := strings.Clone(key)
	i := len(sh.slots)
	sh.slots = append(sh.slots, keySlot[S]{key: k})
	sh.index[k] = i
	sh.last = i
	return &sh.slots[i]
}

// sweep frees the slots idle for at least the grace from the hand on, until
// it has passed n slots it keeps (or the shard is empty). Each slot is freed
// once, so the cost of freeing is paid by the insertion that created it.
// Requires sh.mu held.
func (sh *keyShard[S]) sweep(now int64, n int) {
	for n > 0 && len(sh.slots) > 0 {
		if sh.hand >= len(sh.slots) {
			sh.hand = 0
		}
		if now-sh.grace >= sh.slots[sh.hand].reset {
			sh.free(sh.hand) // the hand now points at the slot moved here
		} else {
			sh.hand++
			n--
		}
	}
}

// evict frees one slot of a non-empty shard: the first idle one among the
// next keyEvictSample slots from the hand, else the examined slot with the
// earliest reset. Requires sh.mu held.
func (sh *keyShard[S]) evict(now int64) {
	victim := -1
	var earliest int64
	for n := min(keyEvictSample, len(sh.slots)); n > 0; n-- {
		if sh.hand >= len(sh.slots) {
			sh.hand = 0
		}
		r := sh.slots[sh.hand].reset
		if now >= r {
			sh.free(sh.hand)
			return
		}
		if victim < 0 || r < earliest {
			victim, earliest = sh.hand, r
		}
		sh.hand++
	}
	if victim >= 0 {
		sh.free(victim)
	}
}

// free removes slot i, moving the last slot into its place. Requires sh.mu
// held.
func (sh *keyShard[S]) free(i int) {
	last := len(sh.slots) - 1
	delete(sh.index, sh.slots[i].key)
	if i != last {
		sh.slots[i] = sh.slots[last]
		sh.index[sh.slots[i].key] = i
	}
	sh.slots[last] = keySlot[S]{} // drop references for the collector
	sh.slots = sh.slots[:last]
}

// keyedCore is what every keyed limiter shares: its clock, observer and
// name, from the options.
type keyedCore struct {
	clock    fastClock
	observer bulwark.Observer
	name     string
}

// observe emits a decision event. Callers check c.observer != nil first, so
// an unobserved limiter builds no event; it is never called with a lock held.
func (c *keyedCore) observe(pattern string, at time.Time, d bulwark.Decision) {
	c.observer.Observe(bulwark.Event{
		Kind:      bulwark.EventDecision,
		Pattern:   pattern,
		Name:      c.name,
		Time:      at,
		Allowed:   d.Allowed,
		Limit:     d.Limit,
		Remaining: d.Remaining,
	})
}

// badTokens is the error of Allow with n outside [1, most].
func badTokens(n, most int) error {
	return core.ArgumentError("n must be between 1 and the limiter's capacity %d, got %d", most, n)
}

// micros turns a count of microseconds into a Duration.
func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// ceilDiv64 is ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv64(a, b int64) int64 { return (a + b - 1) / b }

// floorDiv64 is ⌊a/b⌋ for b > 0 and any a (times before 1970 are negative).
func floorDiv64(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
