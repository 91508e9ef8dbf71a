package distributed

import (
	"context"
	"strconv"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

// MaxMultiLimits is how many limits one [Multi] may combine.
const MaxMultiLimits = 16

// NamedLimit is one limit of a [Multi]: a token-bucket limit and the name
// that keeps its state apart from the other limits.
type NamedLimit struct {
	Name  string
	Limit bulwark.Limit
}

// Multi checks several token-bucket limits for one request in one script
// and takes tokens from all of them, or from none: for instance per user
// 10/s and 1000/day, and per tenant 500/s. A request denied by any limit
// leaves every limit untouched.
//
// One script touches all keys of a request, so in a Redis Cluster they must
// live in one hash slot. The caller names the shared part, the tag: [Multi.Allow]
// applies every limit to one key (the tag is the key), and [Multi.AllowKeys]
// applies limit i to keys[i] under a tag the caller gives, such as the
// tenant of a per-user and per-tenant pair. The tag only places the keys;
// the state of limit i belongs to (Multi name, limit name, keys[i]), so use
// one tag per key consistently (a tenant's users under the tenant's tag).
//
// Limits whose keys cannot share a tag (per user and per client IP, say)
// cannot be checked atomically. Chain separate limiters instead, with
// [NewTiered] (nested for more than two): each tier is asked only when the
// previous ones admitted, and a later denial leaves the earlier tiers'
// tokens taken, so the chain errs towards denying, never towards admitting
// more than any one limit allows.
//
// The decision is the most restrictive one: Allowed only if every limit
// admits; Remaining is the fewest left in any limit and Limit that limit's
// capacity; RetryAfter and ResetAfter are the longest. The state of a Multi
// is its own: a [TokenBucket] of the same name shares nothing with it.
//
// Safe for concurrent use. Build it with [Store.Multi].
type Multi struct {
	store  *Store
	name   string
	limits []NamedLimit
	max    int      // largest n: the smallest capacity
	caps   []int    // capacity per limit
	head   string   // "<prefix>:tb:{"
	tails  []string // "}<name>:<limit name>:" per limit
	largs  []any    // E, P, C per limit
	twins  []*twin  // FailLocal: one per limit, with this replica's share
}

var _ bulwark.Limiter = (*Multi)(nil)

// Multi returns a limiter checking limits together (1 to
// [MaxMultiLimits], distinct names, each limit valid) under the name name.
// Bad limits return an error wrapping bulwark.ErrInvalidConfig.
func (s *Store) Multi(name string, limits ...NamedLimit) (*Multi, error) {
	if len(limits) == 0 || len(limits) > MaxMultiLimits {
		return nil, core.ConfigError("multi-limit %q needs 1 to %d limits, got %d", name, MaxMultiLimits, len(limits))
	}
	m := &Multi{
		store:  s,
		name:   name,
		limits: append([]NamedLimit(nil), limits...),
		head:   s.prefix + ":" + algTokenBucket + ":{",
	}
	seen := map[string]bool{}
	for i, nl := range limits {
		if err := nl.Limit.Validate(); err != nil {
			return nil, err
		}
		if seen[nl.Name] {
			return nil, core.ConfigError("multi-limit %q: limit name %q used twice", name, nl.Name)
		}
		seen[nl.Name] = true
		c := nl.Limit.Capacity()
		if i == 0 || c < m.max {
			m.max = c
		}
		m.caps = append(m.caps, c)
		tail := append([]byte{'}'}, appendPart(nil, name, false)...)
		tail = append(tail, ':')
		tail = appendPart(tail, nl.Name, false)
		tail = append(tail, ':')
		m.tails = append(m.tails, string(tail))
		m.largs = append(m.largs, strconv.Itoa(nl.Limit.Events), strconv.FormatInt(nl.Limit.PeriodMicros(), 10), strconv.Itoa(c))
		m.twins = append(m.twins, newTwin(algTokenBucket, nl.Limit, s.clock))
	}
	return m, nil
}

// Allow applies every limit to key, taking n tokens from all or none.
// 1 ≤ n ≤ the smallest capacity; other n return an error wrapping
// bulwark.ErrInvalidArgument.
func (m *Multi) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	return m.allow(ctx, key, nil, key, n)
}

// AllowKeys applies limit i to keys[i], taking n tokens from all or none;
// every key is stored under the hash tag tag, so one script can touch them
// all in a Redis Cluster. len(keys) must equal the number of limits.
func (m *Multi) AllowKeys(ctx context.Context, tag string, keys []string, n int) (bulwark.Decision, error) {
	if len(keys) != len(m.limits) {
		return bulwark.Decision{}, core.ArgumentError("multi-limit %q: %d keys for %d limits", m.name, len(keys), len(m.limits))
	}
	return m.allow(ctx, tag, keys, "", n)
}

// allow runs the token-bucket script over one key per limit: keys[i], or
// key for all when keys is nil.
func (m *Multi) allow(ctx context.Context, tag string, keys []string, key string, n int) (bulwark.Decision, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Decision{}, err
	}
	if n < 1 || n > m.max {
		return bulwark.Decision{}, core.ArgumentError("multi-limit %q: n must be between 1 and %d, got %d", m.name, m.max, n)
	}
	s := m.store
	if s.closed.Load() {
		return bulwark.Decision{}, ErrClosed
	}
	rkeys := make([]string, len(m.limits))
	userKey := func(i int) string {
		if keys == nil {
			return key
		}
		return keys[i]
	}
	for i := range m.limits {
		b := make([]byte, 0, len(m.head)+len(m.tails[i])+80)
		b = append(b, m.head...)
		b = appendPart(b, tag, true)
		b = append(b, m.tails[i]...)
		b = appendPart(b, userKey(i), true)
		rkeys[i] = string(b)
	}
	args := make([]any, 0, 3+len(m.largs))
	args = append(args, s.nowArg(), s.minTTLms, n)
	args = append(args, m.largs...)
	var d bulwark.Decision
	reply, err := s.run(ctx, lua.MultiTokenBucket, rkeys, args...)
	if err == nil {
		d, err = decodeTokenBucketMulti(reply, m.caps, make([]int64, 1+3*len(m.limits)))
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return bulwark.Decision{}, cerr
		}
		// Degraded: by the store's failure policy; for FailLocal the local
		// twins one after the other (not atomic: an earlier limit keeps its
		// tokens when a later one denies).
		if s.policy != FailLocal {
			d = s.degradedDecision(s.policy, m.max, n)
		}
		for i, twin := range m.twins {
			if s.policy != FailLocal {
				break
			}
			td, err := twin.allow(ctx, s, tag+"\x00"+userKey(i), n)
			if err != nil {
				return bulwark.Decision{}, err
			}
			if i == 0 {
				d = td
			} else {
				d = combine(d, td)
			}
			if !td.Allowed {
				break
			}
		}
		d.Degraded = true
	}
	s.emitDecision(patternMulti, m.name, d)
	return d, nil
}

// combine merges the decisions of two limits that both had to admit: the
// most restrictive of each field.
func combine(a, b bulwark.Decision) bulwark.Decision {
	d := a
	d.Allowed = a.Allowed && b.Allowed
	if b.Remaining < a.Remaining {
		d.Remaining, d.Limit = b.Remaining, b.Limit
	}
	d.RetryAfter = max(a.RetryAfter, b.RetryAfter)
	d.ResetAfter = max(a.ResetAfter, b.ResetAfter)
	d.Degraded = a.Degraded || b.Degraded
	return d
}
