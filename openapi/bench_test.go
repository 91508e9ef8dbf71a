package openapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/openapi"
)

// nopWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the middleware rather than a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchServe(b *testing.B, h http.Handler, path string) {
	req := httptest.NewRequest("GET", path, nil)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

var nop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// BenchmarkRoute200 is the routing step alone on a 200-operation document.
func BenchmarkRoute200(b *testing.B) {
	a, err := openapi.Parse(spec200())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Match("DELETE", "/r49/items/123/parts/abc"); !ok {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMiddleware200 is routing plus an allowed decision per request.
func BenchmarkMiddleware200(b *testing.B) {
	a, err := openapi.Parse(spec200())
	if err != nil {
		b.Fatal(err)
	}
	mw, err := a.Middleware()
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, mw(nop), "/r49/items/123/parts/abc")
}

// BenchmarkLimitAlone is bulwarkhttp.Limit with the same limiter settings
// and no routing: the baseline of BenchmarkMiddleware200.
func BenchmarkLimitAlone(b *testing.B) {
	l, err := local.NewTokenBucket(bulwark.PerSecond(1_000_000_000))
	if err != nil {
		b.Fatal(err)
	}
	mw, err := bulwarkhttp.Limit(l, bulwarkhttp.WithKeyFunc(func(*http.Request) string { return "" }),
		bulwarkhttp.WithPolicy("get49", 0))
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, mw(nop), "/r49/items/123/parts/abc")
}
