package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestSelfTestLocal runs the service's self-test with per-process state.
func TestSelfTestLocal(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-selftest", "-redis", ""}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"httpservice (local) listening on 127.0.0.1:",
		"30 requests to /: 20 answered 200, 10 refused 429",
		"5 failing calls to /work: 502 502 502 503 503",
		`bulwark_breaker_state{name="upstream",pattern="breaker",state="open"} 1`,
		`bulwark_decisions_total{degraded="false",name="api",pattern="sliding_window",result="denied"} 10`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSelfTestRedis runs the self-test with the limit and breaker in a real
// Redis.
func TestSelfTestRedis(t *testing.T) {
	client := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, client), ":")
	url := "redis://" + client.(*redis.Client).Options().Addr
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-selftest", "-redis", url, "-prefix", prefix}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"httpservice (shared through Redis at ",
		"30 requests to /: 20 answered 200, 10 refused 429",
		"5 failing calls to /work: 502 502 502 ",
		`bulwark_breaker_state{name="upstream",pattern="breaker",state="open"} 1`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), " 503 (3 failures") {
		t.Errorf("the last call to /work was not refused by the open breaker:\n%s", out.String())
	}
}

// TestHandler checks the routes and the rate-limit headers without a
// listener.
func TestHandler(t *testing.T) {
	svc, err := newService(context.Background(), "", "unused", prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, tc := range []struct {
		path   string
		code   int
		header string // a header the response must have
	}{
		{"/", 200, "RateLimit"},
		{"/work", 200, "RateLimit"},
		{"/healthz", 200, ""},
		{"/metrics", 200, ""},
		{"/nope", 404, ""},
	} {
		rec := httptest.NewRecorder()
		svc.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, rec.Code, tc.code)
		}
		if tc.header != "" && rec.Header().Get(tc.header) == "" {
			t.Errorf("GET %s: no %s header", tc.path, tc.header)
		}
	}
	if _, err := newService(context.Background(), "http://nope", "p", prometheus.NewRegistry()); err == nil {
		t.Error("newService with a bad Redis URL: no error")
	}
}
