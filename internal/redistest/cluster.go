package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// DefaultNodeTimeout is the cluster-node-timeout of clusters started by this
// package: a master that does not answer for this long is failed over to a
// replica, typically one to three seconds later.
const DefaultNodeTimeout = time.Second

// StartTimeout bounds how long StartCluster waits for the new cluster to be
// healthy. Redis keeps a fresh master's cluster_state at fail for its first
// two seconds, so a cluster needs about that long.
const StartTimeout = 30 * time.Second

// ClusterConfig describes a cluster for StartClusterConfig.
type ClusterConfig struct {
	Masters     int           // masters sharing the 16384 slots evenly; at least 1
	Replicas    int           // replicas per master; 0 or more
	NodeTimeout time.Duration // cluster-node-timeout; 0 means DefaultNodeTimeout
	ExtraArgs   []string      // appended to every node's command line
	Runner      Runner        // starts the nodes; nil means the redis-server binary
}

// Cluster is a Redis Cluster of Servers on loopback ports, built without
// redis-cli: each master gets an even share of the slots (CLUSTER
// ADDSLOTSRANGE) and a distinct config epoch, the nodes are joined with
// CLUSTER MEET and the replicas attached with CLUSTER REPLICATE. Every node
// runs with cluster-node-timeout NodeTimeout, cluster-announce-ip 127.0.0.1,
// cluster-replica-validity-factor 0 (a replica may always take over, so
// failover tests are not at the mercy of replication lag) and
// repl-ping-replica-period 1.
//
// The nodes are Servers: tests kill, pause and restart them to make the
// cluster fail over; WaitHealthy and WaitFailover wait for it to settle. The
// methods are safe for concurrent use.
type Cluster struct {
	cfg   ClusterConfig
	nodes []*Server

	mu   sync.Mutex
	topo []slotRange // last healthy topology seen
}

// slotRange is one row of CLUSTER SLOTS, reduced to addresses.
type slotRange struct {
	start, end int
	master     string
	replicas   []string // sorted
}

// StartCluster starts a cluster of masters masters with replicas replicas
// each, with the defaults of ClusterConfig, stopped at the test's cleanup.
// 3 masters with 0 or 1 replica each is the usual shape. It waits until the
// cluster is healthy (see WaitHealthy), which takes about two seconds.
func StartCluster(tb testing.TB, masters, replicas int) *Cluster {
	tb.Helper()
	return StartClusterConfig(tb, ClusterConfig{Masters: masters, Replicas: replicas})
}

// StartClusterConfig is StartCluster with every setting of cfg.
func StartClusterConfig(tb testing.TB, cfg ClusterConfig) *Cluster {
	tb.Helper()
	if err := cfg.validate(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	run := requireRunner(tb, cfg.Runner)
	dirs := make([]string, cfg.nodeCount())
	for i := range dirs {
		dirs[i] = tb.TempDir()
	}
	c, err := buildCluster(run, dirs, tb, cfg)
	logs := func() {
		for _, s := range c.nodes {
			if s != nil {
				tb.Logf("redistest: log of cluster node %s:\n%s", s.Addr(), tail(s.Log(), 8<<10))
			}
		}
	}
	if err != nil {
		logs()
		tb.Fatalf("redistest: start cluster: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			logs()
		}
		c.stop()
	})
	return c
}

func (cfg *ClusterConfig) validate() error {
	if cfg.Masters < 1 || cfg.Replicas < 0 {
		return fmt.Errorf("cluster of %d masters with %d replicas each: want at least 1 master and no negative replicas", cfg.Masters, cfg.Replicas)
	}
	if cfg.NodeTimeout < 0 {
		return fmt.Errorf("negative cluster node timeout %v", cfg.NodeTimeout)
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = DefaultNodeTimeout
	}
	return nil
}

func (cfg *ClusterConfig) nodeCount() int { return cfg.Masters * (1 + cfg.Replicas) }

// buildCluster starts the nodes in dirs (one each) and joins them. On error
// it stops whatever it started.
func buildCluster(run Runner, dirs []string, owner testing.TB, cfg ClusterConfig) (c *Cluster, err error) {
	args := append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(cfg.NodeTimeout.Milliseconds(), 10),
		"--cluster-announce-ip", "127.0.0.1",
		"--cluster-replica-validity-factor", "0",
		// CLUSTER SLOTS lists a replica only once its replication offset
		// moved, which the master's replica ping does: every second instead
		// of every ten.
		"--repl-ping-replica-period", "1",
	}, cfg.ExtraArgs...)

	c = &Cluster{cfg: cfg, nodes: make([]*Server, len(dirs))}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() { c.nodes[i], errs[i] = newServer(run, dirs[i], owner, true, args, 0) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return c, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	ids := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		id, err := s.admin().ClusterMyID(ctx).Result()
		if err != nil {
			return c, fmt.Errorf("CLUSTER MYID on %s: %w", s.Addr(), err)
		}
		ids[i] = id
		// Distinct epochs, as redis-cli does, so no epoch collision has to be
		// resolved before the slots are settled.
		if err := s.admin().Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return c, fmt.Errorf("CLUSTER SET-CONFIG-EPOCH on %s: %w", s.Addr(), err)
		}
	}
	for m := 0; m < cfg.Masters; m++ {
		lo, hi := m*SlotCount/cfg.Masters, (m+1)*SlotCount/cfg.Masters-1
		if err := c.nodes[m].admin().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return c, fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", lo, hi, c.nodes[m].Addr(), err)
		}
	}
	for _, s := range c.nodes[1:] {
		if err := c.nodes[0].admin().ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(s.Port())).Err(); err != nil {
			return c, fmt.Errorf("CLUSTER MEET %s: %w", s.Addr(), err)
		}
	}
	if err := c.waitJoined(ctx); err != nil {
		return c, err
	}
	// Replicas of master m are nodes Masters + m*Replicas + r.
	for m := 0; m < cfg.Masters; m++ {
		for r := 0; r < cfg.Replicas; r++ {
			s := c.nodes[cfg.Masters+m*cfg.Replicas+r]
			if err := s.admin().ClusterReplicate(ctx, ids[m]).Err(); err != nil {
				return c, fmt.Errorf("CLUSTER REPLICATE on %s: %w", s.Addr(), err)
			}
		}
	}
	if err := c.waitHealthy(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// waitJoined waits until every node knows every other node (no handshake
// left).
func (c *Cluster) waitJoined(ctx context.Context) error {
	return poll(ctx, func() error {
		for _, s := range c.nodes {
			nodes, err := s.admin().ClusterNodes(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLUSTER NODES on %s: %w", s.Addr(), err)
			}
			lines := strings.Split(strings.TrimSpace(nodes), "\n")
			if len(lines) != len(c.nodes) || strings.Contains(nodes, "handshake") || strings.Contains(nodes, "noaddr") {
				return fmt.Errorf("%s does not know all %d nodes yet:\n%s", s.Addr(), len(c.nodes), nodes)
			}
		}
		return nil
	})
}

// poll calls check until it succeeds or ctx ends, returning check's last
// error then.
func poll(ctx context.Context, check func() error) error {
	wait := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last check: %w", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func (c *Cluster) stop() { stopAll(c.nodes) }

// Config returns the configuration the cluster was started with, defaults
// filled in.
func (c *Cluster) Config() ClusterConfig { return c.cfg }

// Nodes returns every node: the masters as started first, then their
// replicas (those of the first master first). Roles change with failovers;
// Masters tells the current ones.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Addrs returns the addresses of all nodes, in the order of Nodes, for
// redis.ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// ClientReloadInterval is the ClusterStateReloadInterval of clients made by
// Cluster.Client. go-redis keeps sending a slot's commands to its old master
// until it reloads the topology, which a dead master never prompts (no MOVED
// reply), and its default interval is 60s; tests need recovery in about a
// second.
const ClientReloadInterval = 500 * time.Millisecond

// Client returns a go-redis cluster client seeded with every node's address,
// with ClusterStateReloadInterval set to ClientReloadInterval and other
// settings at go-redis defaults, all changeable by opts; it is closed at the
// test's cleanup. After a failover the client finds the new master within
// about ClientReloadInterval; ClusterClient.ReloadState makes it look at once.
func (c *Cluster) Client(tb testing.TB, opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	tb.Helper()
	o := &redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: ClientReloadInterval}
	for _, f := range opts {
		f(o)
	}
	cc := redis.NewClusterClient(o)
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// node returns the node listening on addr, or nil.
func (c *Cluster) node(addr string) *Server {
	for _, s := range c.nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// slots asks the live nodes, in order, for CLUSTER SLOTS and returns the
// first answer.
func (c *Cluster) slots(ctx context.Context) ([]slotRange, error) {
	var errs []error
	for _, s := range c.nodes {
		if !s.live() {
			continue
		}
		r, err := s.clusterSlots(ctx)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no live node answered CLUSTER SLOTS: %w", errors.Join(errs...))
}

// MasterFor returns the node currently serving key's hash slot, as the first
// live node that answers CLUSTER SLOTS sees it. During a failover nodes may
// disagree; call WaitHealthy or WaitFailover first for a settled answer.
func (c *Cluster) MasterFor(key string) *Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slot := KeySlot(key)
	ranges, err := c.slots(ctx)
	if err == nil {
		for _, r := range ranges {
			if slot >= r.start && slot <= r.end {
				if s := c.node(r.master); s != nil {
					return s
				}
				err = fmt.Errorf("slot %d is served by %s, which is not a node of this cluster", slot, r.master)
				break
			}
		}
		if err == nil {
			err = fmt.Errorf("slot %d is not served by any node", slot)
		}
	}
	c.fatalf("redistest: MasterFor(%q): %v", key, err)
	return nil
}

// Masters returns the nodes currently serving slots, in the order of Nodes.
func (c *Cluster) Masters() []*Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ranges, err := c.slots(ctx)
	if err != nil {
		c.fatalf("redistest: Masters: %v", err)
		return nil
	}
	var out []*Server
	for _, s := range c.nodes {
		for _, r := range ranges {
			if r.master == s.Addr() {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// ReplicasOf returns the nodes currently replicating master (those CLUSTER
// SLOTS lists for its slots).
func (c *Cluster) ReplicasOf(master *Server) []*Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ranges, err := c.slots(ctx)
	if err != nil {
		c.fatalf("redistest: ReplicasOf: %v", err)
		return nil
	}
	var out []*Server
	for _, r := range ranges {
		if r.master != master.Addr() {
			continue
		}
		for _, a := range r.replicas {
			if s := c.node(a); s != nil && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// WaitHealthy waits up to timeout until the cluster, as seen by its live
// nodes (running and not paused), has settled, and fails the test with the
// last observation otherwise. Settled means: every live node reports
// cluster_state:ok; all of them return the same CLUSTER SLOTS; those cover
// all 16384 slots; every address listed there is a live node and every live
// node is listed; every live replica's link to its master is up. A killed or
// paused node therefore has to be failed over (or, as a replica, dropped)
// before the cluster counts as healthy again.
func (c *Cluster) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.waitHealthy(ctx); err != nil {
		tb.Fatalf("redistest: cluster not healthy after %v: %v", timeout, err)
	}
}

func (c *Cluster) waitHealthy(ctx context.Context) error {
	return poll(ctx, func() error { return c.checkHealthy(ctx) })
}

func (c *Cluster) checkHealthy(ctx context.Context) error {
	var live []*Server
	for _, s := range c.nodes {
		if s.live() {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return errors.New("no live node")
	}
	var want []slotRange
	var wantFrom string
	for _, s := range live {
		info, err := s.admin().ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", s.Addr())
		}
		got, err := s.clusterSlots(ctx)
		if err != nil {
			return err
		}
		if want == nil {
			want, wantFrom = got, s.Addr()
		} else if !slices.EqualFunc(got, want, slotRange.equal) {
			return fmt.Errorf("CLUSTER SLOTS differ: %s sees %v, %s sees %v", wantFrom, want, s.Addr(), got)
		}
	}
	covered := 0
	listed := map[string]bool{}
	for _, r := range want {
		covered += r.end - r.start + 1
		for _, a := range append([]string{r.master}, r.replicas...) {
			s := c.node(a)
			if s == nil || !s.live() {
				return fmt.Errorf("CLUSTER SLOTS lists %s for slots %d-%d, which is not a live node", a, r.start, r.end)
			}
			listed[a] = true
		}
	}
	if covered != SlotCount {
		return fmt.Errorf("%d of %d slots covered: %v", covered, SlotCount, want)
	}
	for _, s := range live {
		if !listed[s.Addr()] {
			return fmt.Errorf("live node %s is neither a master with slots nor a replica in CLUSTER SLOTS %v", s.Addr(), want)
		}
		info, err := s.admin().Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("INFO replication on %s: %w", s.Addr(), err)
		}
		if strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica %s: link to its master is not up", s.Addr())
		}
	}
	c.mu.Lock()
	c.topo = want
	c.mu.Unlock()
	return nil
}

// WaitFailover waits up to timeout for the slots that master served, as
// of the last time the cluster was seen healthy, to be served by another node
// (a promoted replica), and for the cluster to be healthy again (see
// WaitHealthy); it returns the new master. Kill or Pause master first; with
// DefaultNodeTimeout a replica takes over within a few seconds.
func (c *Cluster) WaitFailover(tb testing.TB, master *Server, timeout time.Duration) *Server {
	tb.Helper()
	c.mu.Lock()
	slot := -1
	for _, r := range c.topo {
		if r.master == master.Addr() {
			slot = r.start
			break
		}
	}
	c.mu.Unlock()
	if slot < 0 {
		tb.Fatalf("redistest: WaitFailover: %s was not a master when the cluster was last healthy", master.Addr())
		return nil
	}
	c.WaitHealthy(tb, timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.topo {
		if slot >= r.start && slot <= r.end {
			s := c.node(r.master)
			if s == master {
				tb.Fatalf("redistest: WaitFailover: %s still serves slot %d", master.Addr(), slot)
			}
			return s
		}
	}
	tb.Fatalf("redistest: WaitFailover: slot %d is not served", slot)
	return nil
}

// fatalf reports through the test owning the nodes, or panics for the
// shared cluster.
func (c *Cluster) fatalf(format string, args ...any) { c.nodes[0].fatalf(format, args...) }

func (r slotRange) equal(o slotRange) bool {
	return r.start == o.start && r.end == o.end && r.master == o.master && slices.Equal(r.replicas, o.replicas)
}

func (r slotRange) String() string {
	return fmt.Sprintf("%d-%d:%s%v", r.start, r.end, r.master, r.replicas)
}

// clusterSlots returns the node's CLUSTER SLOTS, sorted by start slot.
func (s *Server) clusterSlots(ctx context.Context) ([]slotRange, error) {
	raw, err := s.admin().ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS on %s: %w", s.Addr(), err)
	}
	out := make([]slotRange, 0, len(raw))
	for _, cs := range raw {
		if len(cs.Nodes) == 0 {
			continue
		}
		r := slotRange{start: cs.Start, end: cs.End, master: cs.Nodes[0].Addr}
		for _, n := range cs.Nodes[1:] {
			r.replicas = append(r.replicas, n.Addr)
		}
		slices.Sort(r.replicas)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b slotRange) int { return a.start - b.start })
	return out, nil
}

// admin returns the server's own client for harness queries: short
// timeouts, no retries, closed when the server is stopped.
func (s *Server) admin() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminClient == nil {
		s.adminClient = redis.NewClient(&redis.Options{
			Addr:            s.Addr(),
			MaxRetries:      -1,
			DialerRetries:   1,
			DialTimeout:     time.Second,
			ReadTimeout:     2 * time.Second,
			PoolSize:        2,
			DisableIdentity: true,
		})
	}
	return s.adminClient
}

// KeySlot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key, or of its hash tag (the bytes between the first '{' and the next '}',
// when not empty), modulo 16384. It answers like CLUSTER KEYSLOT.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % SlotCount
}

// The cluster SharedCluster hands out, started once per test binary and
// stopped by Main.
var shared struct {
	once sync.Once
	dir  string
	c    *Cluster
	err  error
}

// SharedCluster returns a cluster of 3 masters with 1 replica each, started
// the first time it is called in the test binary and stopped by Main, which
// the package's TestMain must call (the test fails otherwise). Sharing saves
// the two seconds a cluster takes to start. Tests using it must isolate
// their keys with Prefix and must not kill, pause or reconfigure its nodes:
// tests that inject faults start their own cluster with StartCluster.
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if !mainActive.Load() {
		tb.Fatalf("redistest: SharedCluster needs the package's TestMain to call redistest.Main, which stops the cluster")
	}
	run := BinaryRunner(RequireServer(tb))
	shared.once.Do(func() {
		cfg := ClusterConfig{Masters: 3, Replicas: 1}
		if shared.err = cfg.validate(); shared.err != nil {
			return
		}
		shared.dir, shared.err = os.MkdirTemp("", "bulwark-redistest-cluster-")
		if shared.err != nil {
			return
		}
		dirs := make([]string, cfg.nodeCount())
		for i := range dirs {
			dirs[i] = filepath.Join(shared.dir, "node"+strconv.Itoa(i))
			if shared.err = os.Mkdir(dirs[i], 0o700); shared.err != nil {
				return
			}
		}
		shared.c, shared.err = buildCluster(run, dirs, nil, cfg)
	})
	if shared.err != nil {
		tb.Fatalf("redistest: shared cluster: %v", shared.err)
	}
	return shared.c
}

// stopShared stops the cluster started by SharedCluster, if any, and removes
// its files.
func stopShared() {
	if shared.c != nil {
		shared.c.stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// Proxies starts a Proxy in front of every node, in the order of Nodes,
// closed at the test's cleanup. Pass them to ViaProxies to make a cluster
// client use them:
//
//	proxies := c.Proxies(t)
//	cc := c.Client(t, redistest.ViaProxies(proxies...))
//	proxies[0].Blackhole(true) // the first node goes silent for cc only
func (c *Cluster) Proxies(tb testing.TB) []*Proxy {
	tb.Helper()
	out := make([]*Proxy, len(c.nodes))
	for i, s := range c.nodes {
		out[i] = NewProxy(tb, s.Addr())
	}
	return out
}
