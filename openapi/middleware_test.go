package openapi_test

import (
	"errors"
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
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/openapi"
	"github.com/bulwark-go/bulwark/policy"
)

// served records which handler ran.
type served struct {
	mu    sync.Mutex
	paths []string
}

func (s *served) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.paths) }

func newServer(t *testing.T, a *openapi.API, h http.Handler, opts ...openapi.Option) *httptest.Server {
	t.Helper()
	mw, err := a.Middleware(opts...)
	if err != nil {
		t.Fatalf("Middleware: %v", err)
	}
	srv := httptest.NewServer(mw(h))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func statuses(t *testing.T, n int, method, url string, header ...string) []int {
	t.Helper()
	var out []int
	for range n {
		out = append(out, do(t, method, url, header...).StatusCode)
	}
	return out
}

func eq(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func okHandler(s *served) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
}

func TestMiddlewarePerOperation(t *testing.T) {
	a := load(t, "pets.yaml")
	var s served
	srv := newServer(t, a, okHandler(&s))

	// listPets: its own limit of 3 under its own policy name.
	got := statuses(t, 4, "GET", srv.URL+"/v1/pets")
	if !eq(got, []int{200, 200, 200, 429}) {
		t.Errorf("listPets statuses = %v", got)
	}
	resp := do(t, "GET", srv.URL+"/v1/pets")
	if p := resp.Header.Get("RateLimit-Policy"); p != `"listPets";q=3;w=60` {
		t.Errorf("RateLimit-Policy = %q", p)
	}
	if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit") == "" {
		t.Errorf("429 without Retry-After or RateLimit: %v", resp.Header)
	}

	// getPet: the path item's limit of 2 per tenant, path parameters matched.
	if got := statuses(t, 3, "GET", srv.URL+"/v1/pets/1", "X-Tenant", "a"); !eq(got, []int{200, 200, 429}) {
		t.Errorf("getPet tenant a = %v", got)
	}
	if got := statuses(t, 1, "GET", srv.URL+"/v1/pets/2", "X-Tenant", "b"); !eq(got, []int{200}) {
		t.Errorf("getPet tenant b = %v", got)
	}
	if p := do(t, "GET", srv.URL+"/v1/pets/3", "X-Tenant", "c").Header.Get("RateLimit-Policy"); !strings.HasPrefix(p, `"getPet";q=2`) {
		t.Errorf("getPet policy = %q", p)
	}

	// createPet: enabled: false on the inherited limit.
	for _, st := range statuses(t, 5, "POST", srv.URL+"/v1/pets") {
		if st != 200 {
			t.Errorf("createPet (limit disabled) got %d", st)
		}
	}
	if h := do(t, "POST", srv.URL+"/v1/pets").Header.Get("RateLimit-Policy"); h != "" {
		t.Errorf("createPet has a RateLimit-Policy %q", h)
	}

	// deletePet: shadow; over its limit it is still served, with the fields.
	var last *http.Response
	for range 4 {
		last = do(t, "DELETE", srv.URL+"/v1/pets/9", "X-Tenant", "a")
		if last.StatusCode != 200 {
			t.Errorf("deletePet in shadow got %d", last.StatusCode)
		}
	}
	if !strings.Contains(last.Header.Get("RateLimit"), "r=0") {
		t.Errorf("shadow RateLimit = %q", last.Header.Get("RateLimit"))
	}

	// The whole stack switched off.
	for _, st := range statuses(t, 3, "GET", srv.URL+"/v1/off") {
		if st != 200 {
			t.Errorf("off got %d", st)
		}
	}

	// Unknown routes go through untouched.
	before := s.count()
	for _, u := range []string{"/v1/nope", "/pets", "/v1/pets/1/extra", "/v1/pets/"} {
		resp := do(t, "GET", srv.URL+u)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Policy") != "" {
			t.Errorf("unknown route %s = %d %v", u, resp.StatusCode, resp.Header)
		}
	}
	if resp := do(t, "PUT", srv.URL+"/v1/pets"); resp.StatusCode != 200 || resp.Header.Get("RateLimit") != "" {
		t.Errorf("undeclared method = %d %v", resp.StatusCode, resp.Header)
	}
	if s.count()-before != 5 {
		t.Errorf("unknown routes reached the handler %d times, want 5", s.count()-before)
	}
}

func TestMiddleware504And503(t *testing.T) {
	a := load(t, "pets.yaml")
	hold := make(chan struct{})
	entered := make(chan struct{}, 1)
	var flaky atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/slow":
			<-r.Context().Done()
		case "/v1/busy":
			entered <- struct{}{}
			<-hold
		case "/v1/flaky":
			flaky.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	srv := newServer(t, a, h)
	if st := do(t, "GET", srv.URL+"/v1/slow").StatusCode; st != http.StatusGatewayTimeout {
		t.Errorf("slow = %d, want 504", st)
	}

	done := make(chan int)
	go func() {
		resp, err := http.Get(srv.URL + "/v1/busy")
		if err != nil {
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	if st := do(t, "GET", srv.URL+"/v1/busy").StatusCode; st != http.StatusServiceUnavailable {
		t.Errorf("busy with its one slot taken = %d, want 503", st)
	}
	close(hold)
	if st := <-done; st != 200 {
		t.Errorf("the request holding the slot = %d", st)
	}

	if got := statuses(t, 4, "GET", srv.URL+"/v1/flaky"); !eq(got, []int{500, 500, 503, 503}) {
		t.Errorf("flaky = %v, want the breaker open after 2 failures", got)
	}
	if flaky.Load() != 2 {
		t.Errorf("the open breaker let %d calls through, want 2", flaky.Load())
	}
}

func TestServerRetryReplaysBody(t *testing.T) {
	a := load(t, "pets.yaml")
	var mu sync.Mutex
	var bodies []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		w.Header().Set("X-Attempt", string(rune('0'+n)))
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "try again")
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "accepted "+string(b))
	})
	srv := newServer(t, a, h)
	resp, err := http.Post(srv.URL+"/v1/jobs", "text/plain", strings.NewReader("job-1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 202 || string(body) != "accepted job-1" || resp.Header.Get("X-Attempt") != "3" {
		t.Errorf("retried job = %d %q attempt %q", resp.StatusCode, body, resp.Header.Get("X-Attempt"))
	}
	if len(bodies) != 3 || bodies[0] != "job-1" || bodies[2] != "job-1" {
		t.Errorf("handler saw bodies %q", bodies)
	}
}

func TestServerRetryNeverAfterStreaming(t *testing.T) {
	a := load(t, "pets.yaml")
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
	})
	srv := newServer(t, a, h)
	resp, err := http.Post(srv.URL+"/v1/jobs", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 || calls.Load() != 1 {
		t.Errorf("streamed 503 = %d after %d calls, want one call", resp.StatusCode, calls.Load())
	}
	// A body larger than the buffer is not replayed: one call.
	calls.Store(0)
	srv2 := newServer(t, a, h, openapi.WithRetryBuffer(4))
	resp, err = http.Post(srv2.URL+"/v1/jobs", "text/plain", strings.NewReader("much too long"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if calls.Load() != 1 {
		t.Errorf("an unreplayable body ran %d times", calls.Load())
	}
}

func TestShadowReportsBreakerAndBulkhead(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      operationId: x
      x-bulwark:
        shadow: true
        circuitbreaker: {consecutive_failures: 1, minimum_calls: 100}
        timeout: 1ms
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Int32
	obs := bulwark.ObserverFunc(func(e bulwark.Event) {
		if e.Shadow && e.Kind == bulwark.EventRejected {
			rejected.Add(1)
		}
	})
	var calls atomic.Int32
	srv := newServer(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(5 * time.Millisecond) // longer than the timeout, which shadow does not apply
		w.WriteHeader(500)
	}), openapi.WithObserver(obs))
	if got := statuses(t, 3, "GET", srv.URL+"/x"); !eq(got, []int{500, 500, 500}) {
		t.Errorf("shadow statuses = %v", got)
	}
	if calls.Load() != 3 || rejected.Load() != 2 {
		t.Errorf("calls %d, shadow rejections %d; want 3 and 2", calls.Load(), rejected.Load())
	}
}

func TestStackHookUpdateApplies(t *testing.T) {
	a := load(t, "pets.yaml")
	stacks := map[string]*policy.Stack{}
	srv := newServer(t, a, okHandler(&served{}), openapi.WithStackHook(func(op openapi.Operation, s *policy.Stack) { stacks[op.ID] = s }))
	st := stacks["listPets"]
	if st == nil || len(stacks) != 10 {
		t.Fatalf("hook saw %d stacks", len(stacks))
	}
	spec := st.Load().Spec.Merge(policy.Spec{RateLimit: &policy.RateLimit{Limit: new(1)}})
	if err := st.Update(spec); err != nil {
		t.Fatal(err)
	}
	if got := statuses(t, 2, "GET", srv.URL+"/v1/pets"); !eq(got, []int{200, 429}) {
		t.Errorf("after the update to 1 = %v", got)
	}
}

func TestMiddlewareBadOptions(t *testing.T) {
	a := load(t, "pets.yaml")
	if _, err := a.Middleware(openapi.WithRetryBuffer(-1)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("WithRetryBuffer(-1) = %v", err)
	}
	if _, err := a.Transport(nil, openapi.WithRetryBuffer(-1)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("Transport WithRetryBuffer(-1) = %v", err)
	}
	mw, err := a.Middleware(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(nil) // nil next: 404 for unknown routes
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != 404 {
		t.Errorf("nil next = %d", rec.Code)
	}
}

func fleetStore(t *testing.T, prefix string) *distributed.Store {
	t.Helper()
	s, err := distributed.New(redistest.Default(t), distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestFleetLimitAcrossThreeServers(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-bulwark:
  defaults:
    ratelimit: {limit: 10, per: 1h, key: "header:X-Tenant", scope: fleet}
paths:
  /orders/{id}:
    get:
      operationId: getOrder
      responses: {"200": {description: ok}}
    put:
      operationId: putOrder
      x-bulwark:
        ratelimit: {limit: 4}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	prefix := redistest.Prefix(t, redistest.Default(t))
	var urls []string
	for range 3 {
		urls = append(urls, newServer(t, a, okHandler(&served{}), openapi.WithStore(fleetStore(t, prefix))).URL)
	}
	count := func(method string, n int) (admitted int) {
		for i := range n {
			if do(t, method, urls[i%3]+"/orders/"+string(rune('a'+i%7)), "X-Tenant", "t1").StatusCode == 200 {
				admitted++
			}
		}
		return admitted
	}
	if got := count("GET", 30); got != 10 {
		t.Errorf("three servers admitted %d GETs, want the fleet limit 10", got)
	}
	if got := count("PUT", 12); got != 4 {
		t.Errorf("three servers admitted %d PUTs, want 4 under putOrder's own policy", got)
	}
}

func TestTelstraSpecBehaves(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /items:
    get:
      operationId: listItems
      x-telstra:
        resiliency:
          ratelimit: {max_executions: 2, per_time_secs: 60}
      responses: {"200": {description: ok}}
  /fail:
    get:
      operationId: fail
      x-telstra:
        resiliency:
          circuitbreaker: {failure_threshold: 2, recovery_timeout: 60}
      responses: {"200": {description: ok}}
  /slow:
    get:
      operationId: slowItems
      x-telstra:
        resiliency:
          timeout: {seconds: 0.05}
      responses: {"200": {description: ok}}
  /flaky:
    post:
      operationId: flakyItems
      x-telstra:
        resiliency:
          retry: {attempts: 3, delay: 0.001, max_delay: 0.002}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var flaky atomic.Int32
	srv := newServer(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(500)
		case "/slow":
			<-r.Context().Done()
		case "/flaky":
			if flaky.Add(1) < 3 {
				w.WriteHeader(500) // x-telstra retries every failure: 500 included
			}
		}
	}))
	if got := statuses(t, 3, "GET", srv.URL+"/items"); !eq(got, []int{200, 200, 429}) {
		t.Errorf("x-telstra limit of 2 = %v", got)
	}
	resp := do(t, "GET", srv.URL+"/items")
	// min_retry_delay defaults to 1s: Retry-After is at least that.
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || resp.Header.Get("RateLimit-Policy") != `"listItems";q=2;w=60` {
		t.Errorf("429 headers = %v", resp.Header)
	}
	if got := statuses(t, 3, "GET", srv.URL+"/fail"); !eq(got, []int{500, 500, 503}) {
		t.Errorf("failure_threshold 2 = %v", got)
	}
	if got := statuses(t, 1, "GET", srv.URL+"/slow"); !eq(got, []int{504}) {
		t.Errorf("timeout 0.05s = %v", got)
	}
	if got := statuses(t, 1, "POST", srv.URL+"/flaky"); !eq(got, []int{200}) || flaky.Load() != 3 {
		t.Errorf("retry of 3 attempts = %v after %d calls", got, flaky.Load())
	}
}

func TestQueryKeyLegacyHeadersRejectAndShed(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /search:
    get:
      operationId: search
      x-bulwark:
        ratelimit: {limit: 1, per: 1h, key: "query:api_key", algorithm: fixed_window, scope: local}
      responses: {"200": {description: ok}}
  /work:
    get:
      operationId: work
      x-bulwark:
        shed: {max_in_flight: 2, priority: "header:X-Priority"}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/work" && r.Header.Get("X-Hold") != "" {
			entered <- struct{}{}
			<-hold
		}
	})
	reject := func(w http.ResponseWriter, _ *http.Request, rej bulwarkhttp.Rejection) {
		w.WriteHeader(rej.Status)
		_, _ = io.WriteString(w, "custom")
	}
	srv := newServer(t, a, h, openapi.WithLegacyHeaders(true), openapi.WithRejectHandler(reject))

	if got := statuses(t, 2, "GET", srv.URL+"/search?q=x&api_key=k1"); !eq(got, []int{200, 429}) {
		t.Errorf("api_key k1 = %v", got)
	}
	resp := do(t, "GET", srv.URL+"/search?api_key=k2&q=y")
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "1" {
		t.Errorf("api_key k2 = %d, legacy limit %q", resp.StatusCode, resp.Header.Get("RateLimit-Limit"))
	}
	r, err := http.Get(srv.URL + "/search?api_key=k2")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if r.StatusCode != 429 || string(body) != "custom" {
		t.Errorf("rejection through the custom handler = %d %q", r.StatusCode, body)
	}

	// One call in flight of 2: low priority work is shed, critical is not.
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", srv.URL+"/work", nil)
		req.Header.Set("X-Hold", "1")
		req.Header.Set("X-Priority", "critical")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-entered
	if st := do(t, "GET", srv.URL+"/work", "X-Priority", "low").StatusCode; st != http.StatusServiceUnavailable {
		t.Errorf("low priority with one of two slots taken = %d, want 503", st)
	}
	if st := do(t, "GET", srv.URL+"/work", "X-Priority", "3").StatusCode; st != 200 {
		t.Errorf("critical priority = %d, want 200", st)
	}
	close(hold)
	<-done
}

func TestServerRetryStreamsLargeResponse(t *testing.T) {
	a := load(t, "pets.yaml")
	var calls atomic.Int32
	big := strings.Repeat("x", 100)
	srv := newServer(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, big)
	}), openapi.WithRetryBuffer(10))
	resp, err := http.Post(srv.URL+"/v1/jobs", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != big || calls.Load() != 1 {
		t.Errorf("a response larger than the buffer = %d, %d bytes, %d calls; want it streamed once", resp.StatusCode, len(body), calls.Load())
	}
	// A handler that writes nothing answers 200 after its single attempt.
	calls.Store(0)
	srv2 := newServer(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("X-Seen", "1")
	}))
	resp, err = http.Post(srv2.URL+"/v1/jobs", "text/plain", strings.NewReader("b"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Seen") != "1" || calls.Load() != 1 {
		t.Errorf("silent handler = %d %q after %d calls", resp.StatusCode, resp.Header.Get("X-Seen"), calls.Load())
	}
}

func TestUnknownRoutesUnderDefaults(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-bulwark:
  defaults:
    ratelimit: {limit: 2, per: 1h, key: global}
    hedge: {delay: 10ms}
paths:
  /known:
    get:
      operationId: known
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := a.Defaults(); !ok || *d.RateLimit.Limit != 2 {
		t.Errorf("Defaults = %+v, %v", d, ok)
	}
	var names []string
	srv := newServer(t, a, okHandler(&served{}), openapi.WithUnknownRoutes("unlisted"),
		openapi.WithStackHook(func(op openapi.Operation, _ *policy.Stack) { names = append(names, op.Name) }))
	if got := statuses(t, 3, "POST", srv.URL+"/anything/else"); !eq(got, []int{200, 200, 429}) {
		t.Errorf("unknown routes under the defaults = %v", got)
	}
	if p := do(t, "GET", srv.URL+"/other").Header.Get("RateLimit-Policy"); p != `"unlisted";q=2;w=3600` {
		t.Errorf("unknown route policy = %q", p)
	}
	if got := statuses(t, 2, "GET", srv.URL+"/known"); !eq(got, []int{200, 200}) {
		t.Errorf("the known operation keeps its own budget: %v", got)
	}
	if len(names) != 2 || names[1] != "unlisted" {
		t.Errorf("hook saw %v", names)
	}
	// Without the option they stay untouched.
	plain := newServer(t, a, okHandler(&served{}))
	if got := statuses(t, 3, "POST", plain.URL+"/anything/else"); !eq(got, []int{200, 200, 200}) {
		t.Errorf("unknown routes without the option = %v", got)
	}
}
