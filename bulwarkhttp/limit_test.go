package bulwarkhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{1200 * time.Millisecond, 2},
		{59*time.Second + time.Microsecond, 60},
		{time.Hour, 3600},
	} {
		if got := RetryAfterSeconds(tc.in); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestLimitHeadersAndStatus(t *testing.T) {
	allowed := bulwark.Decision{Allowed: true, Limit: 100, Remaining: 42, ResetAfter: 17300 * time.Millisecond}
	denied := bulwark.Decision{Limit: 100, Remaining: 0, RetryAfter: 1200 * time.Millisecond, ResetAfter: time.Minute}
	for _, tc := range []struct {
		name     string
		d        bulwark.Decision
		opts     []Option
		status   int
		want     map[string]string // header -> value; "" means absent
		wantBody string
	}{
		{
			name:   "allowed",
			d:      allowed,
			status: 200,
			want: map[string]string{
				"RateLimit-Policy": `"default";q=100`,
				"RateLimit":        `"default";r=42;t=18`,
				"Retry-After":      "",
				"RateLimit-Limit":  "",
			},
			wantBody: "ok",
		},
		{
			name:   "denied rounds retry-after up",
			d:      denied,
			status: 429,
			want: map[string]string{
				"RateLimit-Policy": `"default";q=100`,
				"RateLimit":        `"default";r=0;t=2`,
				"Retry-After":      "2",
			},
			wantBody: "Too Many Requests\n",
		},
		{
			name:   "denied with zero wait still says one second",
			d:      bulwark.Decision{Limit: 5},
			status: 429,
			want:   map[string]string{"Retry-After": "1", "RateLimit": `"default";r=0;t=1`},
		},
		{
			name:   "legacy trio and named policy with window",
			d:      denied,
			opts:   []Option{WithLegacyHeaders(true), WithPolicy(`per "min"`, 59500*time.Millisecond)},
			status: 429,
			want: map[string]string{
				"RateLimit-Policy":    `"per \"min\"";q=100;w=60`,
				"RateLimit":           `"per \"min\"";r=0;t=2`,
				"RateLimit-Limit":     "100",
				"RateLimit-Remaining": "0",
				"RateLimit-Reset":     "2",
				"Retry-After":         "2",
			},
		},
		{
			name:   "legacy on allowed",
			d:      allowed,
			opts:   []Option{WithLegacyHeaders(true)},
			status: 200,
			want:   map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "42", "RateLimit-Reset": "18"},
		},
		{
			name:   "headers off keeps retry-after",
			d:      denied,
			opts:   []Option{WithHeaders(false)},
			status: 429,
			want:   map[string]string{"RateLimit": "", "RateLimit-Policy": "", "Retry-After": "2"},
		},
		{
			name:   "headers off on allowed sets nothing",
			d:      allowed,
			opts:   []Option{WithHeaders(false)},
			status: 200,
			want:   map[string]string{"RateLimit": "", "RateLimit-Policy": "", "Retry-After": ""},
		},
		{
			name:   "retry-after func",
			d:      denied,
			opts:   []Option{WithRetryAfterFunc(func(d bulwark.Decision) time.Duration { return d.RetryAfter * 10 })},
			status: 429,
			want:   map[string]string{"Retry-After": "12", "RateLimit": `"default";r=0;t=12`},
		},
		{
			name:   "backpressure longer than limiter wins",
			d:      denied,
			opts:   []Option{WithBackpressure(backpressure(30*time.Second + time.Millisecond))},
			status: 429,
			want:   map[string]string{"Retry-After": "31"},
		},
		{
			name:   "backpressure shorter than limiter loses",
			d:      denied,
			opts:   []Option{WithBackpressure(backpressure(time.Millisecond))},
			status: 429,
			want:   map[string]string{"Retry-After": "2"},
		},
		{
			name:   "negative remaining is clamped",
			d:      bulwark.Decision{Allowed: true, Limit: 3, Remaining: -1},
			status: 200,
			want:   map[string]string{"RateLimit": `"default";r=0;t=0`},
		},
		{
			name:   "degraded header",
			d:      bulwark.Decision{Allowed: true, Limit: 3, Remaining: 2, Degraded: true},
			opts:   []Option{WithDegradedHeader("x-bulwark-degraded")},
			status: 200,
			want:   map[string]string{"X-Bulwark-Degraded": "1"},
		},
		{
			name:   "degraded header only when degraded",
			d:      allowed,
			opts:   []Option{WithDegradedHeader("X-Bulwark-Degraded")},
			status: 200,
			want:   map[string]string{"X-Bulwark-Degraded": ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &scriptedLimiter{decisions: []bulwark.Decision{tc.d}}
			mw := must(t)(Limit(l, tc.opts...))
			rec := serve(mw(okHandler), httptest.NewRequest("GET", "/x", nil))
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d", rec.Code, tc.status)
			}
			for k, v := range tc.want {
				got := rec.Header().Values(k)
				switch {
				case v == "" && len(got) != 0:
					t.Errorf("%s = %q, want absent", k, got)
				case v != "" && (len(got) != 1 || got[0] != v):
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.wantBody != "" && rec.Body.String() != tc.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tc.wantBody)
			}
		})
	}
}

func TestLimitShadowLetsDeniedThrough(t *testing.T) {
	obs := &recordingObserver{}
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Limit: 10, RetryAfter: time.Second, ResetAfter: 5 * time.Second, Degraded: true}}}
	mw := must(t)(Limit(l, WithShadow(true), WithObserver(obs), WithName("api")))
	rec := serve(mw(okHandler), httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("got %d %q, want 200 ok", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("RateLimit"); got != `"default";r=0;t=5` {
		t.Errorf("RateLimit = %q", got)
	}
	if got := rec.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After = %q on a response let through, want none", got)
	}
	ev := obs.all()
	if len(ev) != 1 {
		t.Fatalf("got %d events, want 1", len(ev))
	}
	e := ev[0]
	if e.Kind != bulwark.EventDecision || !e.Shadow || e.Allowed || !e.Degraded || e.Limit != 10 || e.Pattern != PatternLimit || e.Name != "api" || e.Time.IsZero() {
		t.Errorf("event = %+v", e)
	}
}

func TestLimitWithoutShadowEmitsNothing(t *testing.T) {
	obs := &recordingObserver{}
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Limit: 10}}}
	mw := must(t)(Limit(l, WithObserver(obs)))
	if rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil)); rec.Code != 429 {
		t.Fatalf("status = %d, want 429", rec.Code)
	}
	if n := len(obs.all()); n != 0 {
		t.Errorf("got %d events; enforced decisions are reported by the limiter itself", n)
	}
}

func TestLimitExcludedPaths(t *testing.T) {
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Limit: 1}}}
	mw := must(t)(Limit(l, WithExcludedPaths("/healthz", "/debug/")))
	h := mw(okHandler)
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/healthz", 200},
		{"/debug/pprof/heap", 200},
		{"/debug/", 200},
		{"/healthz/more", 429},
		{"/debug", 429},
		{"/api", 429},
	} {
		rec := serve(h, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s: status = %d, want %d", tc.path, rec.Code, tc.status)
		}
		if tc.status == 200 && rec.Header().Get("RateLimit") != "" {
			t.Errorf("%s: excluded path got RateLimit headers", tc.path)
		}
	}
	if got := l.calls(); got != 3 {
		t.Errorf("limiter asked %d times, want 3", got)
	}
}

func TestLimitCustomRejectHandler(t *testing.T) {
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Limit: 4, RetryAfter: 2500 * time.Millisecond}}}
	var got Rejection
	mw := must(t)(Limit(l, WithRejectHandler(func(w http.ResponseWriter, r *http.Request, rej Rejection) {
		got = rej
		if w.Header().Get("Retry-After") != "3" {
			t.Errorf("Retry-After not set before the reject handler: %q", w.Header().Get("Retry-After"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rej.Status)
		_, _ = io.WriteString(w, `{"error":"slow down"}`)
	})))
	rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 429 || rec.Body.String() != `{"error":"slow down"}` {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if !errors.Is(got.Err, bulwark.ErrRateLimited) || got.RetryAfter != 2500*time.Millisecond || got.Decision.Limit != 4 {
		t.Errorf("rejection = %+v", got)
	}
}

func TestLimitErrorsNeverLeakText(t *testing.T) {
	secret := "redis at 10.1.2.3:6379 said NOAUTH"
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"bad argument", errors.Join(bulwark.ErrInvalidArgument, errors.New(secret)), 500},
		{"canceled", errors.Join(context.Canceled, errors.New(secret)), 503},
		{"deadline", errors.Join(context.DeadlineExceeded, errors.New(secret)), 504},
		{"unknown", errors.New(secret), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &scriptedLimiter{err: tc.err}
			mw := must(t)(Limit(l))
			rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if strings.Contains(rec.Body.String(), "redis") || rec.Body.String() != http.StatusText(tc.status)+"\n" {
				t.Errorf("body = %q", rec.Body.String())
			}
		})
	}
}

func TestLimitCost(t *testing.T) {
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Allowed: true, Limit: 10, Remaining: 5}}}
	mw := must(t)(Limit(l, WithCost(func(r *http.Request) int {
		if r.Method == http.MethodPost {
			return 5
		}
		return 1
	})))
	serve(mw(okHandler), httptest.NewRequest("POST", "/", nil))
	serve(mw(okHandler), httptest.NewRequest("GET", "/", nil))
	if len(l.ns) != 2 || l.ns[0] != 5 || l.ns[1] != 1 {
		t.Errorf("costs = %v, want [5 1]", l.ns)
	}
}

func TestConfigErrors(t *testing.T) {
	l := &staticLimiter{}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"nil limiter", second(Limit(nil))},
		{"nil key func", second(Limit(l, WithKeyFunc(nil)))},
		{"nil cost", second(Limit(l, WithCost(nil)))},
		{"nil reject", second(Limit(l, WithRejectHandler(nil)))},
		{"nil retry-after func", second(Limit(l, WithRetryAfterFunc(nil)))},
		{"nil backpressure", second(Limit(l, WithBackpressure(nil)))},
		{"empty policy", second(Limit(l, WithPolicy("", 0)))},
		{"control char policy", second(Limit(l, WithPolicy("a\nb", 0)))},
		{"negative window", second(Limit(l, WithPolicy("p", -time.Second)))},
		{"bad degraded header", second(Limit(l, WithDegradedHeader("X Bad")))},
		{"bad key header", second(Limit(l, KeyByHeader("")))},
		{"relative excluded path", second(Limit(l, WithExcludedPaths("healthz")))},
		{"invalid trusted prefix", second(Limit(l, KeyByIP(netipZeroPrefix())))},
		{"nil breaker", second(Breaker(nil))},
		{"nil failure status", second(Breaker(&fakeBreaker{}, WithFailureStatus(nil)))},
		{"nil bulkhead", second(Bulkhead(nil))},
		{"nil shedder", second(Shed(nil))},
		{"nil priority", second(Shed(ShedderFunc(nil), WithPriority(nil)))},
		{"zero timeout", second(Timeout(0))},
		{"negative timeout", second(Timeout(-time.Second))},
	} {
		if !errors.Is(tc.err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", tc.name, tc.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func netipZeroPrefix() netip.Prefix { return netip.Prefix{} }

func TestLimitShadowLetsLimiterErrorsThrough(t *testing.T) {
	l := &scriptedLimiter{err: core.ArgumentError("cost 5 above capacity 3")}
	mw := must(t)(Limit(l, WithShadow(true)))
	if rec := serve(mw(okHandler), httptest.NewRequest("GET", "/", nil)); rec.Code != 200 {
		t.Errorf("status = %d, want 200 in shadow mode", rec.Code)
	}
}
