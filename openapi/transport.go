package openapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/policy"
)

// Transport returns an http.RoundTripper that applies each operation's
// declared policies to outgoing calls of a dependency described by the
// document: it routes each request (by method and URL path, after the base
// path) to its operation and sends it through a bulwarkhttp.Transport set
// up from the operation's stack:
//
//   - retry: attempts-1 retries of the operation's method (declaring retry
//     on a POST says it is safe to repeat), after the block's statuses and
//     429, with the block's back-off and jitter, honouring Retry-After; a
//     disabled retry block sends each request once; without one,
//     bulwarkhttp's defaults apply (idempotent methods, 429/502/503/504);
//   - timeout: the budget of each attempt (a late attempt fails with an
//     error matching bulwark.ErrTimeout and may be retried);
//   - circuitbreaker: requests fail at once with bulwark.ErrOpen while open;
//   - hedge: extra copies of slow GET and HEAD requests;
//   - ratelimit: this client's own pace, keyed by destination host, waiting
//     for a token within the request's deadline (bulwarkhttp.WithHostLimiter).
//
// Requests matching no operation, or an operation without declarations,
// go to base untouched. base nil means http.DefaultTransport. It returns
// an error wrapping bulwark.ErrInvalidConfig when an option is invalid or
// a stack cannot be built.
func (a *API) Transport(base http.RoundTripper, opts ...Option) (http.RoundTripper, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: openapi: nil API", bulwark.ErrInvalidConfig)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if base == nil {
		base = http.DefaultTransport
	}
	stacks, err := a.buildStacks(o)
	if err != nil {
		return nil, err
	}
	t := &transport{router: a.router, base: o.base(a), next: base, ops: make([]*opTransport, len(a.ops))}
	for i, st := range stacks {
		if st == nil {
			continue
		}
		ot := &opTransport{op: a.ops[i], stack: st, base: base, o: o}
		if _, err := ot.build(st.Load()); err != nil {
			return nil, err
		}
		t.ops[i] = ot
	}
	return t, nil
}

type transport struct {
	router *router
	base   string
	next   http.RoundTripper
	ops    []*opTransport
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	i := t.router.match(req.Method, req.URL.Path, t.base)
	if i < 0 || t.ops[i] == nil {
		return t.next.RoundTrip(req)
	}
	return t.ops[i].roundTrip(req)
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type opTransport struct {
	op    *Operation
	stack *policy.Stack
	base  http.RoundTripper
	o     *options
	mu    sync.Mutex
	cur   atomic.Pointer[rtChain]
}

type rtChain struct {
	parts *policy.Parts
	rt    http.RoundTripper
}

func (t *opTransport) roundTrip(req *http.Request) (*http.Response, error) {
	p := t.stack.Load()
	c := t.cur.Load()
	if c == nil || c.parts != p {
		t.mu.Lock()
		if c = t.cur.Load(); c == nil || c.parts != p {
			if rt, err := t.build(p); err == nil || c == nil {
				if err != nil {
					rt = t.base
				}
				c = &rtChain{parts: p, rt: rt}
				t.cur.Store(c)
			}
		}
		t.mu.Unlock()
	}
	return c.rt.RoundTrip(req)
}

func jitterFraction(j local.Jitter) float64 {
	switch j {
	case local.JitterNone:
		return 0
	case local.JitterEqual:
		return 0.5
	}
	return 1
}

func (t *opTransport) build(p *policy.Parts) (http.RoundTripper, error) {
	if !p.Enabled {
		t.cur.Store(&rtChain{parts: p, rt: t.base})
		return t.base, nil
	}
	base := t.base
	if p.Timeout > 0 {
		base = &attemptTimeout{next: base, d: p.Timeout}
	}
	opts := []bulwarkhttp.Option{bulwarkhttp.WithName(p.Name), bulwarkhttp.WithObserver(t.o.observer)}
	if t.o.clock != nil {
		opts = append(opts, bulwarkhttp.WithClock(t.o.clock))
	}
	switch {
	case p.Retry != nil:
		r := p.Retry
		statuses := append([]int{http.StatusTooManyRequests}, r.Statuses...)
		maxBackoff := r.MaxDelay
		if maxBackoff <= 0 {
			maxBackoff = bulwarkhttp.DefaultMaxBackoff
		}
		delay := r.Delay
		if delay <= 0 {
			delay = time.Millisecond
		}
		opts = append(opts, bulwarkhttp.WithMaxRetries(r.Attempts-1), bulwarkhttp.WithBackoff(delay, max(delay, maxBackoff)),
			bulwarkhttp.WithRetryStatuses(statuses...), bulwarkhttp.WithJitter(jitterFraction(r.Jitter)),
			bulwarkhttp.WithRetryMethods(t.op.Method, "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
	case p.Spec.Retry != nil:
		opts = append(opts, bulwarkhttp.WithMaxRetries(0)) // declared and switched off
	}
	if p.Hedge != nil {
		opts = append(opts, bulwarkhttp.WithHedge(p.Hedge.Delay, p.Hedge.MaxHedges))
	}
	if b := p.Breaker; b != nil {
		opts = append(opts, bulwarkhttp.WithHostBreaker(func(string) bulwark.Breaker { return b }))
	}
	if p.Limiter != nil {
		opts = append(opts, bulwarkhttp.WithHostLimiter(p.Limiter))
	}
	rt, err := bulwarkhttp.NewTransport(base, opts...)
	if err != nil {
		return nil, fmt.Errorf("openapi: %s: %w", p.Name, err)
	}
	t.cur.Store(&rtChain{parts: p, rt: rt})
	return rt, nil
}

// attemptTimeout bounds each attempt: the request's context gets a
// deadline d from now, released when the response body is closed.
type attemptTimeout struct {
	next http.RoundTripper
	d    time.Duration
}

// TimeoutError is the error of an attempt that ran past its operation's
// timeout. It matches bulwark.ErrTimeout.
type TimeoutError struct {
	Operation string
	Timeout   time.Duration
}

// Error says which operation ran out of time.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("openapi: %s: no response within %v", e.Operation, e.Timeout)
}

// Is reports whether target is bulwark.ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == bulwark.ErrTimeout }

func (t *attemptTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeoutCause(req.Context(), t.d, &TimeoutError{Operation: req.Method + " " + req.URL.Path, Timeout: t.d})
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cause := context.Cause(ctx)
		cancel()
		if req.Context().Err() == nil && cause != nil && ctx.Err() == context.DeadlineExceeded {
			return nil, cause
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
