package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRequireServerSkipsOrFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server anywhere
	t.Setenv(EnvServerPath, "")

	t.Setenv(EnvRequireRedis, "")
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { RequireServer(tb) })
	if !r.skipped || r.fatal {
		t.Fatalf("without %s: skipped=%v fatal=%v, want a skip", EnvRequireRedis, r.skipped, r.fatal)
	}
	if !strings.Contains(strings.Join(r.errors, "\n"), EnvRequireRedis) {
		t.Errorf("skip message %q does not mention %s", r.errors, EnvRequireRedis)
	}

	t.Setenv(EnvRequireRedis, "1")
	r = &recorder{TB: t}
	r.run(func(tb testing.TB) { RequireServer(tb) })
	if !r.fatal || r.skipped {
		t.Fatalf("with %s: skipped=%v fatal=%v, want a failure", EnvRequireRedis, r.skipped, r.fatal)
	}
}

func TestRequireServerFindsBinary(t *testing.T) {
	path := RequireServer(t)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("RequireServer returned %q: %v", path, err)
	}
}

func TestServerStartKillRestart(t *testing.T) {
	s := StartServer(t)
	ctx := context.Background()
	c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })

	if got, want := s.Addr(), "127.0.0.1:"+itoa(s.Port()); got != want {
		t.Fatalf("Addr() = %q, want %q", got, want)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The configuration the harness promises.
	for param, want := range map[string]string{
		"save":                 "",
		"appendonly":           "no",
		"bind":                 "127.0.0.1",
		"enable-debug-command": "yes",
		"dir":                  s.Dir(),
	} {
		got, err := c.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}
	if s.Do(t, "DEBUG", "SLEEP", "0") != "OK" {
		t.Error("DEBUG is not enabled")
	}

	pid := s.Pid()
	if pid == 0 || !s.Running() {
		t.Fatalf("Pid() = %d, Running() = %v on a started server", pid, s.Running())
	}
	s.Kill()
	if s.Pid() != 0 || s.Running() {
		t.Fatalf("after Kill: Pid() = %d, Running() = %v", s.Pid(), s.Running())
	}
	err := c.Ping(ctx).Err()
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("PING after Kill: %v, want a connection error", err)
	}

	s.Restart()
	if s.Pid() == 0 || s.Pid() == pid {
		t.Fatalf("after Restart: Pid() = %d (was %d)", s.Pid(), pid)
	}
	if err := pingEventually(ctx, c); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// Persistence is off: the restarted server is empty.
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart = %d, %v; want 0 (no persistence)", n, err)
	}
	if !strings.Contains(s.Log(), "Ready to accept connections") {
		t.Errorf("Log() lacks the startup line:\n%s", s.Log())
	}
}

// pingEventually retries PING for a few seconds: the pool may hold
// connections from before a kill, which fail once each.
func pingEventually(ctx context.Context, c redis.UniversalClient) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerPauseResume(t *testing.T) {
	s := StartServer(t)
	ctx := context.Background()
	c := s.Client(t, func(o *redis.Options) {
		o.MaxRetries = -1
		o.ReadTimeout = 100 * time.Millisecond
	})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	s.Pause()
	if !s.Paused() {
		t.Fatal("Paused() = false after Pause")
	}
	err := c.Ping(ctx).Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING on a paused server: %v, want a timeout", err)
	}

	s.Resume()
	if s.Paused() {
		t.Fatal("Paused() = true after Resume")
	}
	if err := pingEventually(ctx, c); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestServerPausedIsStoppedAtCleanup(t *testing.T) {
	var pid int
	t.Run("paused", func(t *testing.T) {
		s := StartServer(t)
		pid = s.Pid()
		s.Pause()
	})
	// The cleanup waited for the process, so it is gone (not a zombie).
	if _, err := os.Stat(filepath.Join("/proc", itoa(pid))); err == nil {
		t.Fatalf("process %d still exists after the test's cleanup", pid)
	}
}

func TestServerExtraArgsAndExec(t *testing.T) {
	s := StartServer(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	ctx := context.Background()
	got, err := s.Exec(ctx, "CONFIG", "GET", "maxmemory-policy")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(toStrings(got), " "), "noeviction") {
		t.Fatalf("CONFIG GET maxmemory-policy = %v, want noeviction", got)
	}
	if v, err := s.Exec(ctx, "GET", "missing"); !errors.Is(err, redis.Nil) || v != nil {
		t.Fatalf("Exec(GET missing) = %v, %v; want nil, redis.Nil", v, err)
	}
	if v := s.Do(t, "GET", "missing"); v != nil {
		t.Fatalf("Do(GET missing) = %v, want nil", v)
	}
}

func TestServerBadArgsFailWithLog(t *testing.T) {
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { StartServer(tb, "--no-such-directive", "1") })
	if !r.fatal {
		t.Fatal("StartServer with a bad directive did not fail")
	}
	if msg := strings.Join(r.errors, "\n"); !strings.Contains(msg, "no-such-directive") {
		t.Errorf("failure does not show the server's complaint:\n%s", msg)
	}
}

func TestServersGetDistinctPorts(t *testing.T) {
	seen := map[int]bool{}
	for range 3 {
		s := StartServer(t)
		if seen[s.Port()] {
			t.Fatalf("port %d handed out twice", s.Port())
		}
		seen[s.Port()] = true
	}
}

func TestDefault(t *testing.T) {
	c := Default(t)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING through Default: %v", err)
	}
}

func TestDefaultUsesEnvAddr(t *testing.T) {
	// An explicit address that does not answer is a failure, not a fallback.
	dead, err := probePort(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRedisAddr, "127.0.0.1:"+itoa(dead))
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { Default(tb) })
	if !r.fatal {
		t.Fatalf("Default with %s pointing at a dead port did not fail", EnvRedisAddr)
	}

	s := StartServer(t)
	t.Setenv(EnvRedisAddr, s.Addr())
	c := Default(t)
	if got := c.(*redis.Client).Options().Addr; got != s.Addr() {
		t.Fatalf("Default used %s, want %s from %s", got, s.Addr(), EnvRedisAddr)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func toStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, toStrings(e)...)
		}
	case map[any]any:
		for k, e := range x {
			out = append(out, toStrings(k)...)
			out = append(out, toStrings(e)...)
		}
	case string:
		out = append(out, x)
	}
	return out
}

func TestPauseOfDeadServerFails(t *testing.T) {
	r := &recorder{TB: t}
	var s *Server
	r.run(func(tb testing.TB) { s = StartServer(tb) })
	s.Kill()
	r.run(func(testing.TB) { s.Pause() })
	if !r.fatal || !strings.Contains(strings.Join(r.errors, ""), "not running") {
		t.Fatalf("Pause of a killed server: fatal=%v %q", r.fatal, r.errors)
	}
	s.Kill() // the lock is free again: a second Kill (and the cleanup) must not block
}

// TestStartServerRetriesTakenPort hands StartServer a port that another
// socket holds, as happens when a port is taken between probe and bind.
func TestStartServerRetriesTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func(cluster bool) (int, error) {
		calls++
		if calls == 1 {
			ports.Lock()
			ports.used[busy] = true
			ports.Unlock()
			return busy, nil
		}
		return reservePort(cluster)
	}
	defer func() { pickPort = reservePort }()

	s := StartServer(t)
	if s.Port() == busy || calls != 2 {
		t.Fatalf("StartServer used port %d after %d picks; want a second port after the busy %d", s.Port(), calls, busy)
	}
	if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestStartServerConfigPortTaken(t *testing.T) {
	RequireServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { StartServerConfig(tb, ServerConfig{Port: port}) })
	msg := strings.Join(r.errors, "\n")
	if !r.fatal || !strings.Contains(msg, "port taken") || !strings.Contains(msg, strconv.Itoa(port)) {
		t.Fatalf("StartServerConfig on a taken port: fatal=%v, message %q; want a failure naming the port as taken", r.fatal, msg)
	}
}

func TestStartServerConfigFixedPort(t *testing.T) {
	RequireServer(t)
	port, err := probePort(0)
	if err != nil {
		t.Fatal(err)
	}
	s := StartServerConfig(t, ServerConfig{Port: port, Args: []string{"--maxmemory", "3mb"}})
	if s.Port() != port {
		t.Fatalf("Port() = %d, want %d", s.Port(), port)
	}
	if got := s.Do(t, "CONFIG", "GET", "maxmemory"); fmt.Sprint(got) != "map[maxmemory:3145728]" {
		t.Fatalf("CONFIG GET maxmemory = %v, want 3145728", got)
	}
}
