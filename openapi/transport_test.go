package openapi_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/openapi"
)

const clientSpec = `openapi: 3.0.3
info: {title: dep, version: "1"}
servers: [{url: "http://dependency/api"}]
paths:
  /users/{id}:
    get:
      operationId: getUser
      x-bulwark:
        retry: {attempts: 3, delay: 1ms, max_delay: 2ms, jitter: none}
        timeout: 50ms
      responses: {"200": {description: ok}}
    post:
      operationId: updateUser
      x-bulwark:
        retry: {enabled: false}
      responses: {"200": {description: ok}}
  /orders:
    post:
      operationId: createOrder
      x-bulwark:
        retry: {attempts: 2, delay: 1ms, statuses: [500]}
      responses: {"200": {description: ok}}
  /limited:
    get:
      operationId: limited
      x-bulwark:
        ratelimit: {limit: 1, per: 1h, scope: local}
      responses: {"200": {description: ok}}
  /guarded:
    get:
      operationId: guarded
      x-bulwark:
        circuitbreaker: {consecutive_failures: 1, minimum_calls: 100, open_for: 1m}
        retry: {enabled: false}
      responses: {"200": {description: ok}}
`

func client(t *testing.T) (*http.Client, *httptest.Server, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	a, err := openapi.Parse([]byte(clientSpec))
	if err != nil {
		t.Fatal(err)
	}
	var hits, failFirst atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, "/slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		case r.URL.Path == "/api/guarded":
			w.WriteHeader(500)
		case n <= failFirst.Load():
			if r.URL.Path == "/api/orders" {
				w.WriteHeader(500)
			} else {
				w.WriteHeader(503)
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	rt, err := a.Transport(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: rt}, srv, &hits, &failFirst
}

func get(t *testing.T, c *http.Client, method, url string) (int, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("body"))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func TestTransportRetryPerOperation(t *testing.T) {
	c, srv, hits, failFirst := client(t)
	failFirst.Store(2)
	if st, err := get(t, c, "GET", srv.URL+"/api/users/1"); err != nil || st != 200 || hits.Load() != 3 {
		t.Errorf("getUser = %d, %v after %d hits; want 200 after 3", st, err, hits.Load())
	}
	hits.Store(0)
	failFirst.Store(5)
	if st, _ := get(t, c, "POST", srv.URL+"/api/users/1"); st != 503 || hits.Load() != 1 {
		t.Errorf("updateUser (retry off) = %d after %d hits; want 503 after 1", st, hits.Load())
	}
	hits.Store(0)
	failFirst.Store(1)
	if st, _ := get(t, c, "POST", srv.URL+"/api/orders"); st != 200 || hits.Load() != 2 {
		t.Errorf("createOrder (POST with a declared retry on 500) = %d after %d hits; want 200 after 2", st, hits.Load())
	}
	// A path outside the document goes through untouched: no retry of a POST.
	hits.Store(0)
	failFirst.Store(5)
	if st, _ := get(t, c, "POST", srv.URL+"/api/other"); st != 503 || hits.Load() != 1 {
		t.Errorf("unknown route = %d after %d hits", st, hits.Load())
	}
}

func TestTransportTimeoutPerAttempt(t *testing.T) {
	c, srv, hits, _ := client(t)
	_, err := get(t, c, "GET", srv.URL+"/api/users/slow")
	if !errors.Is(err, bulwark.ErrTimeout) {
		t.Errorf("slow getUser = %v, want ErrTimeout", err)
	}
	if hits.Load() != 3 {
		t.Errorf("slow getUser tried %d times, want 3 (each attempt has its own budget)", hits.Load())
	}
}

func TestTransportLimitAndBreaker(t *testing.T) {
	c, srv, _, _ := client(t)
	if st, err := get(t, c, "GET", srv.URL+"/api/limited"); err != nil || st != 200 {
		t.Fatalf("first limited call = %d, %v", st, err)
	}
	if _, err := get(t, c, "GET", srv.URL+"/api/limited"); !errors.Is(err, bulwark.ErrRateLimited) {
		t.Errorf("second limited call = %v, want ErrRateLimited", err)
	}
	if st, _ := get(t, c, "GET", srv.URL+"/api/guarded"); st != 500 {
		t.Errorf("first guarded call = %d", st)
	}
	if _, err := get(t, c, "GET", srv.URL+"/api/guarded"); !errors.Is(err, bulwark.ErrOpen) {
		t.Errorf("guarded call after a failure = %v, want ErrOpen", err)
	}
}

func TestTransportHedge(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: dep, version: "1"}
paths:
  /report:
    get:
      operationId: report
      x-bulwark:
        hedge: {delay: 20ms, max: 1}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select { // the first copy is stuck
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		_, _ = io.WriteString(w, "fast")
	}))
	defer srv.Close()
	rt, err := a.Transport(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Get(srv.URL + "/report")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "fast" || hits.Load() != 2 {
		t.Errorf("hedged GET = %q after %d hits, want the second copy's answer", body, hits.Load())
	}
}
