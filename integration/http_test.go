package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/bulwarktest"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Three HTTP replicas behind the Limit, Bulkhead and Breaker middleware,
// sharing one redis-server, called through bulwarkhttp.NewTransport.
const (
	httpReplicas   = 3
	httpWorkers    = 4 // client goroutines per replica
	httpTimeout    = 150 * time.Millisecond
	httpWork       = 5 * time.Millisecond
	degradedHeader = "Bulwark-Degraded"
)

var (
	// httpLimit is shared by every client of the fleet (one key).
	httpLimit    = bulwark.Limit{Events: 60, Period: time.Second}
	httpBulkhead = bulwark.BulkheadConfig{MaxConcurrent: 6, MaxWait: 50 * time.Millisecond, LeaseTTL: 3 * time.Second}
	httpBreaker  = bulwark.BreakerConfig{Window: 5 * time.Second, MinimumCalls: 20, FailureRate: 0.5, OpenFor: time.Second, HalfOpenCalls: 1}
)

// httpAttempt is one attempt the client's transport sent, as the wire saw
// it: every retry of a request is an attempt of its own.
type httpAttempt struct {
	request    string // the X-Request-Id shared by a request's attempts
	replica    int
	start, end time.Time
	status     int
	header     http.Header
	body       string
	err        error
}

func (a httpAttempt) latency() time.Duration { return a.end.Sub(a.start) }

// recordingTransport sits under the bulwarkhttp transport and records each
// attempt, reading its body so that the latency covers the whole response.
type recordingTransport struct {
	base http.RoundTripper

	mu       sync.Mutex
	attempts []httpAttempt
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := httpAttempt{request: req.Header.Get("X-Request-Id"), start: time.Now()}
	a.replica, _ = strconv.Atoi(req.Header.Get("X-Replica"))
	resp, err := rt.base.RoundTrip(req)
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if rerr != nil {
			resp, err = nil, rerr
		} else {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			a.status, a.header, a.body = resp.StatusCode, resp.Header.Clone(), string(body)
		}
	}
	a.end, a.err = time.Now(), err
	rt.mu.Lock()
	rt.attempts = append(rt.attempts, a)
	rt.mu.Unlock()
	return resp, err
}

func (rt *recordingTransport) all() []httpAttempt {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]httpAttempt(nil), rt.attempts...)
}

// httpService builds one replica's service: the fleet-wide sliding window
// (keyed by client, RateLimit fields, degraded header), the fleet-wide
// bulkhead and the fleet-wide breaker, in the recommended order.
func httpService(t *testing.T, r *replica) (*httptest.Server, *distributed.Breaker) {
	t.Helper()
	lim, err := r.store.SlidingWindow("http", httpLimit)
	if err != nil {
		t.Fatal(err)
	}
	limit, err := bulwarkhttp.Limit(lim, bulwarkhttp.KeyByHeader("X-Client"),
		bulwarkhttp.WithPolicy("api", httpLimit.Period), bulwarkhttp.WithDegradedHeader(degradedHeader))
	if err != nil {
		t.Fatal(err)
	}
	bh, err := r.store.Bulkhead("http", httpBulkhead)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := bulwarkhttp.Bulkhead(bh)
	if err != nil {
		t.Fatal(err)
	}
	br, err := r.store.Breaker("http", httpBreaker)
	if err != nil {
		t.Fatal(err)
	}
	brk, err := bulwarkhttp.Breaker(br)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(httpWork)
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := httptest.NewServer(limit(blk(brk(app))))
	t.Cleanup(srv.Close)
	return srv, br
}

// TestHTTPAcrossRedisFreeze runs clients against three HTTP replicas while
// Redis is healthy, frozen with SIGSTOP, and resumed.
func TestHTTPAcrossRedisFreeze(t *testing.T) {
	t.Parallel()
	eachBackend(t, testHTTPAcrossRedisFreeze)
}

func testHTTPAcrossRedisFreeze(t *testing.T, b bulwarktest.Backend) {
	rs := bulwarktest.StartRedis(t, bulwarktest.WithBackend(b))
	admin := rs.Client(t)
	prefix := testPrefix(t, admin)
	fleet := startFleet(t, rs.Addr(), prefix, fleetConfig{
		replicas: httpReplicas, timeout: httpTimeout,
		opts: []distributed.Option{
			distributed.WithProbeInterval(50 * time.Millisecond),
			distributed.WithMinDegraded(300 * time.Millisecond),
		},
	})
	urls := make([]string, len(fleet))
	breakers := make([]*distributed.Breaker, len(fleet))
	for i, r := range fleet {
		srv, br := httpService(t, r)
		urls[i], breakers[i] = srv.URL, br
	}

	base := &http.Transport{MaxIdleConnsPerHost: 2 * httpWorkers}
	t.Cleanup(base.CloseIdleConnections)
	wire := &recordingTransport{base: base}
	var retries atomic.Int64
	tr, err := bulwarkhttp.NewTransport(wire, bulwarkhttp.WithMaxRetries(2), bulwarkhttp.WithMaxRetryAfter(2*time.Second),
		bulwarkhttp.WithObserver(bulwark.ObserverFunc(func(e bulwark.Event) {
			if e.Kind == bulwark.EventRetry {
				retries.Add(1)
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}

	var final sync.Map // final status -> *atomic.Int64
	var clientErrs atomic.Int64
	var firstErr atomic.Value
	var seq atomic.Int64
	load := startLoad(httpReplicas, httpWorkers, time.Millisecond, func(ctx context.Context, r, _ int) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[r]+"/work", nil)
		if err != nil {
			clientErrs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		req.Header.Set("X-Client", "tenant-1")
		req.Header.Set("X-Replica", strconv.Itoa(r))
		req.Header.Set("X-Request-Id", strconv.FormatInt(seq.Add(1), 10))
		resp, err := client.Do(req)
		if err != nil {
			clientErrs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		n, _ := final.LoadOrStore(resp.StatusCode, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	})
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			load.finish()
		}
	}
	defer stop()

	time.Sleep(time.Second)
	pausedAt := time.Now()
	rs.Pause()
	time.Sleep(1500 * time.Millisecond)
	rs.Resume()
	resumedAt := time.Now()
	took, ok := waitFor(5*time.Second, func() bool {
		for i, r := range fleet {
			if !r.store.Healthy() || breakers[i].Degraded() {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("replicas not back on Redis %v after it resumed", took)
	}
	healthyAt := time.Now()
	t.Logf("every replica back on Redis within %v of the resume", took.Round(time.Millisecond))
	time.Sleep(time.Second)
	stop()

	attempts := wire.all()
	finals := map[int]int64{}
	final.Range(func(k, v any) bool { finals[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d attempts on the wire, %d retries by the transport; final statuses %v", len(attempts), retries.Load(), finals)
	if n := clientErrs.Load(); n > 0 {
		t.Errorf("%d requests failed in the client; first: %v", n, firstErr.Load())
	}

	// Every response is a success or a documented rejection: 429 with
	// Retry-After and the RateLimit fields, or 503 from the bulkhead or
	// the breaker, with the fixed body.
	statuses := map[int]int{}
	for _, a := range attempts {
		if a.err != nil {
			t.Errorf("attempt of request %s to replica %d failed: %v", a.request, a.replica, a.err)
			continue
		}
		statuses[a.status]++
		switch a.status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			checkRateLimited(t, a)
		case http.StatusServiceUnavailable:
			if want := http.StatusText(http.StatusServiceUnavailable) + "\n"; a.body != want {
				t.Errorf("503 body %q, want the fixed %q", a.body, want)
			}
		default:
			if statuses[a.status] == 1 {
				t.Errorf("replica %d answered %d (%q): not a documented status", a.replica, a.status, a.body)
			}
		}
	}
	t.Logf("statuses on the wire: %v", statuses)
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("no 429 at all: the load did not reach the fleet-wide limit")
	}

	// The degraded header: absent while Redis answers, present while it is
	// frozen, gone once every replica is back on Redis.
	var before, during, after, degBefore, degAfter int
	degDuring := make([]int, httpReplicas)
	var frozen []time.Duration
	for _, a := range attempts {
		if a.err != nil {
			continue
		}
		deg := a.header.Get(degradedHeader) != ""
		switch {
		case a.end.Before(pausedAt):
			before++
			if deg {
				degBefore++
			}
		case !a.start.Before(pausedAt) && a.start.Before(resumedAt):
			during++
			frozen = append(frozen, a.latency())
			if deg {
				degDuring[a.replica]++
			}
		case a.start.After(healthyAt):
			after++
			if deg {
				degAfter++
			}
		}
	}
	t.Logf("degraded header: %d of %d before the freeze, %v (per replica) of %d during, %d of %d after recovery",
		degBefore, before, degDuring, during, degAfter, after)
	if degBefore > 0 {
		t.Errorf("%d responses before the freeze carry %s", degBefore, degradedHeader)
	}
	for i, n := range degDuring {
		if n == 0 {
			t.Errorf("replica %d: no response during the freeze carries %s", i, degradedHeader)
		}
	}
	if after == 0 {
		t.Errorf("no attempt started after recovery")
	}
	if degAfter > 0 {
		t.Errorf("%d responses after recovery still carry %s", degAfter, degradedHeader)
	}

	// Latency during the freeze: each Redis round trip a request makes
	// (limiter, bulkhead acquire, breaker refresh, bulkhead release) waits
	// at most the store's timeout, and only until the store turns degraded;
	// the bulkhead may add its MaxWait. The bound is that plus a wide margin
	// for a loaded machine.
	bound := 4*httpTimeout + httpBulkhead.MaxWait + 750*time.Millisecond
	p99, worst := percentile(frozen, 99), percentile(frozen, 100)
	t.Logf("latency of %d attempts during the freeze: p50 %v, p99 %v, max %v (bound %v; store timeout %v)",
		len(frozen), percentile(frozen, 50).Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), bound, httpTimeout)
	if len(frozen) == 0 {
		t.Errorf("no attempt started during the freeze")
	}
	if worst > bound {
		t.Errorf("an attempt during the freeze took %v, above %v", worst, bound)
	}

	// The transport honours Retry-After: the attempt after a 429 starts no
	// sooner than the wait the 429 asked for.
	checkRetryAfterHonoured(t, attempts)
	redistest.CheckTTLs(t, admin, prefix, maxTTL)
}

// checkRateLimited checks the fields of a 429.
func checkRateLimited(t *testing.T, a httpAttempt) {
	t.Helper()
	ra := a.header.Get("Retry-After")
	if s, err := strconv.Atoi(ra); err != nil || s < 1 {
		t.Errorf("429 from replica %d: Retry-After %q, want whole seconds >= 1", a.replica, ra)
	}
	if p := a.header.Get("RateLimit-Policy"); !strings.HasPrefix(p, `"api";q=`) || !strings.Contains(p, ";w=1") {
		t.Errorf("429 from replica %d: RateLimit-Policy %q, want the api policy with q= and w=1", a.replica, p)
	}
	if rl := a.header.Get("RateLimit"); !strings.HasPrefix(rl, `"api";r=`) || !strings.Contains(rl, ";t=") {
		t.Errorf("429 from replica %d: RateLimit %q, want the api policy with r= and t=", a.replica, rl)
	}
}

// checkRetryAfterHonoured checks, for every request retried after a 429,
// that its next attempt started at least Retry-After after the 429 ended.
func checkRetryAfterHonoured(t *testing.T, attempts []httpAttempt) {
	t.Helper()
	byRequest := map[string][]httpAttempt{}
	for _, a := range attempts {
		byRequest[a.request] = append(byRequest[a.request], a)
	}
	pairs := 0
	var shortest time.Duration = -1
	for id, as := range byRequest {
		for k := 0; k+1 < len(as); k++ {
			if as[k].status != http.StatusTooManyRequests {
				continue
			}
			s, err := strconv.Atoi(as[k].header.Get("Retry-After"))
			if err != nil {
				continue // reported by checkRateLimited
			}
			pairs++
			gap := as[k+1].start.Sub(as[k].end)
			if shortest < 0 || gap < shortest {
				shortest = gap
			}
			if want := time.Duration(s) * time.Second; gap < want {
				t.Errorf("request %s: retried %v after a 429 with Retry-After %d", id, gap, s)
			}
		}
	}
	t.Logf("%s retried after a 429; shortest wait %v", plural(pairs, "request attempt"), shortest.Round(time.Millisecond))
	if pairs == 0 {
		t.Errorf("no request was retried after a 429: Retry-After was never exercised")
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
