package redistest

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Proxy is an in-process TCP proxy that sits between a client and a server
// (point the client at Proxy.Addr) and injects network faults on demand:
// latency, a blackhole, lost replies, connection resets, refused connections.
// Every switch applies at once to new and live connections.
//
// Each accepted connection gets its own connection to the upstream address;
// bytes are forwarded in chunks as they are read, each direction by a reader
// and a writer goroutine. A Proxy is safe for concurrent use. NewProxy
// registers Close at the test's cleanup; after Close no goroutine of the
// proxy is left.
type Proxy struct {
	upstream string
	ln       net.Listener

	latency     atomic.Int64 // time.Duration added to each chunk
	blackhole   atomic.Bool
	dropReplies atomic.Bool
	dropped     atomic.Int64 // reply reads discarded by DropReplies
	refuse      atomic.Bool

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup // accept loop and every link goroutine
}

// link is one proxied connection: the client side and, unless the connection
// was accepted while blackholed, the upstream side.
type link struct {
	client, server net.Conn // server is nil for a blackholed connection
	done           chan struct{}
	once           sync.Once
}

// close resets both sides (RST, not FIN) and wakes the writers.
func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		reset(l.client)
		if l.server != nil {
			reset(l.server)
		}
	})
}

// reset closes c so that the peer sees a connection reset rather than an
// orderly end of stream.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// NewProxy starts a proxy listening on 127.0.0.1 (a free port) that forwards
// to upstream ("host:port"). The upstream is dialed for each new connection;
// when that fails, the client's connection is reset. The proxy is closed at
// the test's cleanup.
func NewProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{upstream: upstream, ln: ln, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	tb.Cleanup(p.Close)
	return p
}

// Addr returns the address clients should dial, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Client returns a go-redis client connected through the proxy, with go-redis
// defaults changed by opts, closed at the test's cleanup.
func (p *Proxy) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: p.Addr()}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// SetLatency delays every chunk by d in each direction, so a request and its
// reply take at least 2*d longer. It applies to chunks read from then on, on
// new and live connections; 0 turns it off.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Blackhole, while on, makes the proxy accept connections and read from
// them but forward nothing and answer nothing, in both directions, on new and
// live connections: a client waits until its own timeout, as with a network
// that silently drops packets. Bytes read while on are lost. Connections
// accepted while on never reach the upstream, even after Blackhole(false).
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// DropReplies, while on, forwards requests to the server but discards the
// server's replies: the command runs, the client never hears about it. This
// is the "reply lost after the script ran" case that makes a retrying client
// apply a command twice.
func (p *Proxy) DropReplies(on bool) { p.dropReplies.Store(on) }

// DroppedReplies returns how many reads from the server DropReplies has
// discarded so far. A test that switches DropReplies off while a command is
// in flight waits for this count to grow: that the server ran the command
// does not mean its reply has reached the proxy, and a reply read after the
// switch is forwarded.
func (p *Proxy) DroppedReplies() int64 { return p.dropped.Load() }

// Refuse, while on, resets every new connection as soon as it is accepted;
// live connections are not affected (CutAll closes those).
func (p *Proxy) Refuse(on bool) { p.refuse.Store(on) }

// CutAll resets every live connection (SO_LINGER 0, so peers see a reset).
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
		delete(p.links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Conns returns the number of live proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops listening, resets every live connection and waits for all of
// the proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if !already {
		_ = p.ln.Close()
	}
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if p.refuse.Load() {
			reset(c)
			continue
		}
		l := &link{client: c, done: make(chan struct{})}
		if !p.blackhole.Load() {
			s, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
			if err != nil {
				reset(c)
				continue
			}
			l.server = s
		}
		if ok, closed := p.add(l); !ok {
			l.close()
			if closed {
				return
			}
			continue
		}
		if l.server == nil {
			p.wg.Add(1)
			go p.sink(l)
			continue
		}
		p.pipe(l, l.client, l.server, false)
		p.pipe(l, l.server, l.client, true)
	}
}

// add registers l. It reports false when the proxy is closed, or when
// Refuse was switched on while l was being set up: Refuse followed by CutAll
// then leaves no connection alive, even one accepted just before the switch.
func (p *Proxy) add(l *link) (ok, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, true
	}
	if p.refuse.Load() {
		return false, false
	}
	p.links[l] = struct{}{}
	return true, false
}

func (p *Proxy) remove(l *link) {
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// sink reads and discards everything from a blackholed connection.
func (p *Proxy) sink(l *link) {
	defer p.wg.Done()
	defer p.remove(l)
	buf := make([]byte, 4096)
	for {
		if _, err := l.client.Read(buf); err != nil {
			return
		}
	}
}

// chunk is bytes read from one side, stamped with the time they were read.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe forwards src to dst with a reader goroutine (which applies the drop
// switches) and a writer goroutine (which applies the latency). reply marks
// the server-to-client direction. When either side fails the whole link is
// reset.
func (p *Proxy) pipe(l *link, src, dst net.Conn, reply bool) {
	ch := make(chan chunk, 64)
	p.wg.Add(2)
	go func() { // reader
		defer p.wg.Done()
		defer close(ch)
		defer p.remove(l)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && reply && !p.blackhole.Load() && p.dropReplies.Load() {
				p.dropped.Add(1)
			} else if n > 0 && !p.blackhole.Load() {
				c := chunk{data: append([]byte(nil), buf[:n]...), at: time.Now()}
				select {
				case ch <- c:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // writer
		defer p.wg.Done()
		var timer *time.Timer
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		for c := range ch {
			if wait := time.Until(c.at.Add(time.Duration(p.latency.Load()))); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-l.done:
					return
				}
			}
			if p.blackhole.Load() {
				continue // switched on while the chunk was delayed
			}
			if _, err := dst.Write(c.data); err != nil {
				p.remove(l)
				return
			}
		}
	}()
}

// ProxyDialer returns a dialer for go-redis options (Options.Dialer,
// ClusterOptions.Dialer) that connects to each proxy's upstream address
// through that proxy, and to any other address directly. Cluster clients
// need it: nodes announce their real addresses in CLUSTER SLOTS and MOVED
// replies, so a client seeded with proxy addresses would leave the proxies
// behind after the first topology load.
func ProxyDialer(proxies ...*Proxy) func(ctx context.Context, network, addr string) (net.Conn, error) {
	via := make(map[string]string, len(proxies))
	for _, p := range proxies {
		via[p.Upstream()] = p.Addr()
	}
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if a, ok := via[addr]; ok {
			addr = a
		}
		return d.DialContext(ctx, network, addr)
	}
}

// ViaProxies is an option for Cluster.Client that routes the client's
// connections to each proxied node through its proxy (see ProxyDialer).
func ViaProxies(proxies ...*Proxy) func(*redis.ClusterOptions) {
	dial := ProxyDialer(proxies...)
	return func(o *redis.ClusterOptions) { o.Dialer = dial }
}
