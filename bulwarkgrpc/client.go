package bulwarkgrpc

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/internal/core"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// PatternClient is the Event.Pattern of the events a [Client] emits.
const PatternClient = "grpc_client"

// Client holds the client-side patterns for one or more connections:
// retries that honour the server's pushback, a breaker per method,
// hedging of idempotent methods, deadline rules and self-pacing. Install
// its interceptors with grpc.WithChainUnaryInterceptor and
// grpc.WithChainStreamInterceptor:
//
//	cl, err := bulwarkgrpc.NewClient(bulwarkgrpc.WithMaxRetries(2))
//	if err != nil { ... }
//	conn, err := grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(cl.Unary()),
//		grpc.WithChainStreamInterceptor(cl.Stream()))
//
// Retrying follows gRPC's retry design (A6). A failed attempt is retried
// only when:
//   - it was not committed: the server sent no response headers (a
//     trailers-only response), so no part of an answer was seen;
//   - the server did not forbid it: a grpc-retry-pushback-ms trailer that
//     is negative, malformed or repeated ends retrying;
//   - its code is retryable: [WithRetryCodes] (UNAVAILABLE by default),
//     and RESOURCE_EXHAUSTED when the server said how long to wait;
//   - the wait fits: within [WithMaxPushback] and before the context's
//     deadline (otherwise the status is returned at once), and the
//     [WithRetryBudget] budget allows it.
//
// The wait is exactly the server's pushback (grpc-retry-pushback-ms), or
// else exactly its google.rpc.RetryInfo delay, or else an exponential
// back-off with jitter. A stream is retried when it fails to open; a
// server-streaming call (one request, many replies) also while no reply
// and no header has come, its request being sent again on a new stream
// (the message is kept, cloned when it is a proto message). A client- or
// bidirectional stream, once open, is the caller's to restart.
//
// Waits run on the clock of [WithClock]. A Client is safe for concurrent
// use, and one Client may serve many connections.
type Client struct {
	o        *clientOptions
	mu       sync.RWMutex
	breakers map[string]bulwark.Breaker
	panics   atomic.Uint64
}

// Panics returns how many panics were recovered on goroutines the client
// started (hedged attempts, whose inner interceptors or codec panicked);
// each failed its attempt with INTERNAL instead of bringing the process
// down.
func (c *Client) Panics() uint64 { return c.panics.Load() }

// NewClient returns a Client, or an error wrapping bulwark.ErrInvalidConfig
// when an option is invalid.
func NewClient(opts ...ClientOption) (*Client, error) {
	o, err := buildClientOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Client{o: o, breakers: make(map[string]bulwark.Breaker)}, nil
}

// attempt is what one try of a unary call saw.
type attempt struct {
	header, trailer metadata.MD
	err             error
}

// Unary returns the client interceptor for unary calls.
func (c *Client) Unary() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, cancel, err := c.deadline(ctx)
		if err != nil {
			return err
		}
		defer cancel()
		o := c.o
		pl := c.plan(method)
		target := ""
		if cc != nil {
			target = cc.Target()
		}
		if o.budget != nil {
			o.budget.Deposit()
		}
		sinceAdvice := 0
		for try := 0; ; try++ {
			a := c.once(ctx, method, req, reply, cc, invoker, opts, &pl, target)
			if a.err == nil {
				return nil
			}
			wait, advised, ok := c.retryWait(ctx, pl.maxRetries, try, sinceAdvice, a)
			if !ok {
				return a.err
			}
			if advised {
				sinceAdvice = 0
			} else {
				sinceAdvice++
			}
			if o.budget != nil && !o.budget.Withdraw() {
				return a.err
			}
			core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventRetry, Pattern: PatternClient, Name: o.name,
				Time: o.clock.Now(), Attempt: try + 1, Duration: wait, Err: a.err})
			if err := sleep(ctx, o.clock, wait); err != nil {
				return status.FromContextError(err).Err()
			}
		}
	}
}

// once makes one attempt: pacer, breaker, then the call (hedged or not).
func (c *Client) once(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker,
	opts []grpc.CallOption, pl *plan, target string) attempt {
	o := c.o
	br := pl.br
	parent := ctx // an attempt's own timeout is the dependency's slowness, not the caller leaving
	if pl.attemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pl.attemptTimeout)
		defer cancel()
	}
	var tk bulwarkhttp.Ticket
	if o.pacer != nil {
		var err error
		if tk, err = o.pacer.Acquire(ctx, target); err != nil {
			return attempt{err: pacedError(err)}
		}
	}
	var done func(bool)
	if br != nil {
		var err error
		if done, err = br.Allow(ctx); err != nil {
			tk.Cancel()
			if errors.Is(err, bulwark.ErrOpen) {
				return attempt{err: rejection(codes.Unavailable, "circuit breaker open", err)}
			}
			return attempt{err: fromError(err, codes.Unavailable, "circuit breaker unavailable")}
		}
	}
	var a attempt
	if pl.maxHedges > 0 {
		a = c.hedged(ctx, method, req, reply, cc, invoker, opts, pl)
	} else {
		a = invokeOnce(ctx, method, req, reply, cc, invoker, opts)
	}
	if done != nil {
		done(!(o.isFailure(status.Code(a.err)) && parent.Err() == nil))
	}
	if o.pacer != nil {
		tk.Done(quotaOf(a.header, a.trailer, a.err, o.clock.Now()))
	}
	return a
}

func invokeOnce(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) attempt {
	var a attempt
	all := append(opts[:len(opts):len(opts)], grpc.Header(&a.header), grpc.Trailer(&a.trailer))
	a.err = invoker(ctx, method, req, reply, cc, all...)
	return a
}

// pacedError turns a pacer's refusal into RESOURCE_EXHAUSTED with the
// wait as RetryInfo, like a server's.
func pacedError(err error) error {
	var rl *bulwark.RateLimitedError
	if errors.As(err, &rl) {
		st := status.New(codes.ResourceExhausted, "held back: server quota spent")
		if ds, e := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(rl.RetryAfter)}); e == nil {
			st = ds
		}
		return &Error{st: st, cause: err}
	}
	return fromError(err, codes.ResourceExhausted, "held back")
}

// Deadlines are wall-clock times, so they are compared with time.Now, not
// with the injected clock.
//
// retryWait decides whether the failed attempt try (0-based) is retried
// and after how long; advised reports that the wait came from the server.
func (c *Client) retryWait(ctx context.Context, maxRetries, try, sinceAdvice int, a attempt) (wait time.Duration, advised, ok bool) {
	o := c.o
	if try >= maxRetries || ctx.Err() != nil || a.header != nil {
		return 0, false, false
	}
	var rl *bulwark.RateLimitedError
	if errors.As(a.err, &rl) {
		return 0, false, false // held back locally: the pacer already waited what it may
	}
	if errors.Is(a.err, bulwark.ErrOpen) {
		return 0, false, false
	}
	st := status.Convert(a.err)
	wait, advised, forbidden := serverAdvice(a.trailer, st)
	if forbidden {
		return 0, false, false
	}
	code := st.Code()
	if !o.retryCodes[code] && !(code == codes.ResourceExhausted && advised) {
		return 0, false, false
	}
	if advised {
		if wait > o.maxPushback {
			return 0, false, false
		}
	} else {
		wait = min(o.backoff(sinceAdvice), o.maxPushback)
	}
	if dl, has := ctx.Deadline(); has && time.Until(dl) <= wait {
		return 0, false, false
	}
	return wait, advised, true
}

// serverAdvice reads the server's retry advice: the pushback trailer
// first (as gRPC does), then a RetryInfo detail. forbidden is true when
// the pushback says not to retry.
func serverAdvice(trailer metadata.MD, st *status.Status) (wait time.Duration, advised, forbidden bool) {
	if v := trailer.Get(PushbackKey); len(v) > 0 {
		if len(v) > 1 {
			return 0, false, true
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64)
		if err != nil || ms < 0 {
			return 0, false, true
		}
		return time.Duration(ms) * time.Millisecond, true, false
	}
	if d, ok := retryInfo(st); ok {
		return d, true, false
	}
	return 0, false, false
}

func retryInfo(st *status.Status) (time.Duration, bool) {
	if st == nil {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if err := ri.GetRetryDelay().CheckValid(); err != nil {
				continue
			}
			if w := ri.GetRetryDelay().AsDuration(); w >= 0 {
				return w, true
			}
		}
	}
	return 0, false
}

// quotaOf reads what a response said of the caller's quota.
func quotaOf(header, trailer metadata.MD, err error, now time.Time) bulwarkhttp.Quota {
	get := func(name string) []string {
		return append(header.Get(name), trailer.Get(name)...)
	}
	q := bulwarkhttp.ParseQuota(get, now)
	if err != nil {
		st := status.Convert(err)
		if w, advised, _ := serverAdvice(trailer, st); advised {
			q.RetryAfter = max(q.RetryAfter, w)
			q.Refused = true
		} else if st.Code() == codes.ResourceExhausted {
			q.Refused = true
		}
	}
	return q
}

func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc, error) {
	o := c.o
	dl, has := ctx.Deadline()
	if has && o.minRemaining > 0 && time.Until(dl) < o.minRemaining {
		return ctx, nil, rejection(codes.DeadlineExceeded, "deadline too close to send the call", bulwark.ErrTimeout)
	}
	if !has && o.defaultTimeout > 0 {
		ctx, cancel := context.WithTimeout(ctx, o.defaultTimeout)
		return ctx, cancel, nil
	}
	return ctx, func() {}, nil
}

// plan is what applies to one call of a method.
type plan struct {
	br             bulwark.Breaker
	maxRetries     int
	hedgeDelay     time.Duration
	maxHedges      int // 0: no hedging
	attemptTimeout time.Duration
}

// plan resolves the method's settings: the client's options, overridden
// by the method's policy stack when [WithMethodPolicies] names one.
func (c *Client) plan(method string) plan {
	o := c.o
	pl := plan{br: c.breaker(method), maxRetries: o.maxRetries}
	if o.maxHedges > 0 && c.isIdempotent(method) {
		pl.hedgeDelay, pl.maxHedges = o.hedgeDelay, o.maxHedges
	}
	if o.policies != nil {
		if st := o.policies.lookup(method); st != nil {
			applyParts(&pl, st.Load())
		}
	}
	return pl
}

func (c *Client) breaker(method string) bulwark.Breaker {
	if c.o.breakerFor == nil {
		return nil
	}
	c.mu.RLock()
	b, ok := c.breakers[method]
	c.mu.RUnlock()
	if ok {
		return b
	}
	b = c.o.breakerFor(method) // user code: never under the lock
	if isNil(b) {
		b = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.breakers[method]; ok {
		return prev
	}
	c.breakers[method] = b
	return b
}

func (c *Client) isIdempotent(method string) bool {
	for _, m := range c.o.idempotent {
		if m == method {
			return true
		}
		if svc, ok := strings.CutSuffix(m, "/*"); ok && strings.HasPrefix(method, svc+"/") {
			return true
		}
	}
	return false
}

// hedged sends the call, and a copy every hedge delay while none has won,
// each into its own reply; the winner's reply is copied into reply.
func (c *Client) hedged(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, pl *plan) attempt {
	o := c.o
	rt := reflect.TypeOf(reply)
	if rt == nil || rt.Kind() != reflect.Pointer {
		return invokeOnce(ctx, method, req, reply, cc, invoker, opts)
	}
	type result struct {
		a     attempt
		reply any
		peer  *peer.Peer
	}
	// The caller's Header, Trailer and Peer options receive the winner's
	// metadata only; concurrent attempts must not write them.
	opts, deliver := ownOptions(opts)
	maxAttempts := 1 + pl.maxHedges
	results := make(chan result, maxAttempts)
	hctx, cancel := context.WithCancel(ctx)
	defer cancel() // the losers stop; their goroutines end with their calls
	launched := 0
	launch := func() {
		launched++
		r := reflect.New(rt.Elem()).Interface()
		go func() {
			defer func() {
				if v := recover(); v != nil { // an inner interceptor's panic on our goroutine
					c.panics.Add(1)
					results <- result{attempt{err: status.Error(codes.Internal, "hedged attempt panicked")}, r, nil}
				}
			}()
			p := new(peer.Peer)
			a := invokeOnce(hctx, method, req, r, cc, invoker, append(opts[:len(opts):len(opts)], grpc.Peer(p)))
			results <- result{a, r, p}
		}()
	}
	launch()
	pending := 1
	var last attempt
	for {
		var tick <-chan time.Time
		var tm bulwark.Timer
		if launched < maxAttempts {
			tm = core.NewTimer(o.clock, pl.hedgeDelay)
			tick = tm.C()
		}
		select {
		case r := <-results:
			if tm != nil {
				tm.Stop()
			}
			pending--
			if r.a.err == nil || !o.isFailure(status.Code(r.a.err)) {
				if r.a.err == nil {
					copyReply(reply, r.reply)
				}
				deliver(r.a, r.peer)
				return r.a
			}
			last = r.a
			if pending == 0 && launched == maxAttempts {
				deliver(last, r.peer)
				return last
			}
			if pending == 0 {
				launch() // every attempt so far failed: do not wait for the delay
				pending++
				core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventHedge, Pattern: PatternClient, Name: o.name, Time: o.clock.Now(), Attempt: launched - 1})
			}
		case <-tick:
			launch()
			pending++
			core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventHedge, Pattern: PatternClient, Name: o.name, Time: o.clock.Now(), Attempt: launched - 1})
		case <-ctx.Done():
			if tm != nil {
				tm.Stop()
			}
			return attempt{err: status.FromContextError(ctx.Err()).Err()}
		}
	}
}

// ownOptions removes the Header, Trailer and Peer call options from opts
// and returns a function that fills them from the winning attempt.
func ownOptions(opts []grpc.CallOption) ([]grpc.CallOption, func(attempt, *peer.Peer)) {
	var keep []grpc.CallOption
	var headers, trailers []*metadata.MD
	var peers []*peer.Peer
	for _, opt := range opts {
		switch v := opt.(type) {
		case grpc.HeaderCallOption:
			headers = append(headers, v.HeaderAddr)
		case grpc.TrailerCallOption:
			trailers = append(trailers, v.TrailerAddr)
		case grpc.PeerCallOption:
			peers = append(peers, v.PeerAddr)
		default:
			keep = append(keep, opt)
		}
	}
	return keep, func(a attempt, p *peer.Peer) {
		for _, h := range headers {
			*h = a.header
		}
		for _, t := range trailers {
			*t = a.trailer
		}
		for _, dst := range peers {
			if p != nil {
				*dst = *p
			}
		}
	}
}

func copyReply(dst, src any) {
	if dm, ok := dst.(proto.Message); ok {
		if sm, ok := src.(proto.Message); ok {
			proto.Reset(dm)
			proto.Merge(dm, sm)
			return
		}
	}
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}

func sleep(ctx context.Context, clock bulwark.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := core.NewTimer(clock, d)
	select {
	case <-tm.C():
		return nil
	case <-ctx.Done():
		tm.Stop()
		return ctx.Err()
	}
}

// Stream returns the client interceptor for streaming calls: deadline
// rules, pacing, the method's breaker (one outcome when the stream ends:
// io.EOF from RecvMsg is a success, another error is counted by its
// code, each retried attempt counting once), and retries of a stream that
// failed to open or, for server-streaming calls, failed before its first
// reply (see [Client]).
func (c *Client) Stream() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, cancel, err := c.deadline(ctx)
		if err != nil {
			return nil, err
		}
		o := c.o
		pl := c.plan(method)
		br := pl.br
		target := ""
		if cc != nil {
			target = cc.Target()
		}
		sinceAdvice := 0
		for try := 0; ; try++ {
			var tk bulwarkhttp.Ticket
			if o.pacer != nil {
				if tk, err = o.pacer.Acquire(ctx, target); err != nil {
					cancel()
					return nil, pacedError(err)
				}
			}
			var done func(bool)
			if br != nil {
				if done, err = br.Allow(ctx); err != nil {
					tk.Cancel()
					cancel()
					if errors.Is(err, bulwark.ErrOpen) {
						return nil, rejection(codes.Unavailable, "circuit breaker open", err)
					}
					return nil, fromError(err, codes.Unavailable, "circuit breaker unavailable")
				}
			}
			cs, err := streamer(ctx, desc, cc, method, opts...)
			if err == nil {
				st := &clientStream{cur: cs, c: c, ctx: ctx, done: done, cancel: cancel, ticket: tk}
				if desc.ServerStreams && !desc.ClientStreams {
					// One request, many replies: replayable until the
					// first reply or header arrives.
					st.replay = &replay{desc: desc, cc: cc, method: method, streamer: streamer, opts: opts,
						pl: pl, try: try, sinceAdvice: sinceAdvice, target: target}
				}
				return st, nil
			}
			if done != nil {
				done(!(o.isFailure(status.Code(err)) && ctx.Err() == nil))
			}
			tk.Done(quotaOf(nil, nil, err, o.clock.Now()))
			wait, advised, ok := c.retryWait(ctx, pl.maxRetries, try, sinceAdvice, attempt{err: err})
			if !ok {
				cancel()
				return nil, err
			}
			if advised {
				sinceAdvice = 0
			} else {
				sinceAdvice++
			}
			core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventRetry, Pattern: PatternClient, Name: o.name, Time: o.clock.Now(), Attempt: try + 1, Duration: wait, Err: err})
			if err := sleep(ctx, o.clock, wait); err != nil {
				cancel()
				return nil, status.FromContextError(err).Err()
			}
		}
	}
}

// clientStream reports the stream's outcome once it ends and, for a
// server-streaming call, retries it while nothing has been received.
type clientStream struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	mu       sync.Mutex // guards cur, done, ticket and replay's buffer
	cur      grpc.ClientStream
	done     func(bool)
	ticket   bulwarkhttp.Ticket
	replay   *replay // nil: not retried once open
	received bool    // a reply came: the call is committed
}

// replay is what a server-streaming call needs to be sent again: its one
// request and whether the client had closed its side.
type replay struct {
	desc        *grpc.StreamDesc
	cc          *grpc.ClientConn
	method      string
	streamer    grpc.Streamer
	opts        []grpc.CallOption
	pl          plan
	try         int
	sinceAdvice int
	target      string
	sent        []any
	closed      bool
}

func (s *clientStream) stream() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Context returns the current attempt's context.
func (s *clientStream) Context() context.Context { return s.stream().Context() }

// Header returns the current attempt's response headers.
func (s *clientStream) Header() (metadata.MD, error) { return s.stream().Header() }

// Trailer returns the current attempt's trailer.
func (s *clientStream) Trailer() metadata.MD { return s.stream().Trailer() }

// CloseSend closes the sending side (and remembers it for a replay).
func (s *clientStream) CloseSend() error {
	s.mu.Lock()
	if s.replay != nil {
		s.replay.closed = true
	}
	cur := s.cur
	s.mu.Unlock()
	return cur.CloseSend()
}

func (s *clientStream) finish(err error) {
	s.once.Do(func() {
		o := s.c.o
		s.mu.Lock()
		cur, done, tk := s.cur, s.done, s.ticket
		s.mu.Unlock()
		if done != nil {
			ok := err == nil || errors.Is(err, io.EOF) || !(o.isFailure(status.Code(err)) && s.ctx.Err() == nil)
			done(ok)
		}
		if o.pacer != nil {
			h, _ := cur.Header()
			if errors.Is(err, io.EOF) {
				err = nil
			}
			tk.Done(quotaOf(h, cur.Trailer(), err, o.clock.Now()))
		}
		s.cancel()
	})
}

// RecvMsg receives the next reply. A server-streaming call that fails
// before any reply or header came is retried as a unary call would be:
// the request is sent again on a new stream.
func (s *clientStream) RecvMsg(m any) error {
	for {
		cur := s.stream()
		err := cur.RecvMsg(m)
		if err == nil {
			s.mu.Lock()
			s.received = true
			s.mu.Unlock()
			return nil
		}
		if errors.Is(err, io.EOF) || !s.retry(cur, err) {
			s.finish(err)
			return err
		}
	}
}

// retry opens a new attempt after cur failed with err, when that is safe
// and allowed; it reports whether the caller should receive again.
func (s *clientStream) retry(cur grpc.ClientStream, err error) bool {
	s.mu.Lock()
	r := s.replay
	if r == nil || s.received {
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()
	c, o := s.c, s.c.o
	hdr, _ := cur.Header()
	a := attempt{header: hdr, trailer: cur.Trailer(), err: err}
	wait, advised, ok := c.retryWait(s.ctx, r.pl.maxRetries, r.try, r.sinceAdvice, a)
	if !ok || (o.budget != nil && !o.budget.Withdraw()) {
		return false
	}
	// The failed attempt's outcome is reported now; the next one gets its
	// own breaker admission and pacer ticket.
	s.mu.Lock()
	done, tk := s.done, s.ticket
	s.done, s.ticket = nil, bulwarkhttp.Ticket{}
	s.mu.Unlock()
	if done != nil {
		done(!(o.isFailure(status.Code(err)) && s.ctx.Err() == nil))
	}
	tk.Done(quotaOf(hdr, a.trailer, err, o.clock.Now()))
	if advised {
		r.sinceAdvice = 0
	} else {
		r.sinceAdvice++
	}
	r.try++
	core.Emit(o.observer, bulwark.Event{Kind: bulwark.EventRetry, Pattern: PatternClient, Name: o.name, Time: o.clock.Now(), Attempt: r.try, Duration: wait, Err: err})
	if sleep(s.ctx, o.clock, wait) != nil {
		return false
	}
	var ntk bulwarkhttp.Ticket
	if o.pacer != nil {
		var perr error
		if ntk, perr = o.pacer.Acquire(s.ctx, r.target); perr != nil {
			return false
		}
	}
	var ndone func(bool)
	if r.pl.br != nil {
		var berr error
		if ndone, berr = r.pl.br.Allow(s.ctx); berr != nil {
			ntk.Cancel()
			return false
		}
	}
	ns, err := r.streamer(s.ctx, r.desc, r.cc, r.method, r.opts...)
	if err == nil {
		s.mu.Lock()
		sent, closed := r.sent, r.closed
		s.mu.Unlock()
		for _, m := range sent {
			if err = ns.SendMsg(m); err != nil {
				break
			}
		}
		if err == nil && closed {
			err = ns.CloseSend()
		}
	}
	if err != nil {
		if ndone != nil {
			ndone(!(o.isFailure(status.Code(err)) && s.ctx.Err() == nil))
		}
		ntk.Cancel()
		return false
	}
	s.mu.Lock()
	s.cur, s.done, s.ticket = ns, ndone, ntk
	s.mu.Unlock()
	return true
}

// SendMsg sends a request message (and keeps it for a replay).
func (s *clientStream) SendMsg(m any) error {
	s.mu.Lock()
	if s.replay != nil {
		kept := m
		if pm, ok := m.(proto.Message); ok {
			kept = proto.Clone(pm) // the caller may reuse m once SendMsg returns
		}
		s.replay.sent = append(s.replay.sent, kept)
	}
	cur := s.cur
	s.mu.Unlock()
	err := cur.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		// io.EOF from SendMsg means the stream ended; its status comes
		// from RecvMsg.
		s.finish(err)
	}
	return err
}
