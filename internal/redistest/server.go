package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables read by the package.
const (
	// EnvRequireRedis, when set to any non-empty value, turns a missing
	// redis-server binary into a test failure instead of a skip. CI sets it.
	EnvRequireRedis = "BULWARK_REQUIRE_REDIS"
	// EnvServerPath names the redis-server binary to use instead of the one
	// found on PATH.
	EnvServerPath = "BULWARK_REDIS_SERVER"
	// EnvRedisAddr makes Default use this address ("host:port") instead of
	// probing 127.0.0.1:6379; the server there must answer PING.
	EnvRedisAddr = "BULWARK_REDIS_ADDR"
)

// ReadyTimeout bounds how long StartServer and Server.Restart wait for a new
// redis-server to answer PING before failing the test with its log.
const ReadyTimeout = 10 * time.Second

// startAttempts is how many free ports StartServer tries when the chosen one
// is taken between the probe and the server's bind.
const startAttempts = 5

// RequireServer returns the path of the redis-server binary (EnvServerPath, or
// redis-server on PATH). When there is none it skips the test with a message
// saying how to install it, or, when EnvRequireRedis is set, fails the test:
// that is the only skip the project allows.
func RequireServer(tb testing.TB) string {
	tb.Helper()
	path, err := findServer()
	if err == nil {
		return path
	}
	if os.Getenv(EnvRequireRedis) != "" {
		tb.Fatalf("redistest: %v; %s is set, so tests that need Redis must run: install redis-server (Debian: apt-get install redis-server)", err, EnvRequireRedis)
		return ""
	}
	tb.Skipf("redistest: %v; skipping a test that needs Redis (install redis-server, or set %s=1 to make this a failure)", err, EnvRequireRedis)
	return ""
}

func findServer() (string, error) {
	if p := os.Getenv(EnvServerPath); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvServerPath, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("no redis-server binary: %w", err)
	}
	return p, nil
}

// Server is one redis-server process listening on 127.0.0.1 at a port chosen
// by the package. It runs with no persistence (save "", appendonly no), with
// DEBUG enabled (enable-debug-command yes), with its working directory and
// log file in a directory of its own. The test that started it owns it: the
// process is stopped at that test's cleanup (SIGCONT, then SIGKILL, then
// wait), and its log is printed there when the test failed.
//
// The methods are safe for concurrent use. Those without a testing.TB
// argument report failures through the owning test and so must run on its
// goroutine.
type Server struct {
	run   Runner
	dir   string
	conf  string
	extra []string
	port  int
	owner testing.TB // nil for servers owned by the package (SharedCluster)

	mu     sync.Mutex
	proc   Process
	done   <-chan struct{} // closed when proc has exited
	paused bool
	closed bool

	adminClient *redis.Client // harness queries (cluster checks); see admin
}

// StartServer starts a redis-server for the test and waits until it answers
// PING. extraArgs are appended to its command line as configuration
// directives, e.g. "--maxmemory", "2mb" or "--requirepass", "pw". The test is
// skipped or failed as RequireServer says when there is no redis-server, and
// failed with the server's log when it does not come up within ReadyTimeout.
func StartServer(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	return StartServerConfig(tb, ServerConfig{Args: extraArgs})
}

// ServerConfig describes a server for StartServerConfig.
type ServerConfig struct {
	Runner Runner   // starts the process; nil means the redis-server binary
	Port   int      // the port to listen on; 0 means a free one
	Args   []string // appended to the command line, as StartServer's extraArgs
}

// StartServerConfig is StartServer with every setting of cfg. A Port that is
// in use fails the test with an error saying so (ErrPortTaken), without
// trying another.
func StartServerConfig(tb testing.TB, cfg ServerConfig) *Server {
	tb.Helper()
	if cfg.Port < 0 || cfg.Port > 65535 {
		tb.Fatalf("redistest: port %d out of range", cfg.Port)
		return nil
	}
	r := requireRunner(tb, cfg.Runner)
	s, err := newServer(r, tb.TempDir(), tb, false, cfg.Args, cfg.Port)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redistest: log of redis-server %s:\n%s", s.Addr(), tail(s.Log(), 16<<10))
		}
		s.stop()
	})
	return s
}

// newServer picks a free port, writes the configuration file into dir and
// starts the process, retrying on another port when the chosen one was taken
// in the meantime. cluster reserves port+10000 for the cluster bus too. A
// fixed port (not 0) is used as it is, without retries.
func newServer(run Runner, dir string, owner testing.TB, cluster bool, extra []string, fixed int) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		var port int
		var err error
		if fixed != 0 {
			port, err = reserveFixedPort(fixed)
		} else {
			port, err = pickPort(cluster)
		}
		if err != nil {
			return nil, err
		}
		s := &Server{
			run:   run,
			dir:   dir,
			conf:  filepath.Join(dir, "redis.conf"),
			extra: extra,
			port:  port,
			owner: owner,
		}
		if err := s.writeConfig(s.config()); err != nil {
			releasePort(port)
			return nil, err
		}
		err = s.launch()
		if err == nil {
			return s, nil
		}
		lastErr = err
		s.stop()
		if s.portTaken() && fixed != 0 {
			return nil, fmt.Errorf("%w: port %d (redis-server says Address already in use)", ErrPortTaken, port)
		}
		if !s.portTaken() {
			return nil, fmt.Errorf("%w\nredis-server log:\n%s", err, tail(s.Log(), 16<<10))
		}
	}
	return nil, fmt.Errorf("no free port after %d attempts: %w", startAttempts, lastErr)
}

// writeConfig writes text as the configuration file of a server not yet
// launched and removes the logs of an earlier attempt from its directory.
func (s *Server) writeConfig(text string) error {
	if err := os.WriteFile(s.conf, []byte(text), 0o600); err != nil {
		return err
	}
	_ = os.Remove(s.logPath())
	_ = os.Remove(s.stdoutPath())
	return nil
}

// portTaken reports whether the server's log says its port was already in
// use, so that starting again on another port may succeed.
func (s *Server) portTaken() bool {
	return strings.Contains(s.Log(), "Address already in use")
}

func (s *Server) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\n", s.port)
	b.WriteString("bind 127.0.0.1\n")
	b.WriteString("daemonize no\n")
	b.WriteString("save \"\"\n")
	b.WriteString("appendonly no\n")
	fmt.Fprintf(&b, "dir %s\n", confQuote(s.dir))
	b.WriteString("enable-debug-command yes\n")
	// Replicas sync at once instead of after the default 5s diskless delay.
	b.WriteString("repl-diskless-sync-delay 0\n")
	b.WriteString("loglevel notice\n")
	fmt.Fprintf(&b, "logfile %s\n", confQuote(s.logPath()))
	return b.String()
}

// confQuote quotes s for a redis.conf line (a double-quoted string in which
// backslash, quote and control bytes are escaped).
func confQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (s *Server) logPath() string    { return filepath.Join(s.dir, "redis.log") }
func (s *Server) stdoutPath() string { return filepath.Join(s.dir, "stdout.log") }

// launch starts the process and waits until it answers PING.
func (s *Server) launch() error {
	proc, err := s.run.Start(s.dir, append([]string{s.conf}, s.extra...), s.stdoutPath())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc, s.done, s.paused = proc, proc.Done(), false
	s.mu.Unlock()
	return waitReady(s.Addr(), s.done, ReadyTimeout)
}

// waitReady sends PING until the server answers, the process exits (done is
// closed) or timeout passes. LOADING and connection errors mean "not yet".
func waitReady(addr string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	var lastErr error
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server %s exited before answering PING", addr)
		default:
		}
		if lastErr = ping(addr, 250*time.Millisecond); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server %s did not answer PING within %v: %w", addr, timeout, lastErr)
		}
		select {
		case <-done:
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// ping runs PING on a fresh connection. A server that asks for a password
// (NOAUTH) counts as answering.
func ping(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
}

// stop ends the process for good (cleanup): SIGCONT so a paused server can
// die, SIGKILL, wait, and give the port back.
func (s *Server) stop() {
	s.kill()
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	admin := s.adminClient
	s.adminClient = nil
	s.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	if first {
		releasePort(s.port)
	}
}

// stopAll stops the servers (nil ones skipped) in parallel.
func stopAll(servers []*Server) {
	var wg sync.WaitGroup
	for _, srv := range servers {
		if srv != nil {
			wg.Go(srv.stop)
		}
	}
	wg.Wait()
}

// kill sends SIGCONT and SIGKILL and waits for the process to exit. It
// reports whether a process was running.
func (s *Server) kill() bool {
	s.mu.Lock()
	proc := s.proc
	s.proc, s.paused = nil, false
	s.mu.Unlock()
	if proc == nil {
		return false
	}
	_ = proc.Kill()
	return true
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the TCP port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory (its log and, for cluster
// nodes, nodes.conf live there).
func (s *Server) Dir() string { return s.dir }

// Pid returns the process id of the running process, or 0 after Kill.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// Running reports whether a process is running (it may be paused).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Paused reports whether the process is stopped by Pause.
func (s *Server) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// live reports whether the process runs and is not paused, so it can answer.
func (s *Server) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.paused
}

// Kill sends SIGKILL (a crash: no shutdown, no save) and waits until the
// process is gone. Clients then get connection refused. Killing a server that
// is not running does nothing.
func (s *Server) Kill() { s.kill() }

// Pause stops the process with SIGSTOP: connections stay open and new ones are
// accepted by the kernel, but nothing is answered, which is what a hung or
// overloaded Redis looks like to a client. Resume undoes it.
func (s *Server) Pause() { s.signal(true) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() { s.signal(false) }

func (s *Server) signal(pause bool) {
	s.mu.Lock()
	var err error
	switch {
	case s.proc == nil:
		err = errors.New("it is not running")
	case pause:
		err = s.proc.Pause()
	default:
		err = s.proc.Resume()
	}
	if err == nil {
		s.paused = pause
	}
	s.mu.Unlock()
	if err != nil { // fatalf may end the goroutine: never with s.mu held
		verb := "resume"
		if pause {
			verb = "pause"
		}
		s.fatalf("redistest: %s redis-server %s: %v", verb, s.Addr(), err)
	}
}

// Restart starts the server again on the same port, with the same directory
// and configuration, and waits until it answers PING. It kills a running
// process first. With persistence off the data set comes back empty; a
// cluster node keeps its identity (nodes.conf) and rejoins the cluster.
func (s *Server) Restart() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.fatalf("redistest: restart of redis-server %s after its test ended", s.Addr())
		return
	}
	s.kill()
	var err error
	for attempt := 0; attempt < startAttempts; attempt++ {
		if err = s.launch(); err == nil {
			return
		}
		s.kill()
		if !s.portTaken() {
			break
		}
		time.Sleep(50 * time.Millisecond) // the port is still held by a closing socket
	}
	s.fatalf("redistest: restart redis-server %s: %v\nlog:\n%s", s.Addr(), err, tail(s.Log(), 16<<10))
}

// Log returns the server's log file followed by anything it printed on
// stdout or stderr (configuration errors), for printing on failure.
func (s *Server) Log() string {
	logText, _ := os.ReadFile(s.logPath())
	out, _ := os.ReadFile(s.stdoutPath())
	if len(out) == 0 {
		return string(logText)
	}
	return string(logText) + "\n--- stdout/stderr ---\n" + string(out)
}

// Client returns a go-redis client for the server, with go-redis defaults
// changed by opts, closed at the test's cleanup.
func (s *Server) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: s.Addr()}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Exec runs one command on a fresh connection (no pool, no retries) and
// closes it, returning the reply; the deadline comes from ctx. It suits
// fault injection such as CLIENT PAUSE, DEBUG SLEEP, SCRIPT FLUSH, CONFIG SET
// or CLUSTER FAILOVER. A nil reply returns (nil, redis.Nil).
func (s *Server) Exec(ctx context.Context, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{
		Addr:                  s.Addr(),
		MaxRetries:            -1,
		PoolSize:              1,
		DialTimeout:           2 * time.Second,
		ReadTimeout:           -1, // DEBUG SLEEP may take long: ctx bounds the call
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	})
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// Do is Exec with a 30-second deadline that fails the test on an error. A
// nil reply returns nil.
func (s *Server) Do(tb testing.TB, args ...any) any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := s.Exec(ctx, args...)
	if err != nil && !errors.Is(err, redis.Nil) {
		tb.Fatalf("redistest: %v on redis-server %s: %v", args, s.Addr(), err)
	}
	return v
}

// fatalf reports a failure through the owning test, or panics for servers
// owned by the package itself.
func (s *Server) fatalf(format string, args ...any) {
	if s.owner == nil {
		panic(fmt.Sprintf(format, args...))
	}
	s.owner.Helper()
	s.owner.Fatalf(format, args...)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Ports handed out and still owned by a live Server are never handed out
// again by this process, so a killed server's port is still free for Restart.
var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: make(map[int]bool)}

// pickPort is reservePort; a test replaces it to force a port clash.
var pickPort = reservePort

// reservePort finds a free loopback port: bind 127.0.0.1:0, read the port,
// close. For cluster nodes the port must stay below 55535 and port+10000
// (the cluster bus) must be free too.
func reservePort(cluster bool) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	for i := 0; i < 100; i++ {
		port, err := probePort(0)
		if err != nil {
			return 0, err
		}
		if ports.used[port] {
			continue
		}
		if cluster {
			if port >= 65535-10000 || ports.used[port+10000] {
				continue
			}
			if _, err := probePort(port + 10000); err != nil {
				continue
			}
		}
		ports.used[port] = true
		return port, nil
	}
	return 0, errors.New("redistest: no free loopback port found")
}

// ErrPortTaken is the error (wrapped) of a server asked to listen on a port
// that is in use.
var ErrPortTaken = errors.New("port taken")

// reserveFixedPort reserves port if it is free, for a server that must
// listen on it.
func reserveFixedPort(port int) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used[port] {
		return 0, fmt.Errorf("%w: port %d is used by another server of this test binary", ErrPortTaken, port)
	}
	if _, err := probePort(port); err != nil {
		return 0, fmt.Errorf("%w: port %d: %v", ErrPortTaken, port, err)
	}
	ports.used[port] = true
	return port, nil
}

func probePort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func releasePort(port int) {
	ports.Lock()
	defer ports.Unlock()
	delete(ports.used, port)
}
