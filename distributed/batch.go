package distributed

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/lua"
)

// DefaultBatchLanes is the number of Redis round trips a store has in
// flight at once before further calls are batched (see [WithBatching]).
const DefaultBatchLanes = 4

// maxBatch caps the commands of one pipeline; calls beyond it wait for the
// lane's next round trip.
const maxBatch = 128

// WithBatching sets how many Redis round trips the store's calls may have
// in flight at once before it batches them: lanes (default
// [DefaultBatchLanes]); 0 turns batching off.
//
// A call that finds a free lane goes out at once on the caller's
// goroutine, as its own round trip: batching adds no delay. A call that
// finds every lane busy queues; when a lane's round trip ends, everything
// queued meanwhile (up to 128 calls) goes out as one pipeline, sent by a
// goroutine of the store while each caller waits for its own reply. Under
// concurrency this trades a wait for a free lane for far fewer socket
// reads and writes on both sides (one per pipeline instead of one per
// call), which is what bounds throughput when Redis and its clients share
// a few cores; BENCHMARKS.md has the measurements.
//
// Within a pipeline, the calls of one token bucket or fixed window for
// the same key and n are merged into one script call that decides them
// in turn (lua.TokenBucket's and lua.FixedWindow's ARGV k): each caller
// gets, field for field, the decision a call of its own would have had
// had the calls run one after the other, in the order they queued, at the
// instant the merged call runs (Redis TIME, or with [WithClock] the latest
// of the calls' times). On a hot key Redis then runs the script
// once per pipeline rather than once per call. Calls with a different n,
// and the other limiters, are sent one command each.
//
// What does not change with batching:
//   - each call is sent at most once: pipelines hold the same
//     non-retryable commands (go-redis does not retry a pipeline holding
//     one), and a command that got NOSCRIPT (not run) is sent again as
//     EVAL;
//   - each call waits at most the store's timeout (counted from the call,
//     so a queued call has less of it left for its round trip) or its
//     context: a caller whose context ends returns at once, even while its
//     pipeline is in flight (the script may still run, as when a reply is
//     lost); a queued call whose context ended before its pipeline was
//     sent is not sent;
//   - health: a pipeline counts as one call. It is a failure when any of
//     its commands failed with a reason that says Redis is unavailable
//     (the first such error is recorded), else a success when any command
//     succeeded. A hung Redis therefore costs one failure per lane per
//     timeout, and the store turns degraded after
//     ceil(failure threshold / lanes) timeouts; calls queued when the store
//     turns degraded are decided at once, without I/O;
//   - observers hear one EventStoreCall per call, whose Duration includes
//     the time it queued; merged calls share one command, so they succeed
//     or fail together (each failed caller decides by its limiter's
//     failure policy, as for any failed call).
//
// Batching needs a client that applies context deadlines to its sockets
// (ContextTimeoutEnabled, as set by [ClientOptions], read from the
// client's Options method: see [Client]); with a client that ignores them
// the option is ignored and every call is its own round trip, on a
// goroutine of its own. On a Redis Cluster
// client a pipeline is split per node by go-redis, each part a round trip
// of its own, all sent in parallel. Keep lanes below the client's
// PoolSize so that the store's round trips never wait for a connection.
func WithBatching(lanes int) Option {
	return func(c *config) { c.lanes, c.dispatch = lanes, false }
}

// WithDispatcher sends every call of the store through one writer
// goroutine that coalesces concurrent calls into pipelines: a call joins
// the queue; when no pipeline is in flight the writer sends at once what
// is queued, and the calls that arrive while a pipeline is in flight go
// out together, as the next pipeline, the moment it returns (up to 128
// calls each). Unlike the lanes of [WithBatching], no call goes out on its
// caller's goroutine and at most one pipeline of the store is in flight,
// so pipelines are as dense as the concurrency allows, at the cost of a
// hand-off to the writer on every call. It replaces the lanes of an
// earlier WithBatching (and a later WithBatching replaces it). Every
// guarantee listed at [WithBatching] holds unchanged (at most once, the
// time budget, health, events, Close waiting for the writer), as does
// its need for a client that honours context deadlines: with one that
// does not, the option is ignored. BENCHMARKS.md compares both modes.
func WithDispatcher() Option {
	return func(c *config) { c.dispatch = true }
}

// call is one script call on its way to Redis: the argument vector of its
// EVALSHA command and, while queued for a lane, the caller's context and
// the slot its reply lands in. Calls are pooled; a call goes back to the
// pool only when nothing else can still hold it.
type call struct {
	sa   *scriptArgs
	argv []any       // "evalsha", sha, numkeys, keys..., args...
	key  string      // a single key, boxed as &key (a pointer boxes without allocating)
	kb   keyArg      // a single key built in place, boxed as &kb
	dctx deadlineCtx // the call's time budget (see Store.runCall), boxed as &dctx

	// A decision of n tokens of a token bucket or fixed window (see
	// [Store.mergeCalls]): calls of one limiter for one key and n, queued
	// together, share one script call.
	merge *limiter // nil: the call is sent as it is
	n     int64

	// Batched calls only.
	followers []*call         // while a batch is sent: the calls merged into this one (sent with ARGV k = 1 + len)
	ctx       context.Context // the caller's
	deadline  time.Time       // end of the store's time budget; zero: none
	cmd       noRetryCmd
	v         any
	err       error
	done      chan struct{} // one value once v and err are set
}

var callPool = sync.Pool{New: func() any {
	return &call{argv: make([]any, 0, 16), done: make(chan struct{}, 1)}
}}

// scriptArgs are a script's SHA-1 and source, boxed once; src is nil when
// the source is unknown (lua.Source has none for the script), and a
// NOSCRIPT reply is then final.
type scriptArgs struct {
	sha, src any
}

var scriptArgsCache sync.Map // *redis.Script → *scriptArgs

func argsOfScript(script *redis.Script) *scriptArgs {
	if sa, ok := scriptArgsCache.Load(script); ok {
		return sa.(*scriptArgs)
	}
	sa := &scriptArgs{sha: script.Hash()}
	if src := lua.Source(script); src != "" {
		sa.src = src
	}
	v, _ := scriptArgsCache.LoadOrStore(script, sa)
	return v.(*scriptArgs)
}

// newCall returns a pooled call of script with no key and no argument yet.
func newCall(script *redis.Script) *call {
	c := callPool.Get().(*call)
	c.sa = argsOfScript(script)
	c.argv = append(c.argv[:0], "evalsha", c.sa.sha, 0)
	return c
}

// singleKey sets the call's only key. It must come before any argument.
func (c *call) singleKey(key string) {
	c.key = key
	c.argv[2] = 1
	c.argv = append(c.argv, &c.key)
}

// limiterKey sets the call's only key to limiterKey(head, key), built in
// the call's own buffer (no allocation once the pooled call has grown it).
// It must come before any argument.
func (c *call) limiterKey(head, key string) {
	b := append(c.kb.b[:0], head...)
	b = appendPart(b, key, true)
	c.kb.b = append(b, '}')
	c.argv[2] = 1
	c.argv = append(c.argv, &c.kb)
}

// keyArg is a key argument held in a pooled call's buffer: go-redis writes
// an encoding.BinaryMarshaler's bytes as they are, and a *keyArg boxes
// without allocating. Nothing may keep it past the call's round trip (the
// buffer is reused): go-redis reads it only while it writes the command,
// and a cluster client, which formats the first key to find its slot,
// through String.
type keyArg struct{ b []byte }

// MarshalBinary returns the key's bytes (not a copy).
func (k *keyArg) MarshalBinary() ([]byte, error) { return k.b, nil }

// String returns the key.
func (k *keyArg) String() string { return string(k.b) }

// keys sets the call's keys. It must come before any argument.
func (c *call) keys(keys []string) {
	c.argv[2] = len(keys)
	for _, k := range keys {
		c.argv = append(c.argv, k)
	}
}

// release returns c to the pool. Only the call's owner may release it, and
// only once nothing else refers to it.
func (c *call) release() {
	clear(c.argv)
	c.argv = c.argv[:0]
	c.key = ""
	c.kb.b = c.kb.b[:0]
	c.dctx = deadlineCtx{}
	c.merge, c.n = nil, 0
	clear(c.followers)
	c.followers = c.followers[:0]
	c.ctx = nil
	c.cmd = noRetryCmd{}
	c.v, c.err = nil, nil
	c.sa = nil
	callPool.Put(c)
}

// command returns a new EVALSHA command of the call, or EVAL with the
// script's source when eval is set (after NOSCRIPT: EVALSHA did not run).
func (c *call) command(ctx context.Context, eval bool) noRetryCmd {
	argv := c.argv
	if eval {
		argv = make([]any, len(c.argv))
		copy(argv, c.argv)
		argv[0], argv[1] = "eval", c.sa.src
	}
	cmd := redis.NewCmd(ctx, argv...)
	if n, _ := argv[2].(int); n > 0 {
		// The first key is argument 3: saves a cluster or ring client from
		// formatting numkeys to find it.
		cmd.SetFirstKeyPos(3)
	}
	return noRetryCmd{cmd}
}

// finish hands the call's outcome to its caller. It never blocks, and the
// call must not be touched afterwards: its caller may release it.
func (c *call) finish(v any, err error) {
	c.v, c.err = v, err
	c.done <- struct{}{}
}

// lanes bounds the round trips of a store in flight and queues the calls
// that find them all busy. Invariant: the queue is empty unless every lane
// is busy, so a lane that frees up always finds the calls that wait.
//
// In dispatcher mode ([WithDispatcher]) max is 1 and every call queues:
// the one lane is held by a writer goroutine, which sends everything
// queued as one pipeline, again and again, until the queue is empty.
type lanes struct {
	client   Client
	max      int
	dispatch bool
	pipe     redis.Pipeliner // dispatcher mode: the writer's, reused

	mu    sync.Mutex
	busy  int
	queue []*call
}

// enter takes a free lane for c (true: send c now, then call
// [Store.leaveLane]) or queues c (false: wait on c.done).
func (l *lanes) enter(c *call) bool {
	l.mu.Lock()
	if l.busy < l.max {
		l.busy++
		l.mu.Unlock()
		return true
	}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	return false
}

// join queues c for the dispatcher's writer and reports whether the writer
// is idle, so that the caller must start it (see [Store.startDrain]).
func (l *lanes) join(c *call) bool {
	l.mu.Lock()
	l.queue = append(l.queue, c)
	start := l.busy < l.max
	if start {
		l.busy++
	}
	l.mu.Unlock()
	return start
}

// take removes up to maxBatch queued calls into dst, or frees the lane
// when none is queued (false).
func (l *lanes) take(dst []*call) ([]*call, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		l.busy--
		return dst, false
	}
	n := min(len(l.queue), maxBatch)
	dst = append(dst, l.queue[:n]...)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return dst, true
}

// takeAll frees the lane and removes every queued call (the store closed).
func (l *lanes) takeAll() []*call {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.busy--
	q := l.queue
	l.queue = nil
	return q
}

// leaveLane is called when the round trip that held a lane ends: the lane
// passes to a drainer goroutine when calls are queued, else it is freed.
func (s *Store) leaveLane() {
	l := s.lanes
	l.mu.Lock()
	if len(l.queue) == 0 {
		l.busy--
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	s.startDrain()
}

// startDrain hands the lane the caller holds to a drainer goroutine, or
// answers every queued call with ErrClosed when the store is closed.
func (s *Store) startDrain() {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		for _, c := range s.lanes.takeAll() {
			c.finish(nil, ErrClosed)
		}
		return
	}
	s.calls.Add(1)
	s.closeMu.RUnlock()
	go s.drain()
}

// drain holds a lane: it sends what is queued as one pipeline, again and
// again, until the queue is empty or the store is closed.
func (s *Store) drain() {
	defer s.calls.Done()
	pipe := s.lanes.pipe // one writer at a time in dispatcher mode
	if pipe == nil {
		pipe = s.lanes.client.Pipeline()
	}
	var batch, sent []*call
	for {
		if s.closed.Load() {
			for _, c := range s.lanes.takeAll() {
				c.finish(nil, ErrClosed)
			}
			return
		}
		var ok bool
		batch, ok = s.lanes.take(batch[:0])
		if !ok {
			return
		}
		sent = s.sendBatch(pipe, batch, sent[:0])
		clear(batch)
		clear(sent)
	}
}

// execPipeline runs pipe; a panic of the client (a user's wrapper) fails
// every command of sent that has no error yet with the panic, instead of
// killing the store's goroutine, and clears what the pipeline still holds.
func (s *Store) execPipeline(ctx context.Context, pipe redis.Pipeliner, sent []*call) {
	defer func() {
		if r := recover(); r != nil {
			err := s.clientPanic(r)
			for _, c := range sent {
				if c.cmd.Err() == nil {
					c.cmd.SetErr(err)
				}
			}
			pipe.Discard()
		}
	}()
	_, _ = pipe.Exec(ctx)
}

// sendBatch sends the live calls of batch as one pipeline (then the ones
// that got NOSCRIPT as a second one, with EVAL), books the outcome in the
// store's health once, and answers every call of batch. sent is scratch
// space.
func (s *Store) sendBatch(pipe redis.Pipeliner, batch, sent []*call) []*call {
	now := time.Now()
	var deadline time.Time // earliest budget end of the sent calls
	open := false          // a sent call has no deadline at all
	for _, c := range batch {
		switch {
		case c.ctx.Err() != nil:
			c.finish(nil, c.ctx.Err()) // the caller left: not sent
			continue
		case !c.deadline.IsZero() && !now.Before(c.deadline):
			c.finish(nil, &CallError{Reason: ReasonTimeout, Err: context.DeadlineExceeded})
			continue
		case s.health.down.Load():
			c.finish(nil, s.health.degraded.Load())
			continue
		}
		if s.timeout > 0 {
			if deadline.IsZero() || c.deadline.Before(deadline) {
				deadline = c.deadline
			}
		} else if dl, ok := c.ctx.Deadline(); !ok {
			open = true
		} else if dl.After(deadline) {
			deadline = dl // no budget: wait as long as the most patient caller
		}
		sent = append(sent, c)
	}
	if len(sent) == 0 {
		return sent
	}
	sent = mergeCalls(sent)
	for _, c := range sent {
		if len(c.followers) > 0 {
			c.argv = append(c.argv, 1+len(c.followers)) // ≤ maxBatch: boxes without allocating
		}
		c.cmd = c.command(c.ctx, false)
		_ = pipe.Process(c.ctx, c.cmd)
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !open && !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	s.execPipeline(ctx, pipe, sent)
	again := false
	for _, c := range sent {
		if err := c.cmd.Err(); err != nil && isNoScript(err) && c.sa.src != nil {
			c.cmd = c.command(c.ctx, true)
			_ = pipe.Process(ctx, c.cmd)
			again = true
		}
	}
	if again {
		s.execPipeline(ctx, pipe, sent)
	}
	cancel()

	// One outcome for the round trip: the first error saying Redis is
	// unavailable, else a success when any command succeeded. A timeout
	// after every caller left on its own deadline is the callers' (as for a
	// single call), unless the round trip had waited a quarter of the
	// store's budget.
	var fail error
	succeeded, waiting := false, false
	for _, c := range sent {
		if c.ctx.Err() == nil {
			waiting = true
		}
		err := c.cmd.Err()
		if err == nil {
			succeeded = true
		} else if fail == nil && reasonOf(err).unavailable() {
			fail = err
		}
	}
	switch {
	case fail != nil && (waiting || reasonOf(fail) != ReasonTimeout ||
		(s.timeout > 0 && time.Since(now) >= s.timeout/4)):
		_ = s.record(fail)
	case fail == nil && succeeded:
		s.health.success()
	}
	for _, c := range sent {
		v, err := c.cmd.Result()
		if err != nil {
			err = classify(err)
		}
		if len(c.followers) > 0 {
			v, err = c.shareReply(v, err)
		}
		c.finish(v, err)
	}
	return sent
}

// mergeCalls merges the calls of sent that decide the same key and n for
// the same token bucket or fixed window into the first of them, which then
// decides them all in one script call (the scripts' ARGV k): Redis runs
// the script once for the lot, and each caller gets the decision a call of
// its own would have had, as if the calls had run one after the other at
// the instant the merged call runs (Redis TIME, or with a client-side clock
// the latest of the calls' times). That is what concurrent calls on a hot
// key get from Redis anyway, in some order, for a fraction of its CPU.
// It returns the calls to send; the others are their leaders' followers.
func mergeCalls(sent []*call) []*call {
	if len(sent) < 2 {
		return sent
	}
	out := sent[:0]
	for _, c := range sent {
		if c.merge != nil {
			if lead := findLeader(out, c); lead != nil {
				lead.followers = append(lead.followers, c)
				// With a client-side clock the merged call runs at the
				// latest of the calls' times (ARGV[1], after the key).
				if t, ok := c.argv[4].(int64); ok {
					if lt, ok := lead.argv[4].(int64); ok && t > lt {
						lead.argv[4] = c.argv[4]
					}
				}
				continue
			}
		}
		out = append(out, c)
	}
	clear(sent[len(out):])
	return out
}

// findLeader returns the call of out that c can merge into, or nil. The
// scan is linear: batches are at most maxBatch calls, and it compares a
// pointer and a length before any byte of a key.
func findLeader(out []*call, c *call) *call {
	for _, o := range out {
		if o.merge == c.merge && o.n == c.n && bytes.Equal(o.kb.b, c.kb.b) {
			return o
		}
	}
	return nil
}

// shareReply hands each follower of a leader its share of the leader's
// reply, whose first element m says that the first m of the 1 +
// len(followers) requests (the leader first) were admitted: each admitted
// one gets what it would have left on its own, and the others the denial
// that follows the m. It returns the leader's own share; on an error, or
// a reply it cannot read, every follower gets what the leader gets. The
// followers are finished here, and the leader's followers cleared, before
// the caller finishes the leader.
func (c *call) shareReply(v any, err error) (any, error) {
	fs, l := c.followers, c.merge
	var r [4]int64
	size := 2
	if !l.tb {
		size = 4
	}
	if err == nil {
		arr, ok := v.([]any)
		ok = ok && len(arr) == size
		for i := 0; ok && i < size; i++ {
			r[i], ok = arr[i].(int64)
			ok = ok && r[i] >= 0
		}
		if !ok || r[0] > int64(1+len(fs)) {
			v, err = nil, &errReply{"merged " + l.pattern, v}
		}
	}
	share := func(i int64) any {
		m := r[0]
		if err != nil || m == 0 {
			return v // every request denied as the first was (or the error)
		}
		if l.tb {
			// {m, need}: request i leaves the debt of i+1 requests.
			if i < m {
				return []any{int64(1), r[1] - (m-1-i)*c.n*l.gcra.p}
			}
			return []any{int64(0), r[1]}
		}
		// {m, remaining, 0, left}: request i leaves what i+1 requests do;
		// the others are denied until the window ends.
		if i < m {
			return []any{int64(1), r[1] + (m-1-i)*c.n, int64(0), r[3]}
		}
		return []any{int64(0), r[1], r[3], r[3]}
	}
	for i, f := range fs {
		f.finish(share(int64(i+1)), err)
	}
	clear(c.followers)
	c.followers = c.followers[:0]
	return share(0), err
}

// queued waits for the reply of a queued call, or for ctx to end. On a
// reply it releases c; a call whose caller left stays with the drainer
// and is left to the garbage collector.
func (s *Store) queued(ctx context.Context, c *call) (any, error) {
	select {
	case <-c.done:
		v, err := c.v, c.err
		c.release()
		return v, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
