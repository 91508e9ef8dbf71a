package distributed

import (
	"context"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/lua"
)

// breakerReply is the decoded reply of lua.BreakerState.
type breakerReply struct {
	state                         bulwark.State
	gen                           uint64
	opened, until, now            int64
	calls, failures, slow, consec int64
	granted, ok, result           int64
}

func breakerConfigArgs(c bulwark.BreakerConfig) []any {
	slowRate := "0"
	if c.SlowCall > 0 {
		slowRate = strconv.FormatFloat(c.SlowCallRate, 'g', -1, 64)
	}
	return []any{
		strconv.FormatInt(c.Window.Microseconds(), 10),
		strconv.Itoa(c.MinimumCalls),
		strconv.FormatFloat(c.FailureRate, 'g', -1, 64),
		strconv.Itoa(c.ConsecutiveFailures),
		slowRate,
		strconv.FormatInt(c.OpenFor.Microseconds(), 10),
		strconv.Itoa(c.HalfOpenCalls),
	}
}

// exec runs one operation of the script and applies its reply to the cache.
func (b *Breaker) exec(ctx context.Context, op string, opArgs ...any) (breakerReply, error) {
	// With an injected clock the script's now is this reading, so a
	// deadline in the reply is exact relative to it; with Redis TIME the
	// reply is read against the local clock when it arrived (see recv).
	var sent time.Time
	var nowArg any = ""
	if b.s.clock != nil {
		sent = b.s.clock.Now()
		nowArg = core.Micros(sent)
	}
	args := make([]any, 0, 12+len(opArgs))
	args = append(args, nowArg, b.s.minTTLms, op, b.channel, b.topic)
	args = append(args, b.cfgArgs...)
	args = append(args, opArgs...)
	b.mu.Lock()
	seq := b.seq
	b.mu.Unlock()
	raw, err := b.s.run(ctx, lua.BreakerState, b.keys, args...)
	if err != nil {
		return breakerReply{}, err
	}
	r, err := decodeBreaker(raw)
	if err != nil {
		return breakerReply{}, err
	}
	recv := sent
	if recv.IsZero() {
		recv = b.now()
	}
	b.mu.Lock()
	b.lastReply = b.now()
	b.applyLocked(r, recv, seq, true)
	b.unlockAndEmit()
	return r, nil
}

// decodeBreaker decodes the reply of lua.BreakerState: 12 non-negative
// integers, the state at most 2.
func decodeBreaker(reply any) (breakerReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 12 {
		return breakerReply{}, &errReply{"breaker", reply}
	}
	var v [12]int64
	for i, x := range arr {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return breakerReply{}, &errReply{"breaker", reply}
		}
		v[i] = n
	}
	if v[0] > 2 {
		return breakerReply{}, &errReply{"breaker", reply}
	}
	return breakerReply{
		state: bulwark.State(v[0]), gen: uint64(v[1]), opened: v[2], until: v[3], now: v[4],
		calls: v[5], failures: v[6], slow: v[7], consec: v[8], granted: v[9], ok: v[10], result: v[11],
	}, nil
}
