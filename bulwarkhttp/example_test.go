package bulwarkhttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
)

// quota admits the first n requests of each key; a stand-in for a limiter
// from package local or distributed.
type quota struct {
	n    int
	seen map[string]int
}

func (q *quota) Allow(_ context.Context, key string, n int) (bulwark.Decision, error) {
	used := q.seen[key]
	if used+n > q.n {
		return bulwark.Decision{Limit: q.n, RetryAfter: 1500 * time.Millisecond, ResetAfter: time.Minute}, nil
	}
	q.seen[key] = used + n
	return bulwark.Decision{Allowed: true, Limit: q.n, Remaining: q.n - used - n, ResetAfter: time.Minute}, nil
}

func ExampleLimit() {
	limit, err := bulwarkhttp.Limit(&quota{n: 2, seen: map[string]int{}},
		bulwarkhttp.WithPolicy("default", time.Minute))
	if err != nil {
		panic(err)
	}
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		fmt.Printf("%d %s | %s | Retry-After: %q\n", rec.Code,
			rec.Header().Get("RateLimit-Policy"), rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"))
	}
	// Output:
	// 200 "default";q=2;w=60 | "default";r=1;t=60 | Retry-After: ""
	// 200 "default";q=2;w=60 | "default";r=0;t=60 | Retry-After: ""
	// 429 "default";q=2;w=60 | "default";r=0;t=2 | Retry-After: "2"
}

func ExampleNewTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	tr, err := bulwarkhttp.NewTransport(srv.Client().Transport,
		bulwarkhttp.WithMaxRetries(2),
		bulwarkhttp.WithMaxRetryAfter(10*time.Second))
	if err != nil {
		panic(err)
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output: 200
}
