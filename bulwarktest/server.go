package bulwarktest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Server is one throw-away redis-server listening on 127.0.0.1, as a child
// process or in a container (see Backend). It runs without persistence and
// with the DEBUG command enabled; the test that started it owns it, and its
// cleanup stops it (printing its log when the test failed).
//
// The methods are safe for concurrent use. Those without a testing.TB
// argument (Kill, Pause, Resume, Restart) report failures through the test
// that started the server, so call them from its goroutine.
type Server struct {
	s       *redistest.Server
	backend Backend
}

// StartRedis starts a Redis server for the test and returns once it answers
// PING. Options: WithBackend, WithImage, WithArgs, WithPort.
//
//	srv := bulwarktest.StartRedis(t)
//	client := srv.Client(t)
func StartRedis(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	c := buildConfig(tb, opts)
	r := c.runner(tb)
	s := redistest.StartServerConfig(tb, redistest.ServerConfig{Runner: r, Port: c.port, Args: c.args})
	return &Server{s: s, backend: backendOf(r)}
}

func backendOf(r redistest.Runner) Backend {
	if _, ok := r.(*containerRunner); ok {
		return Container
	}
	return Binary
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.s.Addr() }

// Port returns the server's port; it stays the same across Restart.
func (s *Server) Port() int { return s.s.Port() }

// Backend returns Binary or Container: where the server runs.
func (s *Server) Backend() Backend { return s.backend }

// Client returns a go-redis client for the server, with go-redis defaults
// changed by opts, closed at the test's cleanup.
func (s *Server) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return s.s.Client(tb, opts...)
}

// Proxy starts a fault Proxy in front of the server, closed at the test's
// cleanup. Clients of the proxy (Proxy.Client) see its faults; clients of
// the server do not.
func (s *Server) Proxy(tb testing.TB) *Proxy {
	tb.Helper()
	return NewProxy(tb, s.Addr())
}

// Do runs one command on a fresh connection with a 30-second deadline and
// returns its reply (nil for a nil reply), failing the test on an error.
func (s *Server) Do(tb testing.TB, args ...any) any {
	tb.Helper()
	return s.s.Do(tb, args...)
}

// Exec runs one command on a fresh connection (no pool, no retries), the
// deadline taken from ctx, and returns its reply; a nil reply is
// (nil, redis.Nil).
func (s *Server) Exec(ctx context.Context, args ...any) (any, error) {
	return s.s.Exec(ctx, args...)
}

// Kill kills the server (SIGKILL, or docker kill): clients get connection
// refused until Restart. Killing a stopped server does nothing.
func (s *Server) Kill() { s.s.Kill() }

// Pause freezes the server (SIGSTOP, or docker pause): connections stay
// open, nothing is answered, which is what a hung Redis looks like.
func (s *Server) Pause() { s.s.Pause() }

// Resume undoes Pause.
func (s *Server) Resume() { s.s.Resume() }

// Restart starts the server again on the same port with an empty data set
// (killing it first if it runs) and waits until it answers PING.
func (s *Server) Restart() { s.s.Restart() }

// Running reports whether the server's process runs (it may be paused).
func (s *Server) Running() bool { return s.s.Running() }

// Log returns the server's log file followed by what it printed.
func (s *Server) Log() string { return s.s.Log() }

// Cluster is a Redis Cluster for one test: masters sharing the 16384 slots
// evenly, optionally with replicas, every node a Server on a loopback port
// announcing 127.0.0.1. It is stopped at the test's cleanup.
type Cluster struct {
	c       *redistest.Cluster
	backend Backend
	nodes   map[*redistest.Server]*Server
	order   []*Server
}

// StartCluster starts a Redis Cluster of three masters without replicas (change
// with WithMasters and WithReplicas) and returns once it is healthy, which
// takes about two seconds. Options: WithBackend, WithImage, WithArgs,
// WithMasters, WithReplicas.
func StartCluster(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	c := buildConfig(tb, opts)
	if c.masters == 0 {
		c.masters = 3
	}
	if c.port != 0 {
		tb.Fatalf("bulwarktest: WithPort is for Redis, not Cluster")
	}
	r := c.runner(tb)
	rc := redistest.StartClusterConfig(tb, redistest.ClusterConfig{
		Masters: c.masters, Replicas: c.replicas, ExtraArgs: c.args, Runner: r,
	})
	out := &Cluster{c: rc, backend: backendOf(r), nodes: map[*redistest.Server]*Server{}}
	for _, n := range rc.Nodes() {
		w := &Server{s: n, backend: out.backend}
		out.nodes[n] = w
		out.order = append(out.order, w)
	}
	return out
}

// Addrs returns the addresses of every node, masters first.
func (c *Cluster) Addrs() []string { return c.c.Addrs() }

// Nodes returns every node, masters first as started.
func (c *Cluster) Nodes() []*Server { return append([]*Server(nil), c.order...) }

// Backend returns where the nodes run.
func (c *Cluster) Backend() Backend { return c.backend }

// Client returns a cluster client seeded with every node, with go-redis
// defaults changed by opts (ViaProxies among them), closed at cleanup.
func (c *Cluster) Client(tb testing.TB, opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	tb.Helper()
	return c.c.Client(tb, opts...)
}

// Masters returns the nodes that serve slots now.
func (c *Cluster) Masters() []*Server { return c.wrap(c.c.Masters()) }

// MasterFor returns the node serving key's slot now.
func (c *Cluster) MasterFor(key string) *Server { return c.nodes[c.c.MasterFor(key)] }

// Proxies starts a Proxy in front of every node, in the order of Nodes,
// closed at cleanup. Pass them to ViaProxies so a client uses them.
func (c *Cluster) Proxies(tb testing.TB) []*Proxy {
	tb.Helper()
	out := make([]*Proxy, len(c.order))
	for i, n := range c.order {
		out[i] = NewProxy(tb, n.Addr())
	}
	return out
}

// WaitHealthy waits until every slot is served and every node agrees, or
// fails the test after timeout.
func (c *Cluster) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	c.c.WaitHealthy(tb, timeout)
}

// WaitFailover waits until a replica of master (killed or paused by the
// test) serves its slots and returns it, or fails the test after timeout.
func (c *Cluster) WaitFailover(tb testing.TB, master *Server, timeout time.Duration) *Server {
	tb.Helper()
	return c.nodes[c.c.WaitFailover(tb, master.s, timeout)]
}

func (c *Cluster) wrap(in []*redistest.Server) []*Server {
	out := make([]*Server, len(in))
	for i, s := range in {
		out[i] = c.nodes[s]
	}
	return out
}

// Sentinel is a Redis Sentinel deployment for one test: a master, its
// replicas and three sentinels monitoring it (quorum 2, down after 500ms),
// every process a Server. It is stopped at the test's cleanup.
type Sentinel struct {
	s       *redistest.Sentinel
	backend Backend
	nodes   map[*redistest.Server]*Server
}

// StartSentinel starts a Sentinel deployment of a master with one replica
// (change with WithReplicas) and three sentinels, and returns once the
// sentinels see it all, which takes about a second. Options: WithBackend,
// WithImage, WithReplicas.
func StartSentinel(tb testing.TB, opts ...Option) *Sentinel {
	tb.Helper()
	c := buildConfig(tb, opts)
	if len(c.args) > 0 || c.port != 0 || c.masters != 0 {
		tb.Fatalf("bulwarktest: WithArgs, WithPort and WithMasters do not apply to Sentinel")
	}
	if !c.hasRepl {
		c.replicas = 1
	}
	r := c.runner(tb)
	rs := redistest.StartSentinelWith(tb, r, c.replicas)
	out := &Sentinel{s: rs, backend: backendOf(r), nodes: map[*redistest.Server]*Server{}}
	for _, n := range append(rs.Servers(), rs.Sentinels()...) {
		out.nodes[n] = &Server{s: n, backend: out.backend}
	}
	return out
}

// MasterName returns the name the sentinels monitor the master under.
func (s *Sentinel) MasterName() string { return s.s.MasterName() }

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string { return s.s.SentinelAddrs() }

// Backend returns where the processes run.
func (s *Sentinel) Backend() Backend { return s.backend }

// Client returns a go-redis failover client for the deployment, with
// go-redis defaults changed by opts, closed at cleanup.
func (s *Sentinel) Client(tb testing.TB, opts ...func(*redis.FailoverOptions)) *redis.Client {
	tb.Helper()
	return s.s.Client(tb, opts...)
}

// Master returns the data server the sentinels name as master now.
func (s *Sentinel) Master() *Server { return s.nodes[s.s.Master()] }

// Replicas returns the data servers replicating from the master now.
func (s *Sentinel) Replicas() []*Server {
	in := s.s.Replicas()
	out := make([]*Server, len(in))
	for i, n := range in {
		out[i] = s.nodes[n]
	}
	return out
}

// Sentinels returns the sentinel processes.
func (s *Sentinel) Sentinels() []*Server {
	in := s.s.Sentinels()
	out := make([]*Server, len(in))
	for i, n := range in {
		out[i] = s.nodes[n]
	}
	return out
}

// Failover asks a sentinel to fail the master over now and returns the new
// master once the deployment has settled.
func (s *Sentinel) Failover(tb testing.TB) *Server {
	tb.Helper()
	return s.nodes[s.s.Failover(tb)]
}

// WaitMaster waits until the sentinels agree on a master other than the
// server at notAddr (killed by the test) and returns it, or fails the test
// after timeout.
func (s *Sentinel) WaitMaster(tb testing.TB, notAddr string, timeout time.Duration) *Server {
	tb.Helper()
	return s.nodes[s.s.WaitMaster(tb, notAddr, timeout)]
}
