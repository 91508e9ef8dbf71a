package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartSentinelRejectsNegativeReplicas(t *testing.T) {
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { StartSentinel(tb, -1) })
	if !r.fatal {
		t.Fatal("StartSentinel(tb, -1) did not fail")
	}
}

// TestSentinelWithoutReplicas: a deployment may have no replica; it
// serves writes, and Failover refuses at once instead of waiting.
func TestSentinelWithoutReplicas(t *testing.T) {
	s := StartSentinel(t, 0)
	m := checkShape(t, s, 0)
	if m != s.Servers()[0] || len(s.Servers()) != 1 {
		t.Fatalf("Master() = %s, Servers() = %v", m.Addr(), addrs(s.Servers()))
	}
	c := s.Client(t)
	if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	r := &recorder{TB: t}
	r.run(func(tb testing.TB) { s.Failover(tb) })
	if !r.fatal {
		t.Fatal("Failover of a deployment without replicas did not fail")
	}
}

// checkShape checks that s has one master and want replicas, that the
// sentinels agree with the servers about the roles, and returns the master.
func checkShape(t *testing.T, s *Sentinel, want int) *Server {
	t.Helper()
	m := s.Master()
	if info := s.roleOf(t, m); info != "master" {
		t.Fatalf("Master() %s reports role %q", m.Addr(), info)
	}
	reps := s.Replicas()
	if len(reps) != want {
		t.Fatalf("Replicas() = %d servers, want %d", len(reps), want)
	}
	for _, r := range reps {
		if r == m {
			t.Fatalf("master %s is listed among the replicas", m.Addr())
		}
		if info := s.roleOf(t, r); info != "slave" {
			t.Fatalf("replica %s reports role %q", r.Addr(), info)
		}
	}
	return m
}

func (s *Sentinel) roleOf(t *testing.T, srv *Server) string {
	t.Helper()
	info, err := replicationInfo(context.Background(), srv)
	if err != nil {
		t.Fatal(err)
	}
	return info["role"]
}

// setReplicated writes key=val through c and waits until every replica of
// the deployment acknowledged it (WAIT), then reads it back on each.
func setReplicated(t *testing.T, s *Sentinel, c *redis.Client, key, val string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Set(ctx, key, val, 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	reps := s.Replicas()
	n, err := c.Wait(ctx, len(reps), 5*time.Second).Result()
	if err != nil || n != int64(len(reps)) {
		t.Fatalf("WAIT %d: %d replicas acknowledged, err %v", len(reps), n, err)
	}
	for _, r := range reps {
		if got := r.Do(t, "GET", key); got != val {
			t.Errorf("GET %s on replica %s = %v, want %q", key, r.Addr(), got, val)
		}
	}
}

// TestSentinelFailover: a deployment starts with the shape asked for; a
// write on the master is read on the replicas after WAIT; replicas refuse
// writes; SENTINEL FAILOVER promotes a replica that holds the data; the
// failover client follows it without an error.
func TestSentinelFailover(t *testing.T) {
	start := time.Now()
	s := StartSentinel(t, 2)
	t.Logf("deployment up in %v", time.Since(start).Round(time.Millisecond))

	if s.MasterName() != SentinelMasterName {
		t.Errorf("MasterName() = %q", s.MasterName())
	}
	if n := len(s.SentinelAddrs()); n != SentinelCount || len(s.Sentinels()) != SentinelCount {
		t.Fatalf("%d sentinel addresses, %d sentinels, want %d", n, len(s.Sentinels()), SentinelCount)
	}
	if n := len(s.Servers()); n != 3 {
		t.Fatalf("Servers() = %d, want 3", n)
	}
	old := checkShape(t, s, 2)
	if old != s.Servers()[0] {
		t.Fatalf("Master() = %s, want the first server %s", old.Addr(), s.Servers()[0].Addr())
	}
	for _, sen := range s.Sentinels() {
		if got := sen.Do(t, "ROLE").([]any)[0]; got != "sentinel" {
			t.Errorf("%s ROLE = %v, want sentinel", sen.Addr(), got)
		}
	}

	c := s.Client(t)
	ctx := context.Background()
	setReplicated(t, s, c, "k", "v1")
	_, err := s.Replicas()[0].Exec(ctx, "SET", "k", "x")
	if !redis.IsReadOnlyError(err) {
		t.Errorf("SET on a replica: %v, want a READONLY error", err)
	}

	// A restarted replica comes back as a replica (its configuration file
	// says so) and resynchronizes.
	r := s.Replicas()[1]
	r.Restart()
	if m := s.WaitMaster(t, "", 10*time.Second); m != old {
		t.Fatalf("after a replica restart the master is %s, want %s", m.Addr(), old.Addr())
	}
	if got := s.roleOf(t, r); got != "slave" {
		t.Fatalf("restarted replica %s has role %q", r.Addr(), got)
	}
	if got := r.Do(t, "GET", "k"); got != "v1" {
		t.Fatalf("GET k on the restarted replica = %v, want v1", got)
	}

	start = time.Now()
	nm := s.Failover(t)
	t.Logf("SENTINEL FAILOVER done in %v", time.Since(start).Round(time.Millisecond))
	if nm == old || !slices.Contains(s.Servers()[1:], nm) {
		t.Fatalf("new master %s, want one of the old replicas", nm.Addr())
	}
	if m := s.Master(); m != nm {
		t.Fatalf("Master() = %s after Failover returned %s", m.Addr(), nm.Addr())
	}
	if got := nm.Do(t, "GET", "k"); got != "v1" {
		t.Fatalf("GET k on the new master = %v, want v1", got)
	}
	reps := s.Replicas()
	if len(reps) == 0 || slices.Contains(reps, nm) {
		t.Fatalf("Replicas() after failover = %v", addrs(reps))
	}

	// The client follows the switch: its writes land on the new master
	// once it has heard of it, and none fails on the way.
	landed := false
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !landed && time.Now().Before(deadline); i++ {
		v := fmt.Sprint("after-", i)
		if err := c.Set(ctx, "k2", v, 0).Err(); err != nil {
			t.Fatalf("SET through the failover client after the failover: %v", err)
		}
		landed = nm.Do(t, "GET", "k2") == v
		if !landed {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !landed {
		t.Fatalf("the failover client still writes elsewhere than the new master %s", nm.Addr())
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET k through the client = %q, %v", got, err)
	}
}

// TestSentinelMasterCrash: after a SIGKILL of the master the sentinels
// promote a replica by themselves; the failover client recovers and finds
// the data written with WAIT before the crash.
func TestSentinelMasterCrash(t *testing.T) {
	s := StartSentinel(t, 2)
	c := s.Client(t, func(o *redis.FailoverOptions) {
		o.DialTimeout = 200 * time.Millisecond
		o.MaxRetries = -1 // report every failure: the test retries itself
	})
	setReplicated(t, s, c, "k", "v1")

	old := s.Master()
	start := time.Now()
	old.Kill()
	nm := s.WaitMaster(t, old.Addr(), 15*time.Second)
	t.Logf("replica %s promoted %v after the crash of %s", nm.Addr(), time.Since(start).Round(time.Millisecond), old.Addr())
	if nm == old || !slices.Contains(s.Servers()[1:], nm) {
		t.Fatalf("new master %s, want one of the old replicas", nm.Addr())
	}
	if reps := s.Replicas(); len(reps) != 1 || reps[0] == nm || reps[0] == old {
		t.Fatalf("Replicas() after the crash = %v, want the other replica", addrs(reps))
	}

	ctx := context.Background()
	var lastErr error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if lastErr = c.Set(ctx, "k2", "v2", 0).Err(); lastErr == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("the failover client did not recover: %v", lastErr)
	}
	if got := nm.Do(t, "GET", "k2"); got != "v2" {
		t.Fatalf("GET k2 on the new master = %v: the client wrote elsewhere", got)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET k through the client = %q, %v; want the value acknowledged by WAIT", got, err)
	}
	if got, err := c.Do(ctx, "ROLE").Slice(); err != nil || got[0] != "master" {
		t.Fatalf("ROLE through the client = %v, %v", got, err)
	}
}

func addrs(servers []*Server) string {
	var b strings.Builder
	for i, s := range servers {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Addr())
	}
	return "[" + b.String() + "]"
}
