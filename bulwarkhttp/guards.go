package bulwarkhttp

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Event patterns of the middleware in this file.
const (
	PatternTimeout = "http_timeout"
	PatternShed    = "http_shed"
)

// Breaker returns middleware that guards the next handler with the circuit
// breaker b: while b rejects calls (bulwark.ErrOpen) requests are answered
// with 503 through the reject handler; otherwise the handler runs and its
// outcome is reported to b. A response status for which [WithFailureStatus]'s
// function is true (by default 500 and above) or a panic counts as a
// failure; anything else as a success.
//
// To see the status the middleware wraps the ResponseWriter; the wrapper
// passes Flush and Hijack through and unwraps for http.ResponseController.
// It returns an error wrapping bulwark.ErrInvalidConfig when b is nil or an
// option is invalid.
func Breaker(b bulwark.Breaker, opts ...Option) (func(http.Handler) http.Handler, error) {
	if core.IsNil(b) {
		return nil, core.ConfigError("bulwarkhttp: breaker must not be nil")
	}
	return guard(opts, func(o *options, next http.Handler, w http.ResponseWriter, r *http.Request) {
		done, err := b.Allow(r.Context())
		if err != nil {
			rejectUnavailable(o, w, r, err)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		success := false
		defer func() { done(success) }()
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		success = !o.isFailure(status)
	})
}

// Bulkhead returns middleware that runs the next handler only while holding
// a slot of the bulkhead b. When no slot comes within the bulkhead's own
// max wait (bulwark.ErrBulkheadFull), or the request ends while waiting,
// the request is answered with 503 through the reject handler. It returns
// an error wrapping bulwark.ErrInvalidConfig when b is nil or an option is
// invalid.
func Bulkhead(b bulwark.Bulkhead, opts ...Option) (func(http.Handler) http.Handler, error) {
	if core.IsNil(b) {
		return nil, core.ConfigError("bulwarkhttp: bulkhead must not be nil")
	}
	return guard(opts, func(o *options, next http.Handler, w http.ResponseWriter, r *http.Request) {
		release, err := b.Acquire(r.Context())
		if err != nil {
			rejectUnavailable(o, w, r, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// Shedder admits or sheds work by priority: a load shedder. Acquire either
// admits the call, returning a release function that must be called exactly
// once when the call is over, or refuses it with a non-nil error (the
// shedder's own sentinel, bulwark.ErrBulkheadFull, or ctx's error). It is
// shaped like bulwark.Bulkhead with a priority added, so a bulkhead that
// ignores priority fits through [ShedderFunc]. The scale of priority is the
// shedder's; conventionally a larger number is more important.
type Shedder interface {
	Acquire(ctx context.Context, priority int) (release func(), err error)
}

// ShedderFunc adapts a function to [Shedder].
type ShedderFunc func(ctx context.Context, priority int) (release func(), err error)

var _ Shedder = ShedderFunc(nil)

// Acquire calls f(ctx, priority).
func (f ShedderFunc) Acquire(ctx context.Context, priority int) (func(), error) {
	return f(ctx, priority)
}

// Shed returns middleware that asks the load shedder s to admit each
// request, with the priority from [WithPriority] (0 by default). A refused
// request is answered with 503 through the reject handler and reported to
// the observer as a bulwark.EventRejected with Pattern [PatternShed]. It
// returns an error wrapping bulwark.ErrInvalidConfig when s is nil or an
// option is invalid.
func Shed(s Shedder, opts ...Option) (func(http.Handler) http.Handler, error) {
	if core.IsNil(s) {
		return nil, core.ConfigError("bulwarkhttp: shedder must not be nil")
	}
	return guard(opts, func(o *options, next http.Handler, w http.ResponseWriter, r *http.Request) {
		p := 0
		if o.priority != nil {
			p = o.priority(r)
		}
		release, err := s.Acquire(r.Context(), p)
		if err != nil {
			o.emit(bulwark.Event{Kind: bulwark.EventRejected, Pattern: PatternShed, Err: err})
			rejectUnavailable(o, w, r, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// guard builds the options of a guarding middleware and returns it: a
// request to an excluded path ([WithExcludedPaths]) goes straight to the
// next handler, every other one to serve.
func guard(opts []Option, serve func(o *options, next http.Handler, w http.ResponseWriter, r *http.Request)) (func(http.Handler) http.Handler, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.excluded(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			serve(o, next, w, r)
		})
	}, nil
}

// rejectUnavailable answers a breaker, bulkhead or shedder refusal: 503
// (504 if the request's deadline passed), with Retry-After when the
// options give advice.
func rejectUnavailable(o *options, w http.ResponseWriter, r *http.Request, err error) {
	rejectAdvised(o, w, r, errorStatus(err, http.StatusServiceUnavailable), err)
}

// rejectAdvised answers a refusal with status through the reject handler,
// with Retry-After when the options give advice.
func rejectAdvised(o *options, w http.ResponseWriter, r *http.Request, status int, err error) {
	ra := o.retryAfter(bulwark.Decision{})
	setRetryAfter(w.Header(), ra)
	o.reject(w, r, Rejection{Status: status, Err: err, RetryAfter: ra})
}

// Timeout returns middleware that gives the next handler a time budget of
// d: the request's context gets a deadline d from now, and when the handler
// has written nothing by the time the deadline passes the response is 504
// (through the reject handler) and the timeout is reported to the observer
// as a bulwark.EventTimeout. Writes the handler attempts after the deadline,
// before writing anything else, are dropped with http.ErrHandlerTimeout, so
// the 504 is never mixed with a late partial response; a handler that
// already started its response before the deadline keeps it.
//
// Timeout runs the handler on the request's own goroutine and never
// abandons it: no goroutine is left behind, responses can stream, but a
// handler that ignores its context delays the 504 until it returns. Every
// handler doing I/O should pass r.Context() down, as it must anyway.
//
// It returns an error wrapping bulwark.ErrInvalidConfig when d <= 0 or an
// option is invalid.
func Timeout(d time.Duration, opts ...Option) (func(http.Handler) http.Handler, error) {
	if d <= 0 {
		return nil, core.ConfigError("bulwarkhttp: timeout must be positive, got %v", d)
	}
	return guard(opts, func(o *options, next http.Handler, w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		tw := &timeoutWriter{ResponseWriter: w, ctx: ctx, h: w.Header().Clone()}
		next.ServeHTTP(tw, r.WithContext(ctx))
		if tw.status == 0 && ctx.Err() == nil {
			// The handler returned in time without writing: net/http answers
			// 200 with the real header map, which must carry its fields.
			tw.copyHeader()
		}
		if tw.status != 0 || ctx.Err() != context.DeadlineExceeded {
			return
		}
		if r.Context().Err() != nil {
			// The client or the server ended the request, not us.
			return
		}
		o.emit(bulwark.Event{Kind: bulwark.EventTimeout, Pattern: PatternTimeout, Duration: d})
		rejectAdvised(o, w, r, http.StatusGatewayTimeout, bulwark.ErrTimeout)
	})
}

// statusWriter records the status the handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Flush implements http.Flusher when the underlying writer can flush.
func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker through the underlying writer.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// timeoutWriter drops a response that would start after the deadline. The
// handler writes its headers into a copy, which replaces the real header
// map only when the response starts in time: a late handler's headers never
// leak into the 504.
type timeoutWriter struct {
	http.ResponseWriter
	ctx    context.Context
	h      http.Header
	status int
}

// Header returns the handler's copy until the response starts, and the real
// map after (so trailers set late still reach the client).
func (t *timeoutWriter) Header() http.Header {
	if t.status != 0 {
		return t.ResponseWriter.Header()
	}
	return t.h
}

func (t *timeoutWriter) start(code int) bool {
	if t.status != 0 {
		return true
	}
	if t.ctx.Err() != nil {
		return false
	}
	t.status = code
	t.copyHeader()
	return true
}

func (t *timeoutWriter) copyHeader() {
	real := t.ResponseWriter.Header()
	clear(real)
	for k, v := range t.h {
		real[k] = v
	}
}

func (t *timeoutWriter) WriteHeader(code int) {
	if code < 200 {
		if t.status == 0 && t.ctx.Err() == nil {
			t.copyHeader()
			t.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if t.status == 0 && t.start(code) {
		t.ResponseWriter.WriteHeader(code)
	}
}

func (t *timeoutWriter) Write(p []byte) (int, error) {
	if !t.start(http.StatusOK) {
		return 0, http.ErrHandlerTimeout
	}
	return t.ResponseWriter.Write(p)
}

// Flush implements http.Flusher when the underlying writer can flush.
func (t *timeoutWriter) Flush() {
	if t.start(http.StatusOK) {
		_ = http.NewResponseController(t.ResponseWriter).Flush()
	}
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (t *timeoutWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
