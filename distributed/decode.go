package distributed

import (
	"fmt"

	"github.com/bulwark-go/bulwark"
)

// errReply reports a script reply of an unexpected shape: a proxy, a fork
// or a foreign script answering in place of ours. The store treats it like
// any failed call.
type errReply struct {
	script string
	reply  any
}

func (e *errReply) Error() string {
	return fmt.Sprintf("bulwark: unexpected reply from the %s script: %T %v", e.script, e.reply, e.reply)
}

// replyInts checks that reply is an array of exactly len(dst) non-negative
// integers and copies them into dst.
func replyInts(script string, reply any, dst []int64) error {
	arr, ok := reply.([]any)
	if !ok || len(arr) != len(dst) {
		return &errReply{script, reply}
	}
	for i, v := range arr {
		x, ok := v.(int64)
		if !ok || x < 0 {
			return &errReply{script, reply}
		}
		dst[i] = x
	}
	if dst[0] > 1 {
		return &errReply{script, reply}
	}
	return nil
}

// gcraUnits is a token-bucket limit in the units lua.TokenBucket counts
// in: Events and the period in µs divided by their greatest common
// divisor. The arithmetic of docs/algorithms.md gives the same decisions in
// any such units (every quantity scales by the same factor), and with e = 1
// (whenever Period/Events is a whole number of µs) the script's state is a
// whole number of µs, which Redis stores as an integer.
type gcraUnits struct {
	e, p     int64 // a token costs p units; e units pass per µs
	tau      int64 // tolerance: capacity × p
	capacity int
}

func newGCRAUnits(l bulwark.Limit) gcraUnits {
	e, p := int64(l.Events), l.PeriodMicros()
	a, b := e, p
	for b != 0 {
		a, b = b, a%b
	}
	e, p = e/a, p/a
	return gcraUnits{e: e, p: p, tau: int64(l.Capacity()) * p, capacity: l.Capacity()}
}

// ceilDiv is ⌈a/b⌉ for a ≥ 0, b ≥ 1.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// decodeTokenBucket decodes the reply of lua.TokenBucket, {1, need} when it
// admitted n tokens (need: the debt after the call) or {0, debt} when it
// denied them (the debt before), into the Decision of docs/algorithms.md.
// A reply that contradicts itself (an admission beyond the tolerance, a
// denial of what fits) is an error, like any other shape.
func decodeTokenBucket(reply any, g gcraUnits, n int64) (bulwark.Decision, error) {
	var v [2]int64
	if err := replyInts("token bucket", reply, v[:]); err != nil {
		return bulwark.Decision{}, err
	}
	// v[1] < 2^53 (the script's doubles), so need below cannot overflow.
	if v[1] >= 1<<53 {
		return bulwark.Decision{}, &errReply{"token bucket", reply}
	}
	if v[0] == 1 {
		need := v[1]
		if need > g.tau || need < n*g.p {
			return bulwark.Decision{}, &errReply{"token bucket", reply}
		}
		return bulwark.Decision{
			Allowed:    true,
			Limit:      g.capacity,
			Remaining:  int((g.tau - need) / g.p),
			ResetAfter: micros(ceilDiv(need, g.e)),
		}, nil
	}
	debt := v[1]
	need := debt + n*g.p
	if need <= g.tau {
		return bulwark.Decision{}, &errReply{"token bucket", reply}
	}
	return bulwark.Decision{
		Limit:      g.capacity,
		Remaining:  int(max(g.tau-debt, 0) / g.p),
		RetryAfter: micros(ceilDiv(need-g.tau, g.e)),
		ResetAfter: micros(ceilDiv(debt, g.e)),
	}, nil
}

// decodeTokenBucketMulti decodes the reply of lua.MultiTokenBucket run over
// len(capacities) keys, {allowed, then (remaining, retry_after_µs,
// reset_after_µs) per key}, into the most restrictive decision: the fewest
// Remaining (and that limit's capacity as Limit), the longest RetryAfter
// and the longest ResetAfter. buf is scratch space of 1+3k values.
func decodeTokenBucketMulti(reply any, capacities []int, buf []int64) (bulwark.Decision, error) {
	if err := replyInts("token bucket", reply, buf); err != nil {
		return bulwark.Decision{}, err
	}
	d := bulwark.Decision{Allowed: buf[0] == 1}
	for i, c := range capacities {
		rem, retry, reset := int(buf[1+3*i]), micros(buf[2+3*i]), micros(buf[3+3*i])
		if i == 0 || rem < d.Remaining {
			d.Remaining, d.Limit = rem, c
		}
		d.RetryAfter = max(d.RetryAfter, retry)
		d.ResetAfter = max(d.ResetAfter, reset)
	}
	return d, nil
}

// decodeWindow decodes the reply shared by lua.FixedWindow,
// lua.SlidingWindow and lua.SlidingLog: {allowed, remaining,
// retry_after_µs, reset_after_µs}.
func decodeWindow(reply any, events int) (bulwark.Decision, error) {
	var v [4]int64
	if err := replyInts("window", reply, v[:]); err != nil {
		return bulwark.Decision{}, err
	}
	return bulwark.Decision{
		Allowed:    v[0] == 1,
		Limit:      events,
		Remaining:  int(v[1]),
		RetryAfter: micros(v[2]),
		ResetAfter: micros(v[3]),
	}, nil
}
