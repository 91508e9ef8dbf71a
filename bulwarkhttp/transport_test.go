package bulwarkhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

// scriptedRT answers attempt n (from 0) with fn and records request bodies.
type scriptedRT struct {
	mu     sync.Mutex
	fn     func(n int, r *http.Request) (*http.Response, error)
	calls  int
	bodies []string
	resps  []*trackedBody
}

func (s *scriptedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	var body string
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		body = string(b)
	}
	s.mu.Lock()
	n := s.calls
	s.calls++
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	resp, err := s.fn(n, r)
	if resp != nil {
		tb := &trackedBody{Reader: resp.Body}
		resp.Body = tb
		resp.Request = r
		s.mu.Lock()
		s.resps = append(s.resps, tb)
		s.mu.Unlock()
	}
	return resp, err
}

func (s *scriptedRT) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func response(code int, body string, kv ...string) *http.Response {
	h := make(http.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func sequence(resps ...func() (*http.Response, error)) func(int, *http.Request) (*http.Response, error) {
	return func(n int, _ *http.Request) (*http.Response, error) {
		return resps[min(n, len(resps)-1)]()
	}
}

func answer(code int, body string, kv ...string) func() (*http.Response, error) {
	return func() (*http.Response, error) { return response(code, body, kv...), nil }
}

func mustTransport(t *testing.T, base http.RoundTripper, opts ...Option) *Transport {
	t.Helper()
	tr, err := NewTransport(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

type result struct {
	resp *http.Response
	err  error
}

// doAsync runs req through tr on another goroutine.
func doAsync(tr http.RoundTripper, req *http.Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		ch <- result{resp, err}
	}()
	return ch
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return string(b)
}

// TestTransportHonoursRetryAfterAgainstServer runs against a real test
// server that answers 429 with Retry-After, then 200.
func TestTransportHonoursRetryAfterAgainstServer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, "slow down")
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &recordingObserver{}
	tr := mustTransport(t, srv.Client().Transport, WithClock(clk), WithObserver(obs), WithName("upstream"))
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	ch := make(chan result, 1)
	go func() {
		resp, err := client.Get(srv.URL)
		ch <- result{resp, err}
	}()
	clk.WaitTimers(1)
	if got := hits.Load(); got != 1 {
		t.Fatalf("server hit %d times before the wait, want 1", got)
	}
	clk.Advance(2*time.Second + 400*time.Millisecond) // Retry-After plus the most jitter
	res := <-ch
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.resp.StatusCode != 200 || readAll(t, res.resp) != "hello" {
		t.Fatalf("status = %d", res.resp.StatusCode)
	}
	ev := obs.all()
	if len(ev) != 1 {
		t.Fatalf("events = %+v", ev)
	}
	e := ev[0]
	var se *StatusError
	if e.Kind != bulwark.EventRetry || e.Attempt != 1 || e.Name != "upstream" || e.Duration < 2*time.Second || e.Duration > 2400*time.Millisecond ||
		!errors.As(e.Err, &se) || se.StatusCode != 429 {
		t.Errorf("event = %+v", e)
	}
}

func TestTransportRetryAfterForms(t *testing.T) {
	date := fakeclock.Epoch.Add(-time.Hour) // server clock an hour behind ours
	for _, tc := range []struct {
		name string
		kv   []string
		want time.Duration
	}{
		{"delta seconds", []string{"Retry-After", "3"}, 3 * time.Second},
		{"zero", []string{"Retry-After", "0"}, 0},
		{"http-date against the Date field", []string{"Date", date.UTC().Format(http.TimeFormat), "Retry-After", date.Add(5 * time.Second).UTC().Format(http.TimeFormat)}, 5 * time.Second},
		{"http-date against our clock without Date", []string{"Retry-After", fakeclock.Epoch.Add(7 * time.Second).UTC().Format(http.TimeFormat)}, 7 * time.Second},
		{"http-date in the past", []string{"Retry-After", fakeclock.Epoch.Add(-7 * time.Second).UTC().Format(http.TimeFormat)}, 0},
		{"garbage falls back to back-off", []string{"Retry-After", "soon"}, 100 * time.Millisecond},
		{"negative falls back to back-off", []string{"Retry-After", "-5"}, 100 * time.Millisecond},
		{"absent falls back to back-off", nil, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(fakeclock.Epoch)
			obs := &recordingObserver{}
			base := &scriptedRT{fn: sequence(answer(503, "busy", tc.kv...), answer(200, "ok"))}
			tr := mustTransport(t, base, WithClock(clk), WithObserver(obs), WithJitter(0))
			ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil))
			if tc.want > 0 {
				clk.WaitTimers(1)
				clk.Advance(tc.want - time.Nanosecond)
				select {
				case <-ch:
					t.Fatal("retried before the wait was over")
				default:
				}
				clk.Advance(time.Nanosecond)
			}
			res := <-ch
			if res.err != nil || res.resp.StatusCode != 200 {
				t.Fatalf("got %v %v", res.resp, res.err)
			}
			if ev := obs.all(); len(ev) != 1 || ev[0].Duration != tc.want {
				t.Errorf("events = %+v, want one with wait %v", ev, tc.want)
			}
			if !base.resps[0].closed.Load() {
				t.Error("the retried response's body was not closed")
			}
		})
	}
}

func TestParseRetryAfterHuge(t *testing.T) {
	h := http.Header{"Retry-After": {"99999999999999999999"}}
	d, ok := parseRetryAfter(h, time.Now())
	if !ok || d < 100*365*24*time.Hour {
		t.Errorf("got %v %v", d, ok)
	}
}

func TestTransportJitterOnlyLengthensRetryAfter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		tr := mustTransport(t, nil, withRandom(func() float64 { return r }), WithJitter(0.5))
		d, ok := tr.delay(1, response(429, "", "Retry-After", "10"))
		if !ok || d < 10*time.Second || d > 15*time.Second {
			t.Errorf("random %v: wait %v", r, d)
		}
		// Capped, but never below what the server asked.
		tr = mustTransport(t, nil, withRandom(func() float64 { return r }), WithJitter(0.5), WithMaxRetryAfter(11*time.Second))
		if d, ok := tr.delay(1, response(429, "", "Retry-After", "10")); !ok || d < 10*time.Second || d > 11*time.Second {
			t.Errorf("random %v capped: wait %v", r, d)
		}
	}
}

func TestTransportExponentialBackoff(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &recordingObserver{}
	base := &scriptedRT{fn: sequence(answer(502, ""), answer(504, ""), answer(503, ""), answer(200, "fine"))}
	tr := mustTransport(t, base, WithClock(clk), WithObserver(obs), WithJitter(0), WithBackoff(100*time.Millisecond, 300*time.Millisecond))
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil))
	for _, d := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond} {
		clk.WaitTimers(1)
		clk.Advance(d)
	}
	res := <-ch
	if res.err != nil || readAll(t, res.resp) != "fine" {
		t.Fatalf("got %v", res.err)
	}
	var waits []time.Duration
	for _, e := range obs.all() {
		waits = append(waits, e.Duration)
	}
	if len(waits) != 3 || waits[0] != 100*time.Millisecond || waits[1] != 200*time.Millisecond || waits[2] != 300*time.Millisecond {
		t.Errorf("waits = %v", waits)
	}
}

func TestTransportGivesUpAfterMaxRetries(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	base := &scriptedRT{fn: sequence(answer(503, "still busy", "Retry-After", "1"))}
	tr := mustTransport(t, base, WithClock(clk), WithMaxRetries(2), WithJitter(0))
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil))
	for range 2 {
		clk.WaitTimers(1)
		clk.Advance(time.Second)
	}
	res := <-ch
	if res.err != nil || res.resp.StatusCode != 503 {
		t.Fatalf("got %v %v", res.resp, res.err)
	}
	if body := readAll(t, res.resp); body != "still busy" {
		t.Errorf("last response body = %q: it must reach the caller intact", body)
	}
	if n := base.count(); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
}

func TestTransportNoRetryOfPostUnlessAsked(t *testing.T) {
	base := &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "0"), answer(200, "ok"))}
	tr := mustTransport(t, base)
	req, _ := http.NewRequest("POST", "http://api.test/orders", strings.NewReader("payload"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 || base.count() != 1 {
		t.Fatalf("POST: status %v err %v attempts %d; want one 503", resp.StatusCode, err, base.count())
	}
	_ = resp.Body.Close()

	// Asked: POST is retried and its body replayed through GetBody.
	base = &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "0"), answer(200, "ok"))}
	tr = mustTransport(t, base, WithRetryMethods("post"))
	req, _ = http.NewRequest("POST", "http://api.test/orders", strings.NewReader("payload"))
	resp, err = tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST with retry: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if len(base.bodies) != 2 || base.bodies[0] != "payload" || base.bodies[1] != "payload" {
		t.Errorf("bodies = %q, want the payload twice", base.bodies)
	}

	// An Idempotency-Key makes a POST safe to retry.
	base = &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "0"), answer(200, "ok"))}
	tr = mustTransport(t, base)
	req, _ = http.NewRequest("POST", "http://api.test/orders", strings.NewReader("payload"))
	req.Header.Set("Idempotency-Key", "8e03978e")
	resp, err = tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 || base.count() != 2 {
		t.Errorf("POST with Idempotency-Key: %v %v attempts %d", resp, err, base.count())
	}
	_ = resp.Body.Close()
}

// oneShotReader is a body http.NewRequest cannot replay.
type oneShotReader struct{ io.Reader }

func TestTransportBodyWithoutGetBodyIsSentOnce(t *testing.T) {
	base := &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "0"), answer(200, "ok"))}
	tr := mustTransport(t, base)
	req, _ := http.NewRequest("PUT", "http://api.test/doc", oneShotReader{strings.NewReader("v2")})
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 || base.count() != 1 {
		t.Errorf("got %v %v attempts %d; want one 503", resp, err, base.count())
	}
	_ = resp.Body.Close()
}

func TestTransportBodyReplayOnPut(t *testing.T) {
	base := &scriptedRT{fn: sequence(
		func() (*http.Response, error) { return nil, errors.New("connection reset by peer") },
		answer(503, "", "Retry-After", "0"),
		answer(200, "stored"))}
	tr := mustTransport(t, base, WithJitter(0), WithBackoff(time.Nanosecond, time.Nanosecond))
	req, _ := http.NewRequest("PUT", "http://api.test/doc", strings.NewReader("version 2"))
	resp, err := tr.RoundTrip(req)
	if err != nil || readAll(t, resp) != "stored" {
		t.Fatalf("got %v %v", resp, err)
	}
	if len(base.bodies) != 3 {
		t.Fatalf("attempts = %d", len(base.bodies))
	}
	for i, b := range base.bodies {
		if b != "version 2" {
			t.Errorf("attempt %d body = %q", i, b)
		}
	}
}

func TestTransportNeverWaitsPastDeadline(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	base := &scriptedRT{fn: sequence(answer(429, "later", "Retry-After", "7200"), answer(200, "ok"))}
	tr := mustTransport(t, base, WithClock(clk), WithMaxRetryAfter(3*time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	resp, err := tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil).WithContext(ctx))
	if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7200" || readAll(t, resp) != "later" {
		t.Fatalf("got %v %v; want the 429 itself", resp, err)
	}
	if base.count() != 1 || clk.Timers() != 0 {
		t.Errorf("attempts %d, timers %d", base.count(), clk.Timers())
	}
}

func TestTransportRetryAfterAboveCapIsReturned(t *testing.T) {
	base := &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "120"), answer(200, "ok"))}
	tr := mustTransport(t, base, WithMaxRetryAfter(time.Minute))
	resp, err := tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil))
	if err != nil || resp.StatusCode != 503 || base.count() != 1 {
		t.Errorf("got %v %v attempts %d", resp, err, base.count())
	}
	_ = resp.Body.Close()
}

func TestTransportContextEndsDuringWait(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	base := &scriptedRT{fn: sequence(answer(503, "", "Retry-After", "5"))}
	tr := mustTransport(t, base, WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil).WithContext(ctx))
	clk.WaitTimers(1)
	cancel()
	res := <-ch
	if !errors.Is(res.err, context.Canceled) || res.resp != nil {
		t.Errorf("got %v %v", res.resp, res.err)
	}
	if !base.resps[0].closed.Load() {
		t.Error("response body not closed")
	}
}

func TestTransportErrors(t *testing.T) {
	// A transport error is retried; a context error is not.
	base := &scriptedRT{fn: sequence(
		func() (*http.Response, error) { return nil, errors.New("dial tcp: connection refused") },
		answer(200, "up"))}
	tr := mustTransport(t, base, WithBackoff(time.Nanosecond, time.Nanosecond))
	resp, err := tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil))
	if err != nil || readAll(t, resp) != "up" {
		t.Fatalf("got %v %v", resp, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	base = &scriptedRT{fn: func(int, *http.Request) (*http.Response, error) { cancel(); return nil, context.Canceled }}
	tr = mustTransport(t, base)
	if _, err := tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil).WithContext(ctx)); !errors.Is(err, context.Canceled) || base.count() != 1 {
		t.Errorf("err %v attempts %d", err, base.count())
	}

	// Retrying off.
	base = &scriptedRT{fn: sequence(answer(503, ""))}
	tr = mustTransport(t, base, WithMaxRetries(0))
	resp, _ = tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil))
	_ = resp.Body.Close()
	if base.count() != 1 {
		t.Errorf("attempts %d with retries off", base.count())
	}
}

// countingBreaker is a fakeBreaker that also counts how often it was made.
func TestTransportHostBreaker(t *testing.T) {
	var mu sync.Mutex
	made := map[string]*fakeBreaker{}
	factory := func(host string) bulwark.Breaker {
		mu.Lock()
		defer mu.Unlock()
		b := &fakeBreaker{}
		if _, dup := made[host]; dup {
			t.Errorf("breaker for %s made twice", host)
		}
		made[host] = b
		if host == "unguarded.test" {
			return nil
		}
		return b
	}
	base := &scriptedRT{fn: func(_ int, r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/fail" {
			return response(500, ""), nil
		}
		return response(200, ""), nil
	}}
	tr := mustTransport(t, base, WithHostBreaker(factory), WithMaxRetries(0))
	for _, u := range []string{"http://a.test/ok", "http://a.test/fail", "http://b.test:8080/ok", "http://unguarded.test/ok"} {
		resp, err := tr.RoundTrip(httptest.NewRequest("GET", u, nil))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if got := made["a.test"].reported(); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("a.test outcomes = %v, want [true false]", got)
	}
	if got := made["b.test:8080"].reported(); len(got) != 1 || !got[0] {
		t.Errorf("b.test:8080 outcomes = %v", got)
	}
	made["a.test"].open = true
	req, _ := http.NewRequest("PUT", "http://a.test/ok", strings.NewReader("x"))
	before := base.count()
	client := &http.Client{Transport: tr}
	_, err := client.Do(req)
	if !errors.Is(err, bulwark.ErrOpen) || base.count() != before {
		t.Errorf("open breaker: err %v, sent %d", err, base.count()-before)
	}
}

func TestTransportHostLimiter(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	l := &scriptedLimiter{decisions: []bulwark.Decision{
		{Limit: 1, RetryAfter: 1500 * time.Millisecond},
		{Allowed: true, Limit: 1},
	}}
	base := &scriptedRT{fn: sequence(answer(200, "ok"))}
	tr := mustTransport(t, base, WithClock(clk), WithHostLimiter(l))
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test:9000/x", nil))
	clk.WaitTimers(1)
	if base.count() != 0 {
		t.Fatal("sent before the limiter allowed it")
	}
	clk.Advance(1500 * time.Millisecond)
	res := <-ch
	if res.err != nil {
		t.Fatal(res.err)
	}
	_ = res.resp.Body.Close()
	if got := l.lastKey(); got != "api.test:9000" {
		t.Errorf("limiter key = %q", got)
	}

	// A denial longer than the cap fails at once, without sending.
	l = &scriptedLimiter{decisions: []bulwark.Decision{{Limit: 1, RetryAfter: time.Hour}}}
	base = &scriptedRT{fn: sequence(answer(200, "ok"))}
	tr = mustTransport(t, base, WithClock(clk), WithHostLimiter(l))
	body := &trackedBody{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("PUT", "http://api.test/x", body)
	_, err := tr.RoundTrip(req)
	var rl *bulwark.RateLimitedError
	if !errors.Is(err, bulwark.ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != time.Hour || base.count() != 0 {
		t.Errorf("err %v sent %d", err, base.count())
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}
}

func TestTransportHedgeFirstSuccessWins(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &recordingObserver{}
	slowCancelled := make(chan struct{})
	var winnerCtx context.Context
	var mu sync.Mutex
	base := &scriptedRT{fn: func(n int, r *http.Request) (*http.Response, error) {
		if n == 0 {
			<-r.Context().Done() // the slow first attempt only ends when abandoned
			close(slowCancelled)
			return nil, r.Context().Err()
		}
		mu.Lock()
		winnerCtx = r.Context()
		mu.Unlock()
		return response(200, "fast"), nil
	}}
	tr := mustTransport(t, base, WithClock(clk), WithObserver(obs), WithHedge(50*time.Millisecond, 2))
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil))
	clk.WaitTimers(1)
	clk.Advance(50 * time.Millisecond)
	res := <-ch
	if res.err != nil {
		t.Fatal(res.err)
	}
	<-slowCancelled
	mu.Lock()
	wctx := winnerCtx
	mu.Unlock()
	if wctx.Err() != nil {
		t.Fatal("the winner's context was cancelled before its body was read")
	}
	if body := readAll(t, res.resp); body != "fast" {
		t.Errorf("body = %q", body)
	}
	if wctx.Err() == nil {
		t.Error("the winner's context outlived its body")
	}
	ev := obs.all()
	if len(ev) != 1 || ev[0].Kind != bulwark.EventHedge || ev[0].Attempt != 1 {
		t.Errorf("events = %+v", ev)
	}
	if base.count() != 2 {
		t.Errorf("attempts = %d, want 2", base.count())
	}
}

func TestTransportHedgeLosersBodiesClosed(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	release := make(chan struct{})
	base := &scriptedRT{fn: func(n int, r *http.Request) (*http.Response, error) {
		if n == 0 {
			<-release // answers only after the hedge has won
			return response(200, "late"), nil
		}
		return response(200, "fast"), nil
	}}
	tr := mustTransport(t, base, WithClock(clk), WithHedge(10*time.Millisecond, 1))
	ch := doAsync(tr, httptest.NewRequest("GET", "http://api.test/x", nil))
	clk.WaitTimers(1)
	clk.Advance(10 * time.Millisecond)
	res := <-ch
	if res.err != nil || readAll(t, res.resp) != "fast" {
		t.Fatalf("got %v", res.err)
	}
	close(release)
	// The loser's response is drained and closed by the transport.
	for {
		base.mu.Lock()
		n := len(base.resps)
		var closed bool
		if n == 2 {
			closed = base.resps[1].closed.Load()
		}
		base.mu.Unlock()
		if closed {
			break
		}
		waitABit()
	}
}

func TestTransportHedgeAllFail(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	base := &scriptedRT{fn: sequence(answer(503, "first"))}
	tr := mustTransport(t, base, WithClock(clk), WithHedge(time.Second, 1), WithMaxRetries(0))
	resp, err := tr.RoundTrip(httptest.NewRequest("GET", "http://api.test/x", nil))
	if err != nil || resp.StatusCode != 503 || readAll(t, resp) != "first" {
		t.Errorf("got %v %v", resp, err)
	}
	if base.count() != 1 {
		t.Errorf("a fast failure before the hedge delay launched %d attempts", base.count())
	}
}

func TestTransportNoHedgeForPost(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	base := &scriptedRT{fn: sequence(answer(200, "ok"))}
	tr := mustTransport(t, base, WithClock(clk), WithHedge(time.Nanosecond, 3))
	req, _ := http.NewRequest("POST", "http://api.test/x", strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if base.count() != 1 || clk.Timers() != 0 {
		t.Errorf("attempts %d timers %d", base.count(), clk.Timers())
	}
}

func TestTransportConfigErrors(t *testing.T) {
	for _, opt := range []Option{
		WithMaxRetries(-1), WithMaxRetryAfter(0), WithJitter(1.5), WithJitter(-0.1),
		WithBackoff(0, time.Second), WithBackoff(time.Second, time.Millisecond),
		WithRetryMethods("GE T"), WithRetryStatuses(42), WithHostBreaker(nil),
		WithHostLimiter(nil), WithHedge(0, 1), WithHedge(time.Second, 0),
	} {
		if _, err := NewTransport(nil, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("err = %v, want ErrInvalidConfig", err)
		}
	}
}
