package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
	"github.com/bulwark-go/bulwark/policy"
)

// Client is the part of a go-redis v9 client a [Store] uses.
// *redis.Client, *redis.ClusterClient, *redis.Ring and
// redis.UniversalClient satisfy it.
type Client interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	LRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd
}

// Defaults of a [Store].
const (
	// DefaultHistory is how many changes of each policy the history keeps.
	DefaultHistory = 100
	// DefaultTimeout bounds each Redis call of a Store or Replica.
	DefaultTimeout = 2 * time.Second
)

// ErrConflict is returned by [Store.SetIf] when the live value changed
// since the version the caller read: someone else changed it meanwhile.
var ErrConflict = errors.New("bulwark: live config changed concurrently")

// Option configures a [Store].
type Option interface{ applyStore(*storeConfig) }

// ReplicaOption configures a [Replica].
type ReplicaOption interface{ applyReplica(*replicaConfig) }

// SharedOption configures a [Store] and a [Replica] alike.
type SharedOption interface {
	Option
	ReplicaOption
}

type storeConfig struct {
	prefix  string
	history int
	timeout time.Duration
	clock   bulwark.Clock
}

type prefixOpt string

func (p prefixOpt) applyStore(c *storeConfig)     { c.prefix = string(p) }
func (p prefixOpt) applyReplica(c *replicaConfig) { c.prefix = string(p) }

// WithPrefix sets the key prefix (default [DefaultPrefix]): give it the
// prefix of the distributed.Store whose patterns are configured. It must be
// 1 to 128 printable ASCII bytes without braces, spaces or *?[]\.
func WithPrefix(p string) SharedOption { return prefixOpt(p) }

type timeoutOpt time.Duration

func (t timeoutOpt) applyStore(c *storeConfig)     { c.timeout = time.Duration(t) }
func (t timeoutOpt) applyReplica(c *replicaConfig) { c.timeout = time.Duration(t) }

// WithTimeout bounds each Redis call (default [DefaultTimeout]).
func WithTimeout(d time.Duration) SharedOption { return timeoutOpt(d) }

type historyOpt int

func (h historyOpt) applyStore(c *storeConfig) { c.history = int(h) }

// WithHistory sets how many changes of each policy are kept (default
// [DefaultHistory], at least 2 so that a rollback has something to go back
// to).
func WithHistory(n int) Option { return historyOpt(n) }

type clockOpt struct{ c bulwark.Clock }

func (o clockOpt) applyStore(c *storeConfig) { c.clock = o.c }

// WithClock sets the clock that timestamps history records (default the
// system clock).
func WithClock(c bulwark.Clock) Option { return clockOpt{c} }

// Store reads and writes the live configuration of a fleet: the operator's
// side of the control plane (the CLI and the console use it; replicas use a
// [Replica]). Safe for concurrent use; it holds no goroutine and needs no
// Close.
type Store struct {
	client  Client
	k       keys
	history int
	timeout time.Duration
	clock   bulwark.Clock
}

// New returns a Store over client. It returns an error wrapping
// bulwark.ErrInvalidConfig for a nil client or an invalid option. It does
// not contact Redis.
func New(client Client, opts ...Option) (*Store, error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("control: store needs a redis client, got %T(nil)", client)
	}
	c := storeConfig{prefix: DefaultPrefix, history: DefaultHistory, timeout: DefaultTimeout, clock: bulwark.SystemClock}
	for _, o := range opts {
		if !core.IsNil(o) {
			o.applyStore(&c)
		}
	}
	if err := validPrefix(c.prefix); err != nil {
		return nil, err
	}
	if c.history < 2 {
		return nil, core.ConfigError("control: history must keep at least 2 changes, got %d", c.history)
	}
	if c.timeout <= 0 {
		return nil, core.ConfigError("control: timeout must be positive, got %v", c.timeout)
	}
	if core.IsNil(c.clock) {
		return nil, core.ConfigError("control: nil clock")
	}
	return &Store{client: client, k: newKeys(c.prefix), history: c.history, timeout: c.timeout, clock: c.clock}, nil
}

// Prefix returns the store's key prefix.
func (s *Store) Prefix() string { return s.k.prefix }

// Entry is the configuration of one named policy as the store knows it.
type Entry struct {
	Name string
	// Version is the version at which the live value was last written; 0
	// when it never was (the defaults apply).
	Version uint64
	// Layer is the live value: the fields it sets override the defaults.
	// The zero Spec overrides nothing.
	Layer policy.Spec
	// Defaults is the spec (or code) defaults the replicas registered for
	// the name, nil when no replica running it has registered any.
	Defaults *policy.Spec
}

// Effective returns the configuration replicas run: Defaults overlaid
// with Layer (Layer alone when no defaults are registered).
func (e Entry) Effective() policy.Spec {
	if e.Defaults == nil {
		return e.Layer.Clone()
	}
	return e.Defaults.Merge(e.Layer)
}

// Record is one change in a policy's history.
type Record struct {
	Version uint64    `json:"version"` // the version the change created
	Name    string    `json:"name"`
	Prev    uint64    `json:"prev"` // the version it replaced (0: the defaults)
	Who     string    `json:"who,omitempty"`
	Why     string    `json:"why,omitempty"`
	Time    time.Time `json:"time"`
	// Diff lists the live fields the change set, changed or removed.
	Diff []policy.Change `json:"diff"`
	// Layer is the live value the change wrote.
	Layer policy.Spec `json:"layer"`
	// Fresh names the patterns that could not take the change in place and
	// start with fresh state (a new algorithm, period, scope or window),
	// with the reason: "ratelimit: period 1s -> 2s".
	Fresh []string `json:"fresh,omitempty"`
	// RollbackOf is the version whose value this change restored (0: not
	// a rollback).
	RollbackOf uint64 `json:"rollback_of,omitempty"`
}

// Meta says who makes a change and why, for the history.
type Meta struct {
	Who string
	Why string
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Version returns the version counter: the number of changes ever made
// under the prefix (0 before the first).
func (s *Store) Version(ctx context.Context) (uint64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return readVersion(ctx, s.client, s.k)
}

func readVersion(ctx context.Context, c interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}, k keys) (uint64, error) {
	v, err := c.Get(ctx, k.version).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("control: read version: %w", err)
	}
	return v, nil
}

// Get returns the configuration of the policy called name: an Entry with
// Version 0 and an empty Layer when it has no live value.
func (s *Store) Get(ctx context.Context, name string) (Entry, error) {
	if err := validName(name); err != nil {
		return Entry{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	e := Entry{Name: name}
	raw, err := s.client.HGet(ctx, s.k.live, name).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return Entry{}, fmt.Errorf("control: read %s: %w", name, err)
	default:
		if e.Version, e.Layer, err = parseLive(raw); err != nil {
			return Entry{}, fmt.Errorf("control: %s: %w", name, err)
		}
	}
	d, err := s.client.HGet(ctx, s.k.defaults, name).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return Entry{}, fmt.Errorf("control: read defaults of %s: %w", name, err)
	default:
		if spec, err := policy.Parse([]byte(d)); err == nil {
			e.Defaults = &spec
		}
	}
	return e, nil
}

// List returns every policy that has a live value or registered defaults,
// sorted by name.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	live, err := s.client.HGetAll(ctx, s.k.live).Result()
	if err != nil {
		return nil, fmt.Errorf("control: read live values: %w", err)
	}
	defs, err := s.client.HGetAll(ctx, s.k.defaults).Result()
	if err != nil {
		return nil, fmt.Errorf("control: read defaults: %w", err)
	}
	byName := map[string]*Entry{}
	get := func(n string) *Entry {
		if e, ok := byName[n]; ok {
			return e
		}
		e := &Entry{Name: n}
		byName[n] = e
		return e
	}
	for n, raw := range live {
		v, layer, err := parseLive(raw)
		if err != nil {
			return nil, fmt.Errorf("control: %s: %w", n, err)
		}
		e := get(n)
		e.Version, e.Layer = v, layer
	}
	for n, raw := range defs {
		if spec, err := policy.Parse([]byte(raw)); err == nil {
			get(n).Defaults = &spec
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// parseLive decodes "<version> <layer JSON>".
func parseLive(raw string) (uint64, policy.Spec, error) {
	vs, js, ok := strings.Cut(raw, " ")
	v, err := strconv.ParseUint(vs, 10, 64)
	if !ok || err != nil {
		return 0, policy.Spec{}, fmt.Errorf("malformed live value %q", truncate(raw, 40))
	}
	spec, err := policy.Parse([]byte(js))
	if err != nil {
		return 0, policy.Spec{}, fmt.Errorf("live value of version %d: %w", v, err)
	}
	return v, spec, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// History returns the last n changes of the policy called name, newest
// first (n <= 0: all that are kept).
func (s *Store) History(ctx context.Context, name string, n int) ([]Record, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	stop := int64(-1)
	if n > 0 {
		stop = int64(n) - 1
	}
	raws, err := s.client.LRange(ctx, s.k.historyOf(name), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("control: read history of %s: %w", name, err)
	}
	out := make([]Record, 0, len(raws))
	for _, raw := range raws {
		r, err := parseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("control: history of %s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRecord(raw string) (Record, error) {
	vs, js, ok := strings.Cut(raw, " ")
	v, err := strconv.ParseUint(vs, 10, 64)
	if !ok || err != nil {
		return Record{}, fmt.Errorf("malformed record %q", truncate(raw, 40))
	}
	var r Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return Record{}, fmt.Errorf("record of version %d: %w", v, err)
	}
	r.Version = v
	return r, nil
}

// Set replaces the live value of the policy called name with layer (the
// zero Spec: back to the defaults), after validating it over the
// registered defaults. It returns the Record written, or, when layer
// equals the current live value, a Record with an empty Diff and the
// current Version, writing nothing. An invalid layer is refused with an
// error wrapping bulwark.ErrInvalidConfig whose policy.Problems name each
// field at fault; nothing is written then.
//
// The write is one script: the version counter, the live value and the
// history change together or not at all, and the change is published to
// every [Replica]. Set retries when another change to the same policy
// landed between its read and its write; [Store.SetIf] does not.
func (s *Store) Set(ctx context.Context, name string, layer policy.Spec, m Meta) (Record, error) {
	return s.update(ctx, name, m, func(Entry) (policy.Spec, uint64, error) { return layer, 0, nil })
}

// SetIf is Set when the live value is still at version expect (0: it has
// none); otherwise it writes nothing and returns an error wrapping
// ErrConflict.
func (s *Store) SetIf(ctx context.Context, name string, layer policy.Spec, expect uint64, m Meta) (Record, error) {
	return s.update(ctx, name, m, func(e Entry) (policy.Spec, uint64, error) {
		if e.Version != expect {
			return policy.Spec{}, 0, fmt.Errorf("%w: %s is at version %d, not %d", ErrConflict, name, e.Version, expect)
		}
		return layer, 0, nil
	})
}

// Assign changes single fields of the live value of the policy called
// name, each assignment "path=value" as [ParseAssignment] reads it
// ("ratelimit.limit=50", "circuitbreaker.force=open", "timeout=2s",
// "ratelimit.burst=" to remove a field), then sets the result as Set does.
func (s *Store) Assign(ctx context.Context, name string, assignments []string, m Meta) (Record, error) {
	if len(assignments) == 0 {
		return Record{}, core.ArgumentError("control: no field to set (use path=value, such as ratelimit.limit=50)")
	}
	as := make([]Assignment, 0, len(assignments))
	for _, a := range assignments {
		x, err := ParseAssignment(a)
		if err != nil {
			return Record{}, err
		}
		as = append(as, x)
	}
	return s.update(ctx, name, m, func(e Entry) (policy.Spec, uint64, error) {
		l, err := Apply(e.Layer, as...)
		return l, 0, err
	})
}

// Rollback sets the live value of the policy called name back to the one
// version to wrote (a version in its history), or, for to == 0, to the
// value before the current one (the defaults when there was none). The
// rollback is itself a change, with its own version and history record.
func (s *Store) Rollback(ctx context.Context, name string, to uint64, m Meta) (Record, error) {
	if err := validName(name); err != nil {
		return Record{}, err
	}
	return s.update(ctx, name, m, func(Entry) (policy.Spec, uint64, error) {
		hist, err := s.History(ctx, name, 0)
		if err != nil {
			return policy.Spec{}, 0, err
		}
		target := to
		if target == 0 {
			if len(hist) == 0 {
				return policy.Spec{}, 0, core.ArgumentError("control: %s has no change to roll back", name)
			}
			if hist[0].Prev == 0 {
				return policy.Spec{}, 0, nil // before the first change: the defaults
			}
			target = hist[0].Prev
		}
		for _, r := range hist {
			if r.Version == target {
				return r.Layer, target, nil
			}
		}
		return policy.Spec{}, 0, core.ArgumentError("control: version %d of %s is not in its history (kept: the last %d changes)", target, name, s.history)
	})
}

// update reads the policy, lets change compute the new layer, validates
// it and writes it with lua.ConfigSet, retrying a few times on a
// concurrent change.
func (s *Store) update(ctx context.Context, name string, m Meta, change func(Entry) (policy.Spec, uint64, error)) (Record, error) {
	if err := validName(name); err != nil {
		return Record{}, err
	}
	for attempt := 0; ; attempt++ {
		e, err := s.Get(ctx, name)
		if err != nil {
			return Record{}, err
		}
		layer, rollbackOf, err := change(e)
		if err != nil {
			return Record{}, err
		}
		if err := checkLayer(name, e.Defaults, layer); err != nil {
			return Record{}, err
		}
		diff := policy.Diff(e.Layer, layer)
		if len(diff) == 0 {
			return Record{Version: e.Version, Name: name, Prev: e.Version, Layer: e.Layer, Who: m.Who, Why: m.Why}, nil
		}
		next := e
		next.Layer = layer
		r := Record{Name: name, Prev: e.Version, Who: m.Who, Why: m.Why, Time: s.clock.Now().UTC(),
			Diff: diff, Layer: layer, Fresh: Fresh(e.Effective(), next.Effective()), RollbackOf: rollbackOf}
		v, ok, err := s.write(ctx, e.Version, r)
		if err != nil {
			return Record{}, err
		}
		if ok {
			r.Version = v
			return r, nil
		}
		if attempt >= 4 {
			return Record{}, fmt.Errorf("%w: %s kept changing (now at version %d)", ErrConflict, name, v)
		}
	}
}

// checkLayer validates layer over the registered defaults (alone when
// there are none).
func checkLayer(name string, defaults *policy.Spec, layer policy.Spec) error {
	if layer.Name != "" {
		return &policy.Error{Problems: []policy.Problem{{Path: "name",
			Message: "cannot be set live: it names the fleet-wide state (change it in the service's spec)"}}}
	}
	eff := layer
	if defaults != nil {
		eff = defaults.Merge(layer)
	}
	if err := eff.Validate(); err != nil {
		if defaults == nil {
			return fmt.Errorf("%w (no replica has registered defaults for %s, so the live value was checked alone)", err, name)
		}
		return err
	}
	return nil
}

func (s *Store) write(ctx context.Context, expect uint64, r Record) (uint64, bool, error) {
	layerJSON, err := json.Marshal(r.Layer)
	if err != nil {
		return 0, false, fmt.Errorf("control: encode %s: %w", r.Name, err)
	}
	recJSON, err := json.Marshal(r)
	if err != nil {
		return 0, false, fmt.Errorf("control: encode %s: %w", r.Name, err)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	reply, err := lua.ConfigSet.Run(ctx, s.client,
		[]string{s.k.version, s.k.live, s.k.historyOf(r.Name)},
		r.Name, strconv.FormatUint(expect, 10), string(layerJSON), string(recJSON), s.history, s.k.channel).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("control: write %s: %w", r.Name, err)
	}
	if len(reply) != 2 || reply[1] < 0 {
		return 0, false, fmt.Errorf("control: write %s: unexpected reply %v", r.Name, reply)
	}
	return uint64(reply[1]), reply[0] == 1, nil
}

// Fresh lists the patterns of a stack configured as old that start with
// fresh state when it is reconfigured as next, with the reason: a rate
// limit's new algorithm, period or scope, a breaker's new window or scope,
// a bulkhead's new scope. Patterns switched on or off are not listed.
func Fresh(old, next policy.Spec) []string {
	var out []string
	if old.HasRateLimit() && next.HasRateLimit() {
		a, b := old.RateLimit, next.RateLimit
		if x, y := orStr(a.Algorithm, policy.TokenBucket), orStr(b.Algorithm, policy.TokenBucket); x != y {
			out = append(out, fmt.Sprintf("ratelimit: algorithm %s -> %s", x, y))
		}
		if x, y := perOf(a), perOf(b); x != y {
			out = append(out, fmt.Sprintf("ratelimit: period %v -> %v", x, y))
		}
		if x, y := orStr(a.Scope, policy.ScopeFleet), orStr(b.Scope, policy.ScopeFleet); x != y {
			out = append(out, fmt.Sprintf("ratelimit: scope %s -> %s", x, y))
		}
	}
	if old.HasCircuitBreaker() && next.HasCircuitBreaker() {
		a, b := old.CircuitBreaker, next.CircuitBreaker
		if x, y := windowOf(a), windowOf(b); x != y {
			out = append(out, fmt.Sprintf("circuitbreaker: window %v -> %v", x, y))
		}
		if x, y := orStr(a.Scope, policy.ScopeFleet), orStr(b.Scope, policy.ScopeFleet); x != y {
			out = append(out, fmt.Sprintf("circuitbreaker: scope %s -> %s", x, y))
		}
	}
	if old.HasBulkhead() && next.HasBulkhead() {
		if x, y := orStr(old.Bulkhead.Scope, policy.ScopeFleet), orStr(next.Bulkhead.Scope, policy.ScopeFleet); x != y {
			out = append(out, fmt.Sprintf("bulkhead: scope %s -> %s", x, y))
		}
	}
	return out
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func perOf(r *policy.RateLimit) time.Duration {
	if r.Per != nil && *r.Per > 0 {
		return time.Duration(*r.Per)
	}
	return policy.DefaultPer
}

func windowOf(c *policy.CircuitBreaker) time.Duration {
	if c.Window != nil && *c.Window > 0 {
		return time.Duration(*c.Window)
	}
	return bulwark.DefaultBreakerConfig().Window
}

// Replicas returns the status of every replica whose last heartbeat has
// not expired, sorted by id.
func (s *Store) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	all, err := s.client.HGetAll(ctx, s.k.replicas).Result()
	if err != nil {
		return nil, fmt.Errorf("control: read replicas: %w", err)
	}
	now := s.clock.Now()
	out := make([]ReplicaStatus, 0, len(all))
	for _, raw := range all {
		var st ReplicaStatus
		if json.Unmarshal([]byte(raw), &st) != nil || st.Expires.Before(now) {
			continue
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
