package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestQuickstartAgainstRedis builds the README's complete program, runs it
// against a real Redis and checks that the 21st request of one tenant is
// refused with 429 and the rate-limit header fields, that another tenant
// is not, and that /metrics reports the decisions.
func TestQuickstartAgainstRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+srv.Addr()+"/0", "ADDR="+addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("quickstart output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quickstart did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	get := func(tenant string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var refused *http.Response
	for i := 0; i < 40 && refused == nil; i++ {
		if resp := get("acme"); resp.StatusCode == http.StatusTooManyRequests {
			refused = resp
		} else if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		} else if i >= 25 {
			t.Fatalf("request %d admitted: the burst is 20", i)
		}
	}
	if refused == nil {
		t.Fatal("no request of 40 was refused")
	}
	for _, h := range []string{"Retry-After", "RateLimit", "RateLimit-Policy"} {
		if refused.Header.Get(h) == "" {
			t.Errorf("429 without %s; headers %v", h, refused.Header)
		}
	}
	if resp := get("globex"); resp.StatusCode != http.StatusOK {
		t.Errorf("another tenant: status %d; want 200", resp.StatusCode)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(body.String(), `bulwark_decisions_total{degraded="false",name="api"`) {
		t.Errorf("/metrics has no decisions of the api limiter:\n%s", body.String())
	}
}
