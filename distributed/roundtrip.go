package distributed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// The path of one Redis round trip, from a primitive's call to its raw
// reply: the degraded short cut, the batching lanes, the time budget, the
// detached goroutine for clients that ignore deadlines, EVALSHA then EVAL,
// and the health and events of the result.

// noRetryCmd is a script command that go-redis must not send twice: its
// first attempt may have run the script even when no reply came back.
// go-redis (v9) checks Cmder.NoRetry before every retry of a command, on
// standalone, failover, ring and cluster clients alike.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// run is the single path of every Redis round trip of the store's
// primitives: it runs script over keys with args (EVALSHA, then EVAL when
// the server has not cached the script), bounded by the store's timeout,
// and records the result in the store's health and events. A degraded
// store returns its ReasonDegraded *CallError at once, without I/O.
//
// It returns the caller's context error when the caller's context ended
// first, a *CallError for any other failure, and the raw reply otherwise;
// each primitive decodes the reply with its script's decoder.
func (s *Store) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	c := newCall(script)
	c.keys(keys)
	c.argv = append(c.argv, args...)
	return s.runCall(ctx, c)
}

// runCall is run for a call built by the caller, which hands c over: the
// store releases it once nothing refers to it any more.
func (s *Store) runCall(ctx context.Context, c *call) (any, error) {
	if s.health.down.Load() {
		c.release()
		return nil, s.health.degraded.Load()
	}
	start := time.Now()
	if s.lanes != nil {
		if s.timeout > 0 {
			c.deadline = start.Add(s.timeout)
		}
		c.ctx = ctx
		if !s.lanes.enter(c) {
			// Queued: a drainer sends it with the calls queued alongside
			// and books the health of that round trip.
			v, err := s.queued(ctx, c)
			if err != nil && ctx.Err() != nil {
				err = ctx.Err()
			}
			s.emitCall(start, err)
			return v, err
		}
		defer s.leaveLane()
	}
	caller := ctx
	if s.timeout > 0 {
		if dl, ok := ctx.Deadline(); (!ok || dl.Sub(start) > s.timeout) && s.lightDeadline {
			ctx = &deadlineCtx{Context: ctx, d: start.Add(s.timeout)}
		} else if !ok || dl.Sub(start) > s.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, start.Add(s.timeout))
			defer cancel()
		}
	}
	v, err := s.call(ctx, c)
	if err != nil {
		if cerr := caller.Err(); cerr != nil && !s.callerTimeoutCounts(cerr, start) {
			// The caller gave up: that says nothing about Redis.
			s.emitCall(start, cerr)
			return nil, cerr
		}
		err = s.record(err)
	} else {
		s.health.success()
	}
	s.emitCall(start, err)
	return v, err
}

// callerTimeoutCounts reports whether a call ended by the caller's own
// deadline counts as a Redis timeout: when the call had waited at least a
// quarter of the store's budget (shorter deadlines say more about the
// caller than about Redis). Cancellation never counts.
func (s *Store) callerTimeoutCounts(cerr error, start time.Time) bool {
	return errors.Is(cerr, context.DeadlineExceeded) && s.timeout > 0 && time.Since(start) >= s.timeout/4
}

func (s *Store) emitCall(start time.Time, err error) {
	if s.observer == nil {
		return
	}
	core.Emit(s.observer, bulwark.Event{
		Kind:     bulwark.EventStoreCall,
		Pattern:  "store",
		Time:     s.eventTime(),
		Duration: time.Since(start),
		Err:      err,
	})
}

// call runs c once as its own round trip: on the caller's goroutine when
// the client honours context deadlines, else on a detached goroutine that
// the caller stops waiting for at ctx's end. It releases c.
func (s *Store) call(ctx context.Context, c *call) (any, error) {
	if !s.detached {
		v, err := s.evalScript(ctx, c)
		c.release()
		return v, err
	}
	select {
	case s.inflight <- struct{}{}:
	default:
		c.release()
		return nil, &CallError{Reason: ReasonOverload, Err: errors.New("too many detached redis calls in flight")}
	}
	type result struct {
		v   any
		err error
	}
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		<-s.inflight
		c.release()
		return nil, ErrClosed
	}
	s.calls.Add(1)
	s.closeMu.RUnlock()
	done := make(chan result, 1)
	go func() {
		defer s.calls.Done()
		v, err := s.evalScript(ctx, c)
		<-s.inflight
		c.release() // the caller never touches c once it is sent
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// evalScript sends EVALSHA, then EVAL with the source after NOSCRIPT. A
// panic of the client (a user's wrapper: see [Client]) becomes the call's
// error, on whichever goroutine the call runs.
func (s *Store) evalScript(ctx context.Context, c *call) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, s.clientPanic(r)
		}
	}()
	cmd := c.command(ctx, false)
	_ = s.client.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && isNoScript(err) && c.sa.src != nil {
		// EVALSHA did not run: send the source, which also caches it.
		cmd = c.command(ctx, true)
		_ = s.client.Process(ctx, cmd)
	}
	return cmd.Result()
}

// clientPanic counts and reports a panic of the client and returns the
// error the call fails with: a connection failure, since the client could
// not carry the call (so a client that keeps panicking turns the store
// degraded instead of failing every call).
func (s *Store) clientPanic(v any) error {
	s.guard.Note("redis client", v)
	return &CallError{Reason: ReasonConnection, Err: fmt.Errorf("redis client panicked: %v", v)}
}

func isNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
