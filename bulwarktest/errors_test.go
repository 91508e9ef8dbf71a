package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// fakeTB records failures and skips; Fatal and Skip end the goroutine, so
// run the code under test through run.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	msgs    []string
	failed  bool
	skipped bool
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = true
	f.msgs = append(f.msgs, "skip: "+fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

func (f *fakeTB) run(fn func(tb testing.TB)) *fakeTB {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestBinaryMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvServerPath, "")
	t.Setenv(EnvRequireRedis, "")
	f := (&fakeTB{TB: t}).run(func(tb testing.TB) { StartRedis(tb, WithBackend(Binary)) })
	if !f.skipped || f.failed || !strings.Contains(f.text(), "no redis-server") {
		t.Fatalf("without a binary: skipped=%v failed=%v %q; want a skip saying there is no redis-server", f.skipped, f.failed, f.text())
	}
	t.Setenv(EnvRequireRedis, "1")
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { StartRedis(tb, WithBackend(Binary)) })
	if !f.failed || f.skipped || !strings.Contains(f.text(), EnvRequireRedis) {
		t.Fatalf("without a binary, %s set: skipped=%v failed=%v %q; want a failure", EnvRequireRedis, f.skipped, f.failed, f.text())
	}
}

func TestEngineDown(t *testing.T) {
	sock := "unix://" + t.TempDir() + "/no-engine.sock"
	_, err := connectEngine(context.Background(), client.WithHost(sock))
	if !errors.Is(err, ErrNoEngine) {
		t.Fatalf("connectEngine(%s) = %v, want ErrNoEngine", sock, err)
	}
	t.Setenv(EnvRequireDocker, "")
	f := (&fakeTB{TB: t}).run(func(tb testing.TB) { noEngine(tb, err) })
	if !f.skipped || !strings.Contains(f.text(), "no Docker engine") || !strings.Contains(f.text(), EnvRequireDocker) {
		t.Fatalf("engine down: skipped=%v %q; want a skip naming the engine and %s", f.skipped, f.text(), EnvRequireDocker)
	}
	t.Setenv(EnvRequireDocker, "1")
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { noEngine(tb, err) })
	if !f.failed || f.skipped || !strings.Contains(f.text(), "dockerd") {
		t.Fatalf("engine down, %s set: failed=%v %q; want a failure saying how to start one", EnvRequireDocker, f.failed, f.text())
	}
}

func TestPortTaken(t *testing.T) {
	eachBackend(t, func(t *testing.T, b Backend) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		f := (&fakeTB{TB: t}).run(func(tb testing.TB) { StartRedis(tb, WithBackend(b), WithPort(port)) })
		if !f.failed || !strings.Contains(f.text(), "port taken") || !strings.Contains(f.text(), strconv.Itoa(port)) {
			t.Fatalf("WithPort(%d) on a taken port: failed=%v %q; want a failure naming the port as taken", port, f.failed, f.text())
		}
		// A free port is used as asked.
		ln.Close()
		srv := StartRedis(t, WithBackend(b), WithPort(port))
		if srv.Port() != port {
			t.Fatalf("Port() = %d, want %d", srv.Port(), port)
		}
	})
}

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Backend
		ok   bool
	}{{"", Auto, true}, {"auto", Auto, true}, {"binary", Binary, true}, {"Container", Container, true}, {"docker", Container, true}, {"podman", Auto, false}} {
		got, err := ParseBackend(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseBackend(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, b := range []Backend{Auto, Binary, Container} {
		if got, err := ParseBackend(b.String()); err != nil || got != b {
			t.Errorf("ParseBackend(%v.String()) = %v, %v", b, got, err)
		}
	}
}

func TestWrongOptions(t *testing.T) {
	f := (&fakeTB{TB: t}).run(func(tb testing.TB) { StartSentinel(tb, WithArgs("--x", "y")) })
	if !f.failed || !strings.Contains(f.text(), "do not apply to Sentinel") {
		t.Fatalf("StartSentinel with WithArgs: failed=%v %q", f.failed, f.text())
	}
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { StartRedis(tb, WithBackend(Backend(7))) })
	if !f.failed || !strings.Contains(f.text(), "invalid backend") {
		t.Fatalf("StartRedis with Backend(7): failed=%v %q", f.failed, f.text())
	}
	t.Setenv(EnvBackend, "podman")
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { StartRedis(tb) })
	if !f.failed || !strings.Contains(f.text(), EnvBackend) {
		t.Fatalf("StartRedis with %s=podman: failed=%v %q", EnvBackend, f.failed, f.text())
	}
}

func TestImageWithoutBinary(t *testing.T) {
	RequireDocker(t)
	e, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.ensureImage(ctx, LocalImage); err != nil { // while redis-server is still on PATH
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvServerPath, "")
	const missing = "bulwarktest/no-such-image:none"
	t.Setenv(EnvRequireDocker, "")
	t.Setenv(EnvRequireRedis, "")
	f := (&fakeTB{TB: t}).run(func(tb testing.TB) { requireImageSource(ctx, tb, e, missing) })
	if !f.skipped || !strings.Contains(f.text(), "no redis-server binary to build it from") {
		t.Fatalf("missing image, no binary: skipped=%v %q; want a skip", f.skipped, f.text())
	}
	t.Setenv(EnvRequireDocker, "1")
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { requireImageSource(ctx, tb, e, missing) })
	if !f.failed || f.skipped {
		t.Fatalf("missing image, no binary, %s set: failed=%v skipped=%v; want a failure", EnvRequireDocker, f.failed, f.skipped)
	}
	// An image that exists needs no binary.
	f = (&fakeTB{TB: t}).run(func(tb testing.TB) { requireImageSource(ctx, tb, e, LocalImage) })
	if f.failed || f.skipped {
		t.Fatalf("existing image: failed=%v skipped=%v %q", f.failed, f.skipped, f.text())
	}
}
