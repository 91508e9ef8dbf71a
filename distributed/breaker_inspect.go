package distributed

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/lua"
)

// BreakerInfo is the fleet-wide state of one breaker, as
// [Store.BreakerState] reads it.
type BreakerInfo struct {
	// Name is the breaker's name.
	Name string
	// Exists is false when Redis holds no state for the breaker (never
	// used, expired, or lost): it then counts as closed.
	Exists bool
	// State is the state a call would find now: an open breaker whose
	// open period has passed shows HalfOpen, a half-open one whose trial
	// did not report in time shows Open.
	State bulwark.State
	// Generation counts transitions; see [Breaker].
	Generation uint64
	// OpenedAt is when the breaker last opened (zero when closed), and
	// OpenUntil when an open breaker goes half-open; both Redis time.
	OpenedAt, OpenUntil time.Time
	// Calls, Failures and SlowCalls are the fleet's outcomes in the window
	// (closed state).
	Calls, Failures, SlowCalls int64
	// ConsecutiveFailures is the fleet's current run of failures (closed).
	ConsecutiveFailures int64
	// TrialsGranted and TrialsSucceeded count the half-open trial calls.
	TrialsGranted, TrialsSucceeded int64
	// Now is Redis's time when the state was read.
	Now time.Time
}

// BreakerState reads the fleet-wide state of breaker name without changing
// anything (one round trip): what a `bulwark inspect` command shows. The
// window and open period are those the breaker's replicas last wrote. It
// returns Redis's error, if any, and ErrClosed after Close.
func (s *Store) BreakerState(ctx context.Context, name string) (BreakerInfo, error) {
	if s.closed.Load() {
		return BreakerInfo{}, ErrClosed
	}
	state, counts, topic := breakerKeys(s.prefix, name)
	args := []any{s.nowArg(), s.minTTLms, "peek", "", topic}
	args = append(args, breakerConfigArgs(bulwark.DefaultBreakerConfig())...)
	raw, err := s.run(ctx, lua.BreakerState, []string{state, counts}, args...)
	if err != nil {
		return BreakerInfo{}, err
	}
	r, err := decodeBreaker(raw)
	if err != nil {
		return BreakerInfo{}, err
	}
	info := BreakerInfo{
		Name: name, Exists: r.gen != 0, State: r.state, Generation: r.gen,
		Calls: r.calls, Failures: r.failures, SlowCalls: r.slow, ConsecutiveFailures: r.consec,
		TrialsGranted: r.granted, TrialsSucceeded: r.ok, Now: time.UnixMicro(r.now),
	}
	if r.opened != 0 {
		info.OpenedAt = time.UnixMicro(r.opened)
	}
	if r.state == bulwark.Open && r.until != 0 {
		info.OpenUntil = time.UnixMicro(r.until)
	}
	return info, nil
}

// Breakers lists the names of the breakers that have state in Redis under
// the store's prefix (on every master of a cluster), sorted by nothing in
// particular. A name longer than 64 bytes of plain text (48 otherwise) is
// stored hashed and listed as "!" followed by its hash, which
// [Store.BreakerState] does not accept; use short names for breakers.
func (s *Store) Breakers(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	head := s.prefix + ":" + algBreaker + ":{"
	pattern := head + "*}:s"
	var mu sync.Mutex
	var names []string
	scan := func(ctx context.Context, c Client) error {
		var cursor int64
		for {
			cmd := redis.NewCmd(ctx, "scan", cursor, "match", pattern, "count", 500)
			_ = c.Process(ctx, cmd)
			v, err := cmd.Result()
			if err != nil {
				return err
			}
			arr, ok := v.([]any)
			if !ok || len(arr) != 2 {
				return &errReply{"scan", v}
			}
			cs, _ := arr[0].(string)
			keys, _ := arr[1].([]any)
			for _, k := range keys {
				key, _ := k.(string)
				tag := strings.TrimSuffix(strings.TrimPrefix(key, head), "}:s")
				mu.Lock()
				names = append(names, decodePart(tag))
				mu.Unlock()
			}
			cursor, err = strconv.ParseInt(cs, 10, 64)
			if err != nil {
				return &errReply{"scan", v}
			}
			if cursor == 0 {
				return nil
			}
		}
	}
	type masters interface {
		ForEachMaster(ctx context.Context, fn func(ctx context.Context, client *redis.Client) error) error
	}
	var err error
	if m, ok := s.client.(masters); ok {
		err = m.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return nil, err
	}
	return names, nil
}

// decodePart inverts appendPart where it can: plain text as is, "~" and
// base64; a hashed part ("!…") is returned unchanged.
func decodePart(p string) string {
	if strings.HasPrefix(p, "~") {
		if raw, err := base64.RawURLEncoding.DecodeString(p[1:]); err == nil {
			return string(raw)
		}
	}
	return p
}
