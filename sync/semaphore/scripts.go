package semaphore

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/lua"
)

// acquireReply is the decoded reply of lua.SemaphoreAcquire.
type acquireReply struct {
	ok     bool
	token  uint64
	expiry int64         // µs, Redis time; when ok
	wait   time.Duration // until the earliest lease expires; when !ok (0: none)
	free   int64         // slots free after the call
}

// decodeAcquire decodes {1, token, expiry, free} or {0, wait, free}.
func decodeAcquire(v any) (acquireReply, error) {
	a, ok := v.([]any)
	if ok && len(a) == 4 && isInt(a[0], 1) {
		token, ok1 := a[1].(int64)
		exp, ok2 := a[2].(int64)
		free, ok3 := a[3].(int64)
		if ok1 && ok2 && ok3 && token > 0 && exp > 0 && free >= 0 {
			return acquireReply{ok: true, token: uint64(token), expiry: exp, free: free}, nil
		}
	}
	if ok && len(a) == 3 && isInt(a[0], 0) {
		wait, ok1 := a[1].(int64)
		free, ok2 := a[2].(int64)
		if ok1 && ok2 && wait >= 0 && free >= 0 {
			return acquireReply{wait: time.Duration(wait) * time.Microsecond, free: free}, nil
		}
	}
	return acquireReply{}, unexpected("acquire", v)
}

// releaseReply is the decoded reply of lua.SemaphoreRelease.
type releaseReply struct{ released, withdrawn bool }

// decodeRelease decodes {released, withdrawn}, each 0 or 1.
func decodeRelease(v any) (releaseReply, error) {
	if a, ok := v.([]any); ok && len(a) == 2 {
		r, ok1 := a[0].(int64)
		w, ok2 := a[1].(int64)
		if ok1 && ok2 && (r == 0 || r == 1) && (w == 0 || w == 1) {
			return releaseReply{released: r == 1, withdrawn: w == 1}, nil
		}
	}
	return releaseReply{}, unexpected("release", v)
}

// decodeRenew decodes {1, expiry} (renewed) or {0} (lost).
func decodeRenew(v any) (renewed bool, err error) {
	if a, ok := v.([]any); ok {
		switch {
		case len(a) == 1 && isInt(a[0], 0):
			return false, nil
		case len(a) == 2 && isInt(a[0], 1):
			if exp, ok := a[1].(int64); ok && exp > 0 {
				return true, nil
			}
		}
	}
	return false, unexpected("renew", v)
}

// LeaseInfo describes one live lease, as listed by [Weighted.Holders].
type LeaseInfo struct {
	ID        string        // the lease id, as Lease.ID returns it
	Weight    int64         // slots held
	Token     uint64        // fencing token
	ExpiresIn time.Duration // until the lease expires unless renewed, by the Redis clock
}

// inspectReply is the decoded reply of lua.SemaphoreInspect.
type inspectReply struct {
	waiting int64
	holders []LeaseInfo
}

// decodeInspect decodes {now, waiting, id, n, token, expiry, ...}.
func decodeInspect(v any) (inspectReply, error) {
	a, ok := v.([]any)
	if !ok || len(a) < 2 || (len(a)-2)%4 != 0 {
		return inspectReply{}, unexpected("inspect", v)
	}
	now, ok1 := a[0].(int64)
	waiting, ok2 := a[1].(int64)
	if !ok1 || !ok2 || waiting < 0 {
		return inspectReply{}, unexpected("inspect", v)
	}
	r := inspectReply{waiting: waiting, holders: make([]LeaseInfo, 0, (len(a)-2)/4)}
	for i := 2; i < len(a); i += 4 {
		id, ok1 := a[i].(string)
		n, ok2 := a[i+1].(int64)
		token, ok3 := a[i+2].(int64)
		exp, ok4 := a[i+3].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || n < 1 || token < 1 || exp < now {
			return inspectReply{}, unexpected("inspect", v)
		}
		r.holders = append(r.holders, LeaseInfo{
			ID: id, Weight: n, Token: uint64(token),
			ExpiresIn: time.Duration(exp-now) * time.Microsecond,
		})
	}
	return r, nil
}

func isInt(v any, want int64) bool {
	i, ok := v.(int64)
	return ok && i == want
}

func unexpected(script string, v any) error {
	return fmt.Errorf("semaphore: unexpected reply from the %s script: %#v", script, v)
}

// The calls, one per script. Arguments are passed as int64 and string.

func (w *Weighted) callAcquire(ctx context.Context, id string, n int64, waitTTL time.Duration) (acquireReply, error) {
	v, err := w.run(ctx, lua.SemaphoreAcquire, w.keys.acquire,
		id, n, w.capacity, w.ttl.Microseconds(), waitTTL.Microseconds(), w.keys.channel, FenceTTL.Milliseconds())
	if err != nil {
		return acquireReply{}, err
	}
	return decodeAcquire(v)
}

func (w *Weighted) callRelease(ctx context.Context, id string, n int64) (releaseReply, error) {
	v, err := w.run(ctx, lua.SemaphoreRelease, w.keys.release, id, waiterEntry(id, n), w.keys.channel)
	if err != nil {
		return releaseReply{}, err
	}
	return decodeRelease(v)
}

func (w *Weighted) callRenew(ctx context.Context, id string) (bool, error) {
	v, err := w.run(ctx, lua.SemaphoreRenew, w.keys.renew, id, w.ttl.Microseconds(), w.keys.channel)
	if err != nil {
		return false, err
	}
	return decodeRenew(v)
}

// maxInspect bounds how many leases one inspection lists.
const maxInspect = 100_000

func (w *Weighted) callInspect(ctx context.Context) (inspectReply, error) {
	v, err := w.run(ctx, lua.SemaphoreInspect, w.keys.inspect, int64(maxInspect))
	if err != nil {
		return inspectReply{}, err
	}
	return decodeInspect(v)
}

// waiterEntry is the queue member of a waiting Acquire: "<id>:<n>".
func waiterEntry(id string, n int64) string {
	return fmt.Sprintf("%s:%d", id, n)
}
