package bulwarkhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func statusHandler(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
	})
}

func TestBreakerMiddleware(t *testing.T) {
	b := &fakeBreaker{}
	mw := must(t)(Breaker(b))
	for _, code := range []int{200, 404, 500, 503} {
		if rec := serve(mw(statusHandler(code)), httptest.NewRequest("GET", "/", nil)); rec.Code != code {
			t.Errorf("status = %d, want %d", rec.Code, code)
		}
	}
	// A handler that writes a body without WriteHeader is a 200.
	serve(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hi") })), httptest.NewRequest("GET", "/", nil))
	// A handler that writes nothing is a 200 too.
	serve(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})), httptest.NewRequest("GET", "/", nil))
	if got, want := b.reported(), []bool{true, true, false, false, true, true}; !slices.Equal(got, want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}

	b.open = true
	rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Body.String() != "Service Unavailable\n" {
		t.Errorf("open breaker: got %d %q", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Retry-After") != "" {
		t.Errorf("Retry-After = %q without advice", rec.Header().Get("Retry-After"))
	}
}

func TestBreakerMiddlewareOptions(t *testing.T) {
	b := &fakeBreaker{}
	mw := must(t)(Breaker(b, WithFailureStatus(func(s int) bool { return s == 429 || s >= 500 }), WithBackpressure(backpressure(1500*time.Millisecond))))
	serve(mw(statusHandler(429)), httptest.NewRequest("GET", "/", nil))
	if got := b.reported(); !slices.Equal(got, []bool{false}) {
		t.Errorf("outcomes = %v", got)
	}
	b.open = true
	var rej Rejection
	mw = must(t)(Breaker(b, WithBackpressure(backpressure(1500*time.Millisecond)), WithRejectHandler(func(w http.ResponseWriter, r *http.Request, x Rejection) {
		rej = x
		w.WriteHeader(599)
	})))
	rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 599 || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("got %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rej.Status != 503 || !errors.Is(rej.Err, bulwark.ErrOpen) || rej.RetryAfter != 1500*time.Millisecond {
		t.Errorf("rejection = %+v", rej)
	}
}

func TestBreakerMiddlewarePanicIsFailure(t *testing.T) {
	b := &fakeBreaker{}
	h := must(t)(Breaker(b))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		serve(h, httptest.NewRequest("GET", "/", nil))
	}()
	if got := b.reported(); !slices.Equal(got, []bool{false}) {
		t.Errorf("outcomes = %v, want [false]", got)
	}
}

func TestBreakerMiddlewarePassesFlush(t *testing.T) {
	b := &fakeBreaker{}
	h := must(t)(Breaker(b))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
	}))
	rec := serve(h, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed {
		t.Error("response was not flushed")
	}
}

func TestBulkheadMiddleware(t *testing.T) {
	bh := &fakeBulkhead{cap: 1}
	mw := must(t)(Bulkhead(bh, WithExcludedPaths("/healthz")))
	var inner *httptest.ResponseRecorder
	outer := serve(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// While this request holds the only slot, a second one is turned away.
		inner = serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
		// Excluded paths bypass the bulkhead.
		if rec := serve(mw(okHandler), httptest.NewRequest("GET", "/healthz", nil)); rec.Code != 200 {
			t.Errorf("excluded path: %d", rec.Code)
		}
		w.WriteHeader(201)
	})), httptest.NewRequest("GET", "/", nil))
	if outer.Code != 201 {
		t.Errorf("outer status = %d", outer.Code)
	}
	if inner.Code != 503 || inner.Body.String() != "Service Unavailable\n" {
		t.Errorf("inner: got %d %q", inner.Code, inner.Body.String())
	}
	if bh.inUse != 0 || bh.released != 1 {
		t.Errorf("in use %d, released %d; want 0, 1", bh.inUse, bh.released)
	}
	// A request whose context is already over is not a 504 from us but 503.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil).WithContext(ctx)); rec.Code != 503 {
		t.Errorf("cancelled request: %d", rec.Code)
	}
}

func TestShedMiddleware(t *testing.T) {
	obs := &recordingObserver{}
	var priorities []int
	released := 0
	shedErr := errors.New("shed: overloaded")
	s := ShedderFunc(func(ctx context.Context, p int) (func(), error) {
		priorities = append(priorities, p)
		if p < 5 {
			return nil, shedErr
		}
		return func() { released++ }, nil
	})
	mw := must(t)(Shed(s, WithObserver(obs), WithName("front"), WithPriority(func(r *http.Request) int {
		if r.Header.Get("X-Critical") != "" {
			return 9
		}
		return 1
	})))
	rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Body.String() != "Service Unavailable\n" {
		t.Errorf("shed: got %d %q", rec.Code, rec.Body.String())
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Critical", "1")
	if rec := serve(mw(okHandler), r); rec.Code != 200 {
		t.Errorf("critical: got %d", rec.Code)
	}
	if !slices.Equal(priorities, []int{1, 9}) || released != 1 {
		t.Errorf("priorities %v released %d", priorities, released)
	}
	ev := obs.all()
	if len(ev) != 1 || ev[0].Kind != bulwark.EventRejected || ev[0].Pattern != PatternShed || ev[0].Name != "front" || !errors.Is(ev[0].Err, shedErr) {
		t.Errorf("events = %+v", ev)
	}
	// Default priority is 0.
	priorities = nil
	serve(must(t)(Shed(s))(okHandler), httptest.NewRequest("GET", "/", nil))
	if !slices.Equal(priorities, []int{0}) {
		t.Errorf("default priority: %v", priorities)
	}
}

func TestTimeoutMiddleware(t *testing.T) {
	obs := &recordingObserver{}
	mw := must(t)(Timeout(time.Millisecond, WithObserver(obs)))
	// A handler that waits for its context and then tries to answer: its
	// late answer and its headers are dropped, the client sees a clean 504.
	var writeErr error
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		<-r.Context().Done()
		w.WriteHeader(200)
		_, writeErr = io.WriteString(w, `{"late":true}`)
	})
	rec := httptest.NewRecorder()
	rec.Header().Set("RateLimit", `"default";r=1`) // set by an outer middleware
	mw(slow).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 504 || rec.Body.String() != "Gateway Timeout\n" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if !errors.Is(writeErr, http.ErrHandlerTimeout) {
		t.Errorf("late write error = %v", writeErr)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q: the late handler's header leaked", ct)
	}
	if rec.Header().Get("RateLimit") == "" {
		t.Error("an outer middleware's header was lost")
	}
	ev := obs.all()
	if len(ev) != 1 || ev[0].Kind != bulwark.EventTimeout || ev[0].Duration != time.Millisecond || ev[0].Pattern != PatternTimeout {
		t.Errorf("events = %+v", ev)
	}
}

func TestTimeoutMiddlewareInTime(t *testing.T) {
	mw := must(t)(Timeout(time.Hour))
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Deadline(); !ok {
			t.Error("handler context has no deadline")
		}
		w.Header().Set("X-A", "1")
		w.WriteHeader(202)
		_, _ = io.WriteString(w, "done")
		w.Header().Set("X-Late", "2") // after the response started
	}))
	rec := serve(h, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 202 || rec.Body.String() != "done" || rec.Header().Get("X-A") != "1" {
		t.Errorf("got %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

func TestTimeoutMiddlewareStartedResponseIsKept(t *testing.T) {
	mw := must(t)(Timeout(time.Millisecond))
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		<-r.Context().Done()
		_, _ = io.WriteString(w, "rest")
	}))
	rec := serve(h, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.String() != "rest" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestTimeoutMiddlewareClientGone(t *testing.T) {
	obs := &recordingObserver{}
	mw := must(t)(Timeout(time.Hour, WithObserver(obs)))
	ctx, cancel := context.WithCancel(context.Background())
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}))
	serve(h, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	if n := len(obs.all()); n != 0 {
		t.Errorf("a request the client ended was reported as a timeout (%d events)", n)
	}
}

// TestOverRealServer runs a chain of middleware behind a real net/http
// server and client.
func TestOverRealServer(t *testing.T) {
	l := &scriptedLimiter{decisions: []bulwark.Decision{
		{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: 500 * time.Millisecond},
		{Allowed: true, Limit: 2, Remaining: 0, ResetAfter: time.Second},
		{Limit: 2, RetryAfter: 400 * time.Millisecond, ResetAfter: time.Second},
	}}
	limit := must(t)(Limit(l, WithLegacyHeaders(true)))
	br := must(t)(Breaker(&fakeBreaker{}))
	bh := must(t)(Bulkhead(&fakeBulkhead{cap: 4}))
	to := must(t)(Timeout(time.Minute))
	srv := httptest.NewServer(limit(br(bh(to(okHandler)))))
	defer srv.Close()
	for i, want := range []struct {
		status    int
		ratelimit string
		retry     string
	}{
		{200, `"default";r=1;t=1`, ""},
		{200, `"default";r=0;t=1`, ""},
		{429, `"default";r=0;t=1`, "1"},
	} {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != want.status || resp.Header.Get("RateLimit") != want.ratelimit || resp.Header.Get("Retry-After") != want.retry {
			t.Errorf("request %d: %d RateLimit %q Retry-After %q", i, resp.StatusCode, resp.Header.Get("RateLimit"), resp.Header.Get("Retry-After"))
		}
		if resp.Header.Get("RateLimit-Limit") != "2" {
			t.Errorf("request %d: RateLimit-Limit %q", i, resp.Header.Get("RateLimit-Limit"))
		}
	}
	srv.Client().CloseIdleConnections()
}
