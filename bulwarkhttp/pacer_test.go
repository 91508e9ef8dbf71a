package bulwarkhttp

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

func TestParseQuota(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name   string
		header http.Header
		want   []PolicyQuota
	}{
		{"ietf", http.Header{"Ratelimit-Policy": {`"default";q=100;w=60`}, "Ratelimit": {`"default";r=42;t=30`}},
			[]PolicyQuota{{Name: "default", Limit: 100, Window: time.Minute, Remaining: 42, HasRemaining: true, Reset: 30 * time.Second}}},
		{"two policies in one field", http.Header{"Ratelimit": {`"burst";r=0;t=1, "day";r=900;t=3600`}},
			[]PolicyQuota{{Name: "burst", HasRemaining: true, Reset: time.Second}, {Name: "day", Remaining: 900, HasRemaining: true, Reset: time.Hour}}},
		{"token names and escaped quotes", http.Header{"Ratelimit": {`a;r=1;t=2, "x\"y";r=3;t=4`}},
			[]PolicyQuota{{Name: "a", Remaining: 1, HasRemaining: true, Reset: 2 * time.Second}, {Name: `x"y`, Remaining: 3, HasRemaining: true, Reset: 4 * time.Second}}},
		{"draft-07 dictionary", http.Header{"Ratelimit": {`limit=10, remaining=5, reset=3`}},
			[]PolicyQuota{{Limit: 10, Remaining: 5, HasRemaining: true, Reset: 3 * time.Second}}},
		{"older trio", http.Header{"Ratelimit-Limit": {"10"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"7"}},
			[]PolicyQuota{{Limit: 10, HasRemaining: true, Reset: 7 * time.Second}}},
		{"legacy X- with Unix reset", http.Header{"X-Ratelimit-Limit": {"60"}, "X-Ratelimit-Remaining": {"59"}, "X-Ratelimit-Reset": {"1800000042"}},
			[]PolicyQuota{{Limit: 60, Remaining: 59, HasRemaining: true, Reset: 42 * time.Second}}},
		{"malformed members skipped", http.Header{"Ratelimit": {`"ok";r=1;t=1, "broken;r=2`, `;;;`}, "X-Ratelimit-Remaining": {"-3"}},
			[]PolicyQuota{{Name: "ok", Remaining: 1, HasRemaining: true, Reset: time.Second}}},
		{"nothing", http.Header{"Content-Type": {"text/plain"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseQuota(tc.header.Values, now).Policies
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3"}}}
	if q := QuotaFromResponse(resp, now); q.RetryAfter != 3*time.Second || !q.Refused || q.Empty() {
		t.Errorf("429 quota = %+v", q)
	}
	if q := QuotaFromResponse(&http.Response{StatusCode: 200, Header: http.Header{}}, now); !q.Empty() {
		t.Errorf("plain 200 quota = %+v, want empty", q)
	}
}

func newTestPacer(t *testing.T, cfg PacerConfig, clock bulwark.Clock) *Pacer {
	t.Helper()
	p, err := NewPacer(cfg, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type acquired struct {
	tk  Ticket
	err error
}

func acquireAsync(p *Pacer, key string) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() { tk, err := p.Acquire(context.Background(), key); ch <- acquired{tk, err} }()
	return ch
}

func mustAcquire(t *testing.T, p *Pacer, key string) Ticket {
	t.Helper()
	tk, err := p.Acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func quota(r int, reset time.Duration) Quota {
	return Quota{Policies: []PolicyQuota{{Name: "default", Limit: 3, Window: time.Second, Remaining: r, HasRemaining: true, Reset: reset}}}
}

func TestPacerProbesThenSpendsTheBudget(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	p := newTestPacer(t, PacerConfig{MaxWait: time.Minute}, clock)
	probe := mustAcquire(t, p, "h")
	// While the probe is out nothing is known: the next request waits for
	// its answer (a timer for MaxWait is armed).
	second := acquireAsync(p, "h")
	clock.WaitTimers(1)
	probe.Done(quota(2, time.Second)) // 2 left for 1s
	s := <-second
	if s.err != nil {
		t.Fatal(s.err)
	}
	third := mustAcquire(t, p, "h") // the second draws the first unit, this one the last
	fourth := acquireAsync(p, "h")
	clock.WaitTimers(1)
	select {
	case a := <-fourth:
		t.Fatalf("admitted with the budget spent: %+v", a)
	default:
	}
	// An older answer does not restore a budget a newer one spent.
	s.tk.Done(quota(1, time.Second))
	third.Done(quota(0, time.Second))
	clock.Advance(999 * time.Millisecond)
	select {
	case a := <-fourth:
		t.Fatalf("admitted before the reset: %+v", a)
	default:
	}
	clock.Advance(time.Millisecond) // the window resets with the policy's q=3
	if a := <-fourth; a.err != nil {
		t.Fatal(a.err)
	}
	mustAcquire(t, p, "h")
	mustAcquire(t, p, "h")
	// Other keys are independent.
	mustAcquire(t, p, "other")
}

func TestPacerHonoursRetryAfter(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	p := newTestPacer(t, PacerConfig{MaxWait: time.Minute}, clock)
	mustAcquire(t, p, "h").Done(Quota{RetryAfter: 2 * time.Second, Refused: true})
	next := acquireAsync(p, "h")
	clock.WaitTimers(1)
	clock.Advance(2*time.Second - time.Microsecond)
	select {
	case <-next:
		t.Fatal("sent before Retry-After")
	default:
	}
	clock.Advance(time.Microsecond)
	if a := <-next; a.err != nil {
		t.Fatal(a.err)
	}
}

func TestPacerRefusesLongWaitsAndFullQueues(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	p := newTestPacer(t, PacerConfig{MaxWait: 30 * time.Second, MaxQueue: 1}, clock)
	mustAcquire(t, p, "h").Done(Quota{RetryAfter: time.Minute})
	_, err := p.Acquire(context.Background(), "h")
	var rl *bulwark.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Minute {
		t.Fatalf("wait above MaxWait: %v, want a RateLimitedError for 1m", err)
	}
	mustAcquire(t, p, "q").Done(Quota{RetryAfter: 10 * time.Second})
	waiting := acquireAsync(p, "q")
	clock.WaitTimers(1)
	if _, err := p.Acquire(context.Background(), "q"); !errors.Is(err, bulwark.ErrRateLimited) {
		t.Fatalf("second waiter with MaxQueue 1: %v", err)
	}
	// A context ending before the wait would is refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := p.Acquire(ctx, "q"); !errors.Is(err, bulwark.ErrRateLimited) {
		t.Fatalf("deadline before the wait ends: %v", err)
	}
	clock.Advance(10 * time.Second)
	if a := <-waiting; a.err != nil {
		t.Fatal(a.err)
	}
	// MaxWait 0: never wait, not even for a probe's answer.
	p0 := newTestPacer(t, PacerConfig{}, clock)
	probe := mustAcquire(t, p0, "h")
	mustAcquire(t, p0, "h").Cancel()
	probe.Done(quota(0, time.Second))
	if _, err := p0.Acquire(context.Background(), "h"); !errors.Is(err, bulwark.ErrRateLimited) {
		t.Fatalf("MaxWait 0: %v", err)
	}
}

func TestPacerLeavesSilentServersAlone(t *testing.T) {
	clock := fakeclock.New(fakeclock.Epoch)
	p := newTestPacer(t, PacerConfig{MaxWait: time.Minute}, clock)
	mustAcquire(t, p, "h").Done(Quota{})
	for range 100 {
		mustAcquire(t, p, "h") // never waits: the server says nothing of quotas
	}
	// A probe that failed (no response) lets the next one go.
	probe := mustAcquire(t, p, "x")
	probe.Cancel()
	mustAcquire(t, p, "x")
}

func TestPacerConfigErrors(t *testing.T) {
	for _, cfg := range []PacerConfig{{MaxWait: -1}, {MaxQueue: -1}} {
		if _, err := NewPacer(cfg); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := NewTransport(nil, WithPacer(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil pacer: %v", err)
	}
	if _, err := NewPacer(PacerConfig{}, WithPacerStore(nil)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil store: %v", err)
	}
}

var paceRequests = flag.Int("pace.n", 30, "requests sent by TestPacedTransportAgainstLimitedServer")

// limitedServer enforces 10 requests per second (a fixed window) and
// counts its 429s.
func limitedServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	fw, err := local.NewFixedWindow(bulwark.PerSecond(10))
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	mw, err := Limit(fw, WithKeyFunc(func(*http.Request) string { return "all" }), WithPolicy("default", time.Second),
		WithRejectHandler(func(w http.ResponseWriter, r *http.Request, rej Rejection) {
			refused.Add(1)
			DefaultReject(w, r, rej)
		}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	t.Cleanup(srv.Close)
	return srv, &refused
}

// blast sends n GETs through rt from 10 goroutines as fast as they go and
// returns the time taken and how many were refused by the pacer itself.
func blast(t *testing.T, url string, rt http.RoundTripper, n int) (time.Duration, int) {
	t.Helper()
	client := &http.Client{Transport: rt}
	var next, held atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := client.Get(url)
				if errors.Is(err, bulwark.ErrRateLimited) {
					held.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), int(held.Load())
}

func TestPacedTransportAgainstLimitedServer(t *testing.T) {
	n := *paceRequests
	// Unpaced: everything goes out, and what the window cannot hold is
	// refused.
	srv, refused := limitedServer(t)
	plain, err := NewTransport(nil, WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	took, _ := blast(t, srv.URL, plain, n)
	unpaced := refused.Load()
	t.Logf("unpaced: %d requests in %v, %d refused with 429", n, took.Round(time.Millisecond), unpaced)
	windows := int64(took/time.Second) + 2 // windows the blast may have touched
	if unpaced < int64(n)-10*windows {
		t.Errorf("unpaced client got %d 429s, want at least %d", unpaced, int64(n)-10*windows)
	}

	// Paced: requests wait for the quota instead.
	srv, refused = limitedServer(t)
	pacer, err := NewPacer(PacerConfig{MaxWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	paced, err := NewTransport(nil, WithMaxRetries(0), WithPacer(pacer))
	if err != nil {
		t.Fatal(err)
	}
	took, held := blast(t, srv.URL, paced, n)
	t.Logf("paced: %d requests in %v, %d refused with 429, %d held back past MaxWait", n, took.Round(time.Millisecond), refused.Load(), held)
	if got := refused.Load(); got > 5 {
		t.Errorf("paced client got %d 429s, want a handful (at most 5)", got)
	}
	if held != 0 {
		t.Errorf("%d requests were refused by the pacer", held)
	}
	// The limit allows n requests in about n/10 seconds; whole-second
	// reset times add up to a second per window. Generous for a loaded
	// machine.
	least := time.Duration(n/10-1) * time.Second
	most := time.Duration(n/10)*2*time.Second + 5*time.Second
	if took < least || took > most {
		t.Errorf("paced run took %v, want between %v and %v", took, least, most)
	}
}
