package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestKeySlotMatchesRedis(t *testing.T) {
	s := SharedCluster(t).Nodes()[0]
	keys := []string{"", "a", "foo", "{user1000}.following", "{}x", "x{}", "a{b}c{d}", "}{", "{{a}}", "\x00\xff", "123456789"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("key:%d:{tag%d}", i, i%7))
	}
	for _, k := range keys {
		want := s.Do(t, "CLUSTER", "KEYSLOT", k)
		if got := KeySlot(k); int64(got) != want {
			t.Errorf("KeySlot(%q) = %d, CLUSTER KEYSLOT says %v", k, got, want)
		}
	}
	if got := KeySlot("123456789"); got != 0x31C3%SlotCount {
		t.Errorf("KeySlot(123456789) = %#x, want CRC16/XMODEM check value 0x31c3", got)
	}
}

func TestStartClusterRejectsBadShape(t *testing.T) {
	for _, cfg := range []ClusterConfig{{Masters: 0}, {Masters: 3, Replicas: -1}, {Masters: 1, NodeTimeout: -time.Second}} {
		r := &recorder{TB: t}
		r.run(func(tb testing.TB) { StartClusterConfig(tb, cfg) })
		if !r.fatal {
			t.Errorf("StartClusterConfig(%+v) did not fail", cfg)
		}
	}
}

// TestClusterThreeMasters checks the replica-less shape: keys spread over
// the masters and MasterFor names the node that holds each key.
func TestClusterThreeMasters(t *testing.T) {
	c := StartCluster(t, 3, 0)
	checkSpreadAndMasterFor(t, c, 3)
	if n := len(c.Nodes()); n != 3 {
		t.Fatalf("Nodes() has %d nodes, want 3", n)
	}
}

func TestSharedCluster(t *testing.T) {
	c := SharedCluster(t)
	if c2 := SharedCluster(t); c2 != c {
		t.Fatal("SharedCluster returned two clusters")
	}
	if n := len(c.Nodes()); n != 6 {
		t.Fatalf("shared cluster has %d nodes, want 3 masters + 3 replicas", n)
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("Masters() = %d nodes, want 3", len(masters))
	}
	for _, m := range masters {
		if r := c.ReplicasOf(m); len(r) != 1 || r[0] == m {
			t.Fatalf("ReplicasOf(%s) = %v, want one other node", m.Addr(), r)
		}
	}
	checkSpreadAndMasterFor(t, c, 3)
	c.WaitHealthy(t, 10*time.Second)
}

func checkSpreadAndMasterFor(t *testing.T, c *Cluster, masters int) {
	t.Helper()
	ctx := context.Background()
	cc := c.Client(t)
	p := Prefix(t, cc)
	perNode := map[*Server]int{}
	for i := range 300 {
		k := fmt.Sprintf("%sk%d", p, i)
		if err := cc.Set(ctx, k, i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		m := c.MasterFor(k)
		perNode[m]++
		// The named master holds the key; another master redirects.
		if got := m.Do(t, "GET", k); got != fmt.Sprint(i) {
			t.Fatalf("GET %s on MasterFor = %v, want %d", k, got, i)
		}
		for _, other := range c.Masters() {
			if other == m {
				continue
			}
			_, err := other.Exec(ctx, "GET", k)
			if err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
				t.Fatalf("GET %s on %s (not its master): %v, want MOVED", k, other.Addr(), err)
			}
			break
		}
	}
	if len(perNode) != masters {
		t.Fatalf("300 keys landed on %d masters, want all %d", len(perNode), masters)
	}
	for s, n := range perNode {
		if n < 50 {
			t.Errorf("master %s holds only %d of 300 keys", s.Addr(), n)
		}
	}
	if got := len(Keys(t, cc, p)); got != 300 {
		t.Fatalf("Keys over all masters found %d keys, want 300", got)
	}
	CheckTTLs(t, cc, p, time.Minute)
}

func TestClusterCheckTTLsOnEveryMaster(t *testing.T) {
	c := SharedCluster(t)
	cc := c.Client(t)
	ctx := context.Background()
	p := Prefix(t, cc)
	// One key without TTL on each master.
	seen := map[*Server]bool{}
	for i := 0; len(seen) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("%sk%d", p, i)
		if m := c.MasterFor(k); !seen[m] {
			seen[m] = true
			cc.Set(ctx, k, "v", 0)
		}
	}
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { CheckTTLs(tb, cc, p, time.Minute) })
	if len(r.errors) != 3 {
		t.Fatalf("CheckTTLs reported %q, want one key per master", r.errors)
	}
}

// TestClusterFailover kills the master of a key and checks that its replica
// takes over, that the data acknowledged by the replica survives, that a
// cluster client recovers on its own, and that the old master rejoins as a
// replica after a restart.
func TestClusterFailover(t *testing.T) {
	c := StartCluster(t, 3, 1)
	ctx := context.Background()
	cc := c.Client(t, func(o *redis.ClusterOptions) {
		o.DialerRetries = 1 // a dead node is refused at once; don't redial it 5 times
		o.DialTimeout = 200 * time.Millisecond
		o.ReadTimeout = 500 * time.Millisecond
	})
	const key = "failover-key"
	old := c.MasterFor(key)
	replicas := c.ReplicasOf(old)
	if len(replicas) != 1 {
		t.Fatalf("ReplicasOf(master) = %v, want 1", replicas)
	}
	// Write on the master and wait until the replica has it.
	direct := old.Client(t, func(o *redis.Options) { o.PoolSize = 1 })
	pipe := direct.Pipeline()
	pipe.Set(ctx, key, "before", 0)
	wait := pipe.Do(ctx, "WAIT", 1, 5000)
	if _, err := pipe.Exec(ctx); err != nil || wait.Val() != int64(1) {
		t.Fatalf("SET + WAIT: %v, %v", wait.Val(), err)
	}
	if err := cc.Get(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	old.Kill()
	promoted := c.WaitFailover(t, old, 30*time.Second)
	if promoted != replicas[0] {
		t.Fatalf("WaitFailover returned %s, want the replica %s", promoted.Addr(), replicas[0].Addr())
	}
	t.Logf("failover took %v", time.Since(t0))
	t0 = time.Now()
	if m := c.MasterFor(key); m != promoted {
		t.Fatalf("MasterFor after failover = %s, want %s", m.Addr(), promoted.Addr())
	}

	// The client recovers without help: dial errors, then MOVED, then a reload.
	deadline := time.Now().Add(30 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = cc.Get(ctx, key).Result(); err == nil {
			break
		}
	}
	if err != nil || got != "before" {
		t.Fatalf("GET through the cluster client after failover = %q, %v; want the replicated value", got, err)
	}
	if err := cc.Set(ctx, key, "after", 0).Err(); err != nil {
		t.Fatalf("SET after failover: %v", err)
	}
	t.Logf("client recovered in %v", time.Since(t0))
	t0 = time.Now()

	old.Restart()
	c.WaitHealthy(t, 30*time.Second)
	if r := c.ReplicasOf(promoted); len(r) != 1 || r[0] != old {
		t.Fatalf("after restart ReplicasOf(new master) = %v, want the old master", r)
	}
	var moved error
	if _, moved = old.Exec(ctx, "GET", key); moved == nil || !strings.HasPrefix(moved.Error(), "MOVED") {
		t.Fatalf("GET on the restarted old master: %v, want MOVED (it is a replica now)", moved)
	}
}

// TestClusterPausedMasterFailsOver pauses instead of killing: a hung master
// is failed over too.
func TestClusterPausedMasterFailsOver(t *testing.T) {
	c := StartClusterConfig(t, ClusterConfig{Masters: 3, Replicas: 1, NodeTimeout: 500 * time.Millisecond})
	m := c.Masters()[0]
	m.Pause()
	promoted := c.WaitFailover(t, m, 30*time.Second)
	if promoted == m {
		t.Fatal("the paused master still serves its slots")
	}
	m.Resume()
	c.WaitHealthy(t, 30*time.Second)
	for _, s := range c.Masters() {
		if s == m {
			t.Fatal("the resumed old master still counts as a master")
		}
	}
}

func TestWaitFailoverNeedsAMaster(t *testing.T) {
	c := SharedCluster(t)
	replica := c.ReplicasOf(c.Masters()[0])[0]
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { c.WaitFailover(tb, replica, time.Second) })
	if !r.fatal {
		t.Fatal("WaitFailover on a replica did not fail")
	}
}

func TestClusterViaProxies(t *testing.T) {
	c := SharedCluster(t)
	proxies := c.Proxies(t)
	cc := c.Client(t, ViaProxies(proxies...), func(o *redis.ClusterOptions) {
		o.ReadTimeout = 100 * time.Millisecond
		o.MaxRetries = -1
	})
	ctx := context.Background()
	p := Prefix(t, cc)

	// One key per master, written through the proxies.
	keyOf := map[*Server]string{}
	for i := 0; len(keyOf) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("%sk%d", p, i)
		if m := c.MasterFor(k); keyOf[m] == "" {
			keyOf[m] = k
			if err := cc.Set(ctx, k, "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	proxyOf := map[*Server]*Proxy{}
	for i, s := range c.Nodes() {
		proxyOf[s] = proxies[i]
	}
	for m := range keyOf {
		if proxyOf[m].Conns() == 0 {
			t.Fatalf("no connection went through the proxy of master %s", m.Addr())
		}
	}

	// Silence one master's proxy: only its keys time out.
	var silenced *Server
	for m := range keyOf {
		silenced = m
		break
	}
	proxyOf[silenced].Blackhole(true)
	for m, k := range keyOf {
		err := cc.Get(ctx, k).Err()
		if m == silenced && !isTimeout(err) {
			t.Fatalf("GET of a key on the blackholed master: %v, want a timeout", err)
		}
		if m != silenced && err != nil {
			t.Fatalf("GET of a key on a healthy master: %v", err)
		}
	}
	proxyOf[silenced].Blackhole(false)
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cc.Get(ctx, keyOf[silenced]).Err(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("GET after the blackhole ended: %v", err)
	}
}

func TestPrefixCleanupOnCluster(t *testing.T) {
	c := SharedCluster(t)
	cc := c.Client(t)
	var p string
	t.Run("writer", func(t *testing.T) {
		p = Prefix(t, cc)
		for i := range 100 {
			if err := cc.Set(context.Background(), fmt.Sprintf("%s%d", p, i), "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(Keys(t, cc, p)); n != 100 {
			t.Fatalf("Keys found %d of 100 keys", n)
		}
	})
	if n := len(Keys(t, cc, p)); n != 0 {
		t.Fatalf("%d keys left on the cluster after Prefix's cleanup", n)
	}
}

func TestSharedClusterNeedsMain(t *testing.T) {
	mainActive.Store(false)
	defer mainActive.Store(true)
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { SharedCluster(tb) })
	if !r.fatal || !strings.Contains(strings.Join(r.errors, ""), "redistest.Main") {
		t.Fatalf("SharedCluster without Main: fatal=%v %q; want a failure naming redistest.Main", r.fatal, r.errors)
	}
}
