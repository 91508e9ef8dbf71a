package bulwarkhttp

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// nopWriter is a reusable ResponseWriter that keeps nothing, so a benchmark
// measures the handler chain and not the recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

var nopHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func benchRequest() *http.Request {
	r := httptest.NewRequest("GET", "/api/items", nil)
	r.RemoteAddr = "203.0.113.9:52100"
	return r
}

var allowedDecision = bulwark.Decision{Allowed: true, Limit: 1000, Remaining: 998, ResetAfter: 2 * time.Millisecond}

// TestLimitAllowedPathAllocations pins the middleware's own cost on the
// allowed path: two allocations (the header values' string and slice).
func TestLimitAllowedPathAllocations(t *testing.T) {
	r := benchRequest()
	w := &nopWriter{h: make(http.Header)}
	bare := testing.AllocsPerRun(200, func() {
		clear(w.h)
		nopHandler.ServeHTTP(w, r)
	})
	for _, tc := range []struct {
		name string
		opts []Option
		max  float64
	}{
		{"default", nil, 2},
		{"legacy headers", []Option{WithLegacyHeaders(true)}, 2},
		{"trusted proxy key", []Option{KeyByIP(mustPrefix("10.0.0.0/8"))}, 2},
		{"headers off", []Option{WithHeaders(false)}, 0},
	} {
		h := must(t)(Limit(&staticLimiter{d: allowedDecision}, tc.opts...))(nopHandler)
		got := testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, r)
		})
		if got-bare > tc.max {
			t.Errorf("%s: %v allocs beyond the bare handler's %v, want at most %v", tc.name, got-bare, bare, tc.max)
		}
	}
}

// BenchmarkLimitOverhead compares a handler with and without the Limit
// middleware on a limiter that does no work; the difference is the
// middleware's own cost per request.
func BenchmarkLimitOverhead(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		r := benchRequest()
		w := &nopWriter{h: make(http.Header)}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, nopHandler) })
	b.Run("limit", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: allowedDecision}))(nopHandler))
	})
	b.Run("limit-legacy", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: allowedDecision}, WithLegacyHeaders(true)))(nopHandler))
	})
	b.Run("limit-shadow-denied", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: bulwark.Decision{Limit: 1000, RetryAfter: time.Millisecond}}, WithShadow(true)))(nopHandler))
	})
	b.Run("limit-denied", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: bulwark.Decision{Limit: 1000, RetryAfter: time.Millisecond}}))(nopHandler))
	})
}

// BenchmarkLimitRecorder is BenchmarkLimitOverhead with a fresh
// httptest.ResponseRecorder per request, closer to what net/http pays.
func BenchmarkLimitRecorder(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		r := benchRequest()
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, nopHandler) })
	b.Run("limit", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: allowedDecision}))(nopHandler))
	})
}

// BenchmarkLimitFreshHeader gives every request a new, empty header map, as
// net/http's server does, so the cost of growing that map by the
// RateLimit fields is counted; the recorder variant above also counts the
// recorder copying the headers at WriteHeader.
func BenchmarkLimitFreshHeader(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		r := benchRequest()
		w := &nopWriter{}
		b.ReportAllocs()
		for b.Loop() {
			w.h = make(http.Header)
			h.ServeHTTP(w, r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, nopHandler) })
	b.Run("limit", func(b *testing.B) {
		run(b, must(b)(Limit(&staticLimiter{d: allowedDecision}))(nopHandler))
	})
}

func BenchmarkGuards(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		r := benchRequest()
		w := &nopWriter{h: make(http.Header)}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	}
	b.Run("breaker", func(b *testing.B) { run(b, must(b)(Breaker(nopBreaker{}))(nopHandler)) })
	b.Run("bulkhead", func(b *testing.B) { run(b, must(b)(Bulkhead(nopBulkhead{}))(nopHandler)) })
	b.Run("timeout", func(b *testing.B) { run(b, must(b)(Timeout(time.Minute))(nopHandler)) })
}

type nopBreaker struct{}

func nopDone(bool) {}

func (nopBreaker) Allow(ctxT) (func(bool), error) { return nopDone, nil }
func (nopBreaker) State(ctxT) bulwark.State       { return bulwark.Closed }

type nopBulkhead struct{}

func nopRelease() {}

func (nopBulkhead) Acquire(ctxT) (func(), error) { return nopRelease, nil }
