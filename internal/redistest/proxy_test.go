package redistest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// noRetry makes a go-redis client give up after one attempt, so a fault is
// seen as an error instead of being retried away.
func noRetry(readTimeout time.Duration) func(*redis.Options) {
	return func(o *redis.Options) {
		o.MaxRetries = -1
		o.DialerRetries = 1
		o.ReadTimeout = readTimeout
		o.PoolSize = 1
	}
}

func proxiedClient(t *testing.T, p *Proxy, opts ...func(*redis.Options)) *redis.Client {
	return p.Client(t, opts...)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxyForwards(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	c := proxiedClient(t, p)
	ctx := context.Background()
	if err := c.Set(ctx, "k", strings.Repeat("x", 1<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || len(v) != 1<<20 {
		t.Fatalf("GET of a 1 MiB value through the proxy: len %d, %v", len(v), err)
	}
	if p.Conns() != 1 {
		t.Fatalf("Conns() = %d, want 1", p.Conns())
	}
	if p.Upstream() != s.Addr() {
		t.Fatalf("Upstream() = %q, want %q", p.Upstream(), s.Addr())
	}
}

func TestProxyLatency(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	c := proxiedClient(t, p)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil { // a live connection before the switch
		t.Fatal(err)
	}
	const d = 50 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Only a lower bound: the request and the reply are each delayed by d.
	if got := time.Since(start); got < 2*d {
		t.Fatalf("PING took %v with %v latency per direction, want at least %v", got, d, 2*d)
	}
	p.SetLatency(0)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestProxyBlackhole(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	c := proxiedClient(t, p, noRetry(50*time.Millisecond))
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	p.Blackhole(true)
	if err := c.Ping(ctx).Err(); !isTimeout(err) { // live connection
		t.Fatalf("PING through a blackhole: %v, want a timeout", err)
	}
	fresh := proxiedClient(t, p, noRetry(50*time.Millisecond))
	if err := fresh.Ping(ctx).Err(); !isTimeout(err) { // new connection
		t.Fatalf("PING on a new connection through a blackhole: %v, want a timeout", err)
	}

	p.Blackhole(false)
	if err := pingEventually(ctx, c); err != nil {
		t.Fatalf("PING after the blackhole ended: %v", err)
	}
}

func TestProxyDropReplies(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	c := proxiedClient(t, p, noRetry(100*time.Millisecond))
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	p.DropReplies(true)
	if err := c.Incr(ctx, "counter").Err(); !isTimeout(err) {
		t.Fatalf("INCR with replies dropped: %v, want a timeout", err)
	}
	if n := p.DroppedReplies(); n < 1 {
		t.Errorf("DroppedReplies after a lost INCR reply: got %d, want at least 1", n)
	}
	// The server ran it anyway: read the counter directly, not through the proxy.
	direct := s.Client(t)
	got, err := direct.Get(ctx, "counter").Int()
	if err != nil || got != 1 {
		t.Fatalf("counter on the server = %d, %v; want 1 (the INCR ran, only its reply was lost)", got, err)
	}

	p.DropReplies(false)
	if err := pingEventually(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Incr(ctx, "counter").Result(); err != nil || got != 2 {
		t.Fatalf("INCR after DropReplies(false) = %d, %v; want 2", got, err)
	}
}

func TestProxyCutAll(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())

	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING through the proxy: %q, %v", line, err)
	}
	if p.Conns() != 1 {
		t.Fatalf("Conns() = %d, want 1", p.Conns())
	}

	p.CutAll()
	if p.Conns() != 0 {
		t.Fatalf("Conns() = %d after CutAll, want 0", p.Conns())
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("read on a cut connection: %v, want a reset or EOF", err)
	}

	// A client reconnects and carries on.
	c := proxiedClient(t, p)
	if err := pingEventually(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func TestProxyRefuse(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	ctx := context.Background()

	live := proxiedClient(t, p)
	if err := live.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	p.Refuse(true)
	fresh := proxiedClient(t, p, noRetry(time.Second))
	if err := fresh.Ping(ctx).Err(); err == nil || isTimeout(err) {
		t.Fatalf("PING on a new connection while refusing: %v, want a connection error", err)
	}
	if err := live.Ping(ctx).Err(); err != nil {
		t.Fatalf("a live connection broke while refusing new ones: %v", err)
	}

	p.Refuse(false)
	if err := pingEventually(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	s.Kill()
	c := proxiedClient(t, p, noRetry(time.Second))
	if err := c.Ping(context.Background()).Err(); err == nil || isTimeout(err) {
		t.Fatalf("PING through a proxy to a dead server: %v, want a connection error", err)
	}
}

func TestProxyCloseEndsGoroutines(t *testing.T) {
	s := StartServer(t)
	p := NewProxy(t, s.Addr())
	p.SetLatency(time.Hour) // writers parked on a timer
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(true)
	sink, err := net.Dial("tcp", p.Addr()) // a blackholed connection
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	p.Close() // returns only when every goroutine is gone; the leak check in TestMain checks it too
	p.Close()
	if p.Conns() != 0 {
		t.Fatalf("Conns() = %d after Close", p.Conns())
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}
