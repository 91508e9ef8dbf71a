package openapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/policy"
)

// PatternServerRetry is the Event.Pattern of the server-side retry's events.
const PatternServerRetry = "http_server_retry"

// serverRetry re-runs the handler after a response with a retried status,
// from a buffered response and a replayed request body (see Middleware).
type serverRetry struct {
	next  http.Handler
	plan  policy.RetryPlan
	max   int64
	clock bulwark.Clock
	obs   bulwark.Observer
	name  string
}

func (s *serverRetry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		buf, err := io.ReadAll(io.LimitReader(r.Body, s.max+1))
		if err != nil || int64(len(buf)) > s.max {
			// Too large (or unreadable) to replay: run once, with what was read first.
			r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
			s.next.ServeHTTP(w, r)
			return
		}
		body = buf
	}
	orig := r.Body
	defer func() { r.Body = orig }()
	for attempt := 1; ; attempt++ {
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		bw := newBufferedWriter(w, s.max)
		s.next.ServeHTTP(bw, r)
		if bw.streaming || attempt >= s.plan.Attempts || !slices.Contains(s.plan.Statuses, bw.code()) ||
			r.Context().Err() != nil {
			bw.commit()
			return
		}
		wait := s.jitter(s.plan.Wait(attempt))
		emit(s.obs, bulwark.Event{Kind: bulwark.EventRetry, Pattern: PatternServerRetry, Name: s.name,
			Time: s.clock.Now(), Attempt: attempt + 1, Duration: wait, Err: &statusError{bw.code()}})
		if !s.sleep(r, wait) {
			bw.commit()
			return
		}
	}
}

func (s *serverRetry) jitter(d time.Duration) time.Duration {
	switch s.plan.Jitter {
	case local.JitterFull, local.JitterDecorrelated:
		return time.Duration(rand.Float64() * float64(d))
	case local.JitterEqual:
		return d/2 + time.Duration(rand.Float64()*float64(d/2))
	}
	return d
}

// sleep waits d on the clock, false when the request ended first.
func (s *serverRetry) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	var c <-chan time.Time
	if tc, ok := s.clock.(bulwark.TimerClock); ok {
		t := tc.NewTimer(d)
		defer t.Stop()
		c = t.C()
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		c = t.C
	}
	select {
	case <-c:
		return true
	case <-r.Context().Done():
		return false
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "openapi: handler answered " + strconv.Itoa(e.code) }

type readCloser struct {
	io.Reader
	io.Closer
}

// bufferedWriter holds one attempt's response until it is known whether it
// is retried; it starts streaming once the body outgrows max or the
// handler flushes.
type bufferedWriter struct {
	w         http.ResponseWriter
	header    http.Header
	status    int
	buf       bytes.Buffer
	max       int64
	streaming bool
}

func newBufferedWriter(w http.ResponseWriter, max int64) *bufferedWriter {
	return &bufferedWriter{w: w, header: w.Header().Clone(), max: max}
}

func (b *bufferedWriter) Header() http.Header {
	if b.streaming {
		return b.w.Header()
	}
	return b.header
}

func (b *bufferedWriter) WriteHeader(code int) {
	if b.streaming {
		b.w.WriteHeader(code)
		return
	}
	if b.status == 0 && code >= 200 {
		b.status = code
	} else if b.status == 0 {
		b.startStreaming() // 1xx informational: pass through, no retry
		b.w.WriteHeader(code)
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.streaming {
		return b.w.Write(p)
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if int64(b.buf.Len()+len(p)) > b.max {
		b.startStreaming()
		return b.w.Write(p)
	}
	return b.buf.Write(p)
}

func (b *bufferedWriter) code() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// startStreaming writes what is buffered and passes the rest through.
func (b *bufferedWriter) startStreaming() {
	if b.streaming {
		return
	}
	b.streaming = true
	dst := b.w.Header()
	clear(dst)
	for k, v := range b.header {
		dst[k] = v
	}
	if b.status != 0 {
		b.w.WriteHeader(b.status)
	}
	if b.buf.Len() > 0 {
		_, _ = b.w.Write(b.buf.Bytes())
		b.buf.Reset()
	}
}

// commit sends the buffered response.
func (b *bufferedWriter) commit() {
	if b.streaming {
		return
	}
	if b.status == 0 && b.buf.Len() == 0 {
		// The handler wrote nothing: let net/http answer 200 as usual, with
		// the handler's header fields.
		b.streaming = true
		dst := b.w.Header()
		clear(dst)
		for k, v := range b.header {
			dst[k] = v
		}
		return
	}
	b.startStreaming()
}

// Unwrap returns the underlying writer, for http.ResponseController's
// deadlines.
func (b *bufferedWriter) Unwrap() http.ResponseWriter { return b.w }

// Flush streams the response: it will not be retried.
func (b *bufferedWriter) Flush() {
	b.startStreaming()
	if f, ok := b.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over: the response will not be retried.
func (b *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := b.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("openapi: the response writer cannot be hijacked")
	}
	b.streaming = true
	return h.Hijack()
}
