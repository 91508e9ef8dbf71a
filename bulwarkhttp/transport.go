package bulwarkhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// PatternClient is the Event.Pattern of the events [Transport] emits.
const PatternClient = "http_client"

// Transport is an http.RoundTripper that retries, honours Retry-After, and
// optionally guards each host with a circuit breaker and a rate limiter and
// hedges slow GETs. Use it as an http.Client's Transport:
//
//	t, err := bulwarkhttp.NewTransport(nil, bulwarkhttp.WithMaxRetries(2))
//	client := &http.Client{Transport: t, Timeout: 10 * time.Second}
//
// Retrying. A request is retried when its method is idempotent (see
// [WithRetryMethods]), its body can be replayed (no body, or
// http.Request.GetBody set), and the attempt failed: a transport error, or
// a status from [WithRetryStatuses] (429, 502, 503, 504 by default). At
// most [WithMaxRetries] retries are made. A non-retryable request is sent
// exactly once.
//
// Waiting. A failed response carrying Retry-After (delta-seconds, or an
// HTTP-date read against the response's Date field so clock skew between
// client and server does not matter) is retried after that wait, lengthened
// by jitter; a wait above [WithMaxRetryAfter] ends retrying and returns the
// response. Otherwise the wait is an exponential back-off with jitter
// ([WithBackoff]). The bodies of responses that are retried are drained and
// closed.
//
// Deadlines. The transport never waits past the request context's deadline:
// when the next wait would end after it, the last response (the 429 or 503,
// with its Retry-After) or error is returned at once. A context that ends
// during a wait ends the call with the context's error.
//
// Time is read from the clock set with [WithClock], whose timers drive the
// waits when it is a bulwark.TimerClock, so tests need not sleep. Retries
// and hedges are reported to the [WithObserver] observer as
// bulwark.EventRetry and bulwark.EventHedge with Pattern [PatternClient].
//
// A Transport is safe for concurrent use.
type Transport struct {
	base http.RoundTripper
	o    *options

	mu       sync.RWMutex
	breakers map[string]bulwark.Breaker
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport sending through base
// (http.DefaultTransport when nil). It returns an error wrapping
// bulwark.ErrInvalidConfig when an option is invalid.
func NewTransport(base http.RoundTripper, opts ...Option) (*Transport, error) {
	if core.IsNil(base) {
		base = http.DefaultTransport
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Transport{base: base, o: o, breakers: make(map[string]bulwark.Breaker)}, nil
}

// StatusError is the Err of a bulwark.EventRetry caused by a response
// status rather than a transport error.
type StatusError struct{ StatusCode int }

// Error returns "bulwarkhttp: response status " and the code.
func (e *StatusError) Error() string {
	return "bulwarkhttp: response status " + strconv.Itoa(e.StatusCode)
}

// CloseIdleConnections closes the idle connections of the base transport
// when it has such a method, as http.Client.CloseIdleConnections expects.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	o := t.o
	host := req.URL.Host
	if host == "" {
		host = req.Host
	}
	var br bulwark.Breaker
	if o.breakerFor != nil {
		br = t.breaker(host)
	}
	retry := t.canRetry(req)
	hedge := o.maxHedges > 0 && (req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == "") &&
		(req.Body == nil || req.Body == http.NoBody)

	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			var err error
			if r, err = rewind(req); err != nil {
				return nil, err
			}
		}
		if o.hostLimiter != nil {
			if err := t.waitLimiter(ctx, host); err != nil {
				closeBody(r)
				return nil, err
			}
		}
		var tk Ticket
		if o.pacer != nil {
			var err error
			if tk, err = o.pacer.Acquire(ctx, host); err != nil {
				closeBody(r)
				return nil, err
			}
		}
		var done func(bool)
		if br != nil {
			var err error
			if done, err = br.Allow(ctx); err != nil {
				tk.Cancel()
				closeBody(r)
				return nil, err
			}
		}
		var resp *http.Response
		var err error
		if hedge {
			resp, err = t.hedged(r, host)
		} else {
			resp, err = t.base.RoundTrip(r)
		}
		if o.pacer != nil {
			if err != nil {
				tk.Cancel()
			} else {
				tk.Done(QuotaFromResponse(resp, o.clock.Now()))
			}
		}
		if done != nil {
			failed := (err != nil && ctx.Err() == nil) || (err == nil && resp.StatusCode >= 500)
			done(!failed)
		}
		if !retry || attempt > o.maxRetries || !t.shouldRetry(ctx, resp, err) {
			return resp, err
		}
		wait, ok := t.delay(attempt, resp)
		if !ok {
			return resp, err
		}
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
			return resp, err
		}
		cause := err
		if resp != nil {
			cause = &StatusError{StatusCode: resp.StatusCode}
			drain(resp)
		}
		o.emit(bulwark.Event{Kind: bulwark.EventRetry, Pattern: PatternClient, Attempt: attempt, Duration: wait, Err: cause})
		if err := t.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// canRetry reports whether req may be sent more than once.
func (t *Transport) canRetry(req *http.Request) bool {
	if t.o.maxRetries == 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	m := req.Method
	if m == "" {
		m = http.MethodGet
	}
	if t.o.retryMethods[m] {
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

// rewind returns a copy of req with a fresh body for another attempt.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	return r, nil
}

func (t *Transport) shouldRetry(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		var certErr *tls.CertificateVerificationError
		return !errors.As(err, &certErr)
	}
	return t.o.retryStatuses[resp.StatusCode]
}

// delay is the wait before the retry after attempt; ok is false when the
// server asked for a wait above the cap.
func (t *Transport) delay(attempt int, resp *http.Response) (time.Duration, bool) {
	o := t.o
	if resp != nil {
		if ra, ok := parseRetryAfter(resp.Header, o.clock.Now()); ok {
			if ra > o.maxRetryAfter {
				return 0, false
			}
			w := ra + time.Duration(o.jitter*o.random()*float64(ra))
			return min(w, o.maxRetryAfter), true
		}
	}
	d := o.backoffMax
	if shift := attempt - 1; shift < 40 {
		d = min(o.backoffBase<<shift, o.backoffMax)
	}
	d -= time.Duration(o.jitter * o.random() * float64(d))
	return min(d, o.maxRetryAfter), true
}

// parseRetryAfter reads a Retry-After field: delta-seconds, or an HTTP-date
// measured from the response's Date field when it has a valid one, else
// from now.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if digits(v) || (len(v) > 5 && strings.Trim(v, "0123456789") == "") {
		if len(v) > 9 { // more than 31 years: effectively forever
			return time.Duration(1<<63 - 1), true
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return time.Duration(n) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return max(at.Sub(now), 0), true
}

func (t *Transport) waitLimiter(ctx context.Context, host string) error {
	for {
		d, err := t.o.hostLimiter.Allow(ctx, host, 1)
		if err != nil {
			return err
		}
		if d.Allowed {
			return nil
		}
		wait := max(d.RetryAfter, time.Microsecond)
		if wait > t.o.maxRetryAfter {
			return d.Err()
		}
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
			return d.Err()
		}
		if err := t.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (t *Transport) sleep(ctx context.Context, d time.Duration) error {
	tm := core.NewTimer(t.o.clock, d)
	select {
	case <-tm.C():
		return nil
	case <-ctx.Done():
		tm.Stop()
		return ctx.Err()
	}
}

func (t *Transport) breaker(host string) bulwark.Breaker {
	t.mu.RLock()
	b, ok := t.breakers[host]
	t.mu.RUnlock()
	if ok {
		return b
	}
	b = t.o.breakerFor(host) // user code: never under the lock
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.breakers[host]; ok {
		return prev
	}
	t.breakers[host] = b
	return b
}

// hedgeWins reports whether an attempt's outcome ends hedging.
func (t *Transport) hedgeWins(resp *http.Response, err error) bool {
	return err == nil && resp.StatusCode < 500 && !t.o.retryStatuses[resp.StatusCode]
}

type attemptResult struct {
	resp *http.Response
	err  error
	idx  int // index of the attempt's cancel func
}

// hedged sends req, and copies of it every hedge delay while no attempt
// has won, and returns the first winning response (or, when every attempt
// failed, the last failed response, else the last error).
func (t *Transport) hedged(req *http.Request, host string) (*http.Response, error) {
	ctx := req.Context()
	o := t.o
	maxAttempts := 1 + o.maxHedges
	results := make(chan attemptResult, maxAttempts)
	cancels := make([]context.CancelFunc, 0, maxAttempts)
	launch := func() {
		actx, cancel := context.WithCancel(ctx)
		idx := len(cancels)
		cancels = append(cancels, cancel)
		r := req.WithContext(actx)
		go func() {
			resp, err := t.base.RoundTrip(r)
			results <- attemptResult{resp: resp, err: err, idx: idx}
		}()
	}
	// discard throws an attempt's outcome away.
	discard := func(r attemptResult) {
		if r.resp != nil {
			drain(r.resp)
		}
		cancels[r.idx]()
	}
	// abandon cancels every attempt but keep (-1: all) and cleans up after
	// the pending ones once they return; its goroutine ends with the last.
	abandon := func(pending, keep int) {
		for i, c := range cancels {
			if i != keep {
				c()
			}
		}
		if pending > 0 {
			go func() {
				for range pending {
					if r := <-results; r.resp != nil {
						drain(r.resp)
					}
				}
			}()
		}
	}

	launch()
	pending := 1
	var timer bulwark.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var last *attemptResult
	for {
		var tick <-chan time.Time
		if len(cancels) < maxAttempts {
			if timer == nil {
				timer = core.NewTimer(o.clock, o.hedgeDelay)
			}
			tick = timer.C()
		}
		select {
		case res := <-results:
			pending--
			won := t.hedgeWins(res.resp, res.err)
			if !won && last != nil {
				// Keep the more useful failure: a response over an error,
				// else the later one.
				if res.resp == nil && last.resp != nil {
					res, *last = *last, res
				}
				discard(*last)
				last = nil
			}
			if won || pending == 0 {
				if last != nil {
					discard(*last)
				}
				abandon(pending, res.idx)
				if res.resp == nil {
					cancels[res.idx]()
					return nil, res.err
				}
				// The winner's context lives until its body is closed.
				res.resp.Body = &cancelOnClose{ReadCloser: res.resp.Body, cancel: cancels[res.idx]}
				return res.resp, nil
			}
			last = &res
		case <-tick:
			timer = nil
			if o.hostLimiter != nil {
				if d, err := o.hostLimiter.Allow(ctx, host, 1); err != nil || !d.Allowed {
					maxAttempts = len(cancels) // no token for a hedge: stop hedging
					continue
				}
			}
			launch()
			pending++
			o.emit(bulwark.Event{Kind: bulwark.EventHedge, Pattern: PatternClient, Attempt: len(cancels) - 1})
		case <-ctx.Done():
			if last != nil {
				discard(*last)
			}
			abandon(pending, -1)
			return nil, ctx.Err()
		}
	}
}

// cancelOnClose cancels an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// drain reads what is left of a response body, up to a bound, and closes
// it, so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}
