package distributed

import (
	"context"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

// algPaceHold is the key segment of pacer holds.
const algPaceHold = "ph"

// PaceHolds shares a client-side pacer's holds (bulwarkhttp.Pacer, through
// bulwarkhttp.WithPacerStore) across a fleet: when one replica learns from
// a server that a quota is spent until some time, every replica holds its
// requests to that server until then. It has the method set of
// bulwarkhttp.PacerStore.
//
// Each key (a host, a gRPC target) is one Redis key with a TTL ending with
// the hold; a hold only ever moves later. Holds are wall-clock times, so
// replicas compare them with their own clocks: keep the fleet's clocks in
// sync (NTP) to the precision the holds need. When Redis is unreachable
// the calls fail at once (the store is degraded) and the pacer goes on
// with what it knows locally.
type PaceHolds struct {
	s    *Store
	head string
}

// PaceHolds returns the holds named name (one per group of servers sharing
// quotas). It returns an error wrapping bulwark.ErrInvalidConfig for an
// empty name.
func (s *Store) PaceHolds(name string) (*PaceHolds, error) {
	if name == "" {
		return nil, core.ConfigError("distributed: pace holds need a name")
	}
	return &PaceHolds{s: s, head: keyHead(s.prefix, algPaceHold, name)}, nil
}

// Hold records that key sends nothing before until; a later hold already
// recorded is kept. A hold in the past is not written.
func (p *PaceHolds) Hold(ctx context.Context, key string, until time.Time) error {
	ttl := time.Until(until)
	if ttl <= 0 {
		return nil
	}
	ms := max(int64((ttl+time.Millisecond-1)/time.Millisecond), 1)
	_, err := p.s.run(ctx, lua.PaceHold, []string{limiterKey(p.head, key)},
		strconv.FormatInt(until.UnixMicro(), 10), strconv.FormatInt(ms, 10))
	return err
}

// HeldUntil returns the time until which key is held, or the zero time
// when it is not.
func (p *PaceHolds) HeldUntil(ctx context.Context, key string) (time.Time, error) {
	reply, err := p.s.run(ctx, lua.PaceHold, []string{limiterKey(p.head, key)}, "", "0")
	if err != nil {
		return time.Time{}, err
	}
	us, ok := reply.(int64)
	if !ok {
		return time.Time{}, core.ArgumentError("distributed: unexpected pace hold reply %T", reply)
	}
	if us <= 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(us), nil
}
