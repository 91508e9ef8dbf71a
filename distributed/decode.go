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

// decodeTokenBucket decodes the reply of lua.TokenBucket run over one key:
// {allowed, remaining, retry_after_µs, reset_after_µs}.
func decodeTokenBucket(reply any, capacity int) (bulwark.Decision, error) {
	var v [4]int64
	if err := replyInts("token bucket", reply, v[:]); err != nil {
		return bulwark.Decision{}, err
	}
	return bulwark.Decision{
		Allowed:    v[0] == 1,
		Limit:      capacity,
		Remaining:  int(v[1]),
		RetryAfter: micros(v[2]),
		ResetAfter: micros(v[3]),
	}, nil
}

// decodeTokenBucketMulti decodes the reply of lua.TokenBucket run over
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
