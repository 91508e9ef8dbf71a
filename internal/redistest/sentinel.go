package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settings of the Sentinel deployments StartSentinel builds.
const (
	// SentinelMasterName is the name under which the sentinels monitor the
	// master (FailoverOptions.MasterName).
	SentinelMasterName = "mymaster"
	// SentinelCount is the number of sentinels of a deployment.
	SentinelCount = 3
	// SentinelQuorum is how many sentinels must agree that the master is
	// down before one of them may fail it over.
	SentinelQuorum = 2
	// SentinelDownAfter is down-after-milliseconds: a master that answers
	// no PING for this long is subjectively down for a sentinel. With it a
	// crashed master is replaced within about two to four seconds.
	SentinelDownAfter = 500 * time.Millisecond
	// SentinelFailoverTimeout is failover-timeout: how long a failover may
	// take before a sentinel gives up on it, and half the pause before the
	// same sentinel tries to fail the same master over again.
	SentinelFailoverTimeout = 2 * time.Second
	// SentinelWaitTimeout bounds how long StartSentinel waits for the
	// deployment to settle and Sentinel.Failover for the switch to a new
	// master.
	SentinelWaitTimeout = 20 * time.Second
)

// Sentinel is a Redis Sentinel deployment on loopback ports: one master,
// its replicas and SentinelCount sentinels monitoring the master as
// SentinelMasterName with quorum SentinelQuorum, SentinelDownAfter and
// SentinelFailoverTimeout (parallel-syncs 1).
//
// Every process is a [Server]: tests kill, pause and restart data servers
// and sentinels alike to provoke a failover, and then call WaitMaster (or
// call Failover, which asks a sentinel to fail over at once). Sentinel
// rewrites the configuration files of the servers it reconfigures, so a
// restarted server comes back with the role Sentinel last gave it; a
// restarted master that was failed over comes back as a master with an
// empty data set, which Sentinel turns into a replica some ten seconds
// later (Sentinel waits that long before reconfiguring a node that claims to
// be a master).
//
// Roles change with failovers: Master and Replicas ask the sentinels for the
// current ones. The methods are safe for concurrent use; those without a
// testing.TB argument report failures through the test that started the
// deployment, so call them from its goroutine.
type Sentinel struct {
	owner     testing.TB
	data      []*Server // the first master, then the replicas, in start order
	sentinels []*Server

	mu      sync.Mutex
	clients map[*Server]*redis.SentinelClient // see sentinelClient
}

// StartSentinel starts a Sentinel deployment of one master and replicas
// replicas (0 or more; failing over needs at least one), stopped at the
// test's cleanup. It returns once every sentinel monitors the master, sees
// every replica with its replication link up and knows the other
// sentinels, which takes about a second.
//
// The data servers are Servers started as StartServer does; each replica
// is attached with REPLICAOF followed by CONFIG REWRITE rather than a
// --replicaof argument, so that a Restart brings back the role last written
// into its configuration file, by the harness or, after a failover, by
// Sentinel. The sentinels
// run as "redis-server sentinel.conf --sentinel --port P" with a writable
// sentinel.conf in their own directories; they are told about each other in
// that file, so they need not wait for each other's hello messages.
func StartSentinel(tb testing.TB, replicas int) *Sentinel {
	tb.Helper()
	return StartSentinelWith(tb, nil, replicas)
}

// StartSentinelWith is StartSentinel with every process started by r (nil:
// the redis-server binary, as StartSentinel).
func StartSentinelWith(tb testing.TB, r Runner, replicas int) *Sentinel {
	tb.Helper()
	if replicas < 0 {
		tb.Fatalf("redistest: Sentinel deployment with %d replicas: want 0 or more", replicas)
		return nil
	}
	run := requireRunner(tb, r)
	s := &Sentinel{owner: tb, clients: make(map[*Server]*redis.SentinelClient)}
	logs := func() {
		for _, srv := range append(slices.Clone(s.data), s.sentinels...) {
			if srv != nil {
				tb.Logf("redistest: log of %s %s:\n%s", s.role(srv), srv.Addr(), tail(srv.Log(), 8<<10))
			}
		}
	}
	if err := s.build(run, tb, replicas); err != nil {
		logs()
		s.stop()
		tb.Fatalf("redistest: start Sentinel deployment: %v", err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			logs()
		}
		s.stop()
	})
	return s
}

// role names srv for logs: "master", "replica" (as started) or "sentinel".
func (s *Sentinel) role(srv *Server) string {
	switch {
	case slices.Contains(s.sentinels, srv):
		return "sentinel"
	case len(s.data) > 0 && s.data[0] == srv:
		return "data server (started as master)"
	default:
		return "data server (started as replica)"
	}
}

// build starts the data servers, attaches the replicas, waits for
// replication, then starts the sentinels and waits until they see it all.
func (s *Sentinel) build(run Runner, owner testing.TB, replicas int) error {
	s.data = make([]*Server, 1+replicas)
	errs := make([]error, len(s.data))
	var wg sync.WaitGroup
	for i := range s.data {
		dir := owner.TempDir()
		wg.Go(func() { s.data[i], errs[i] = newServer(run, dir, owner, false, nil, 0) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), SentinelWaitTimeout)
	defer cancel()
	master := s.data[0]
	for _, r := range s.data[1:] {
		if err := r.admin().ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(master.Port())).Err(); err != nil {
			return fmt.Errorf("REPLICAOF on %s: %w", r.Addr(), err)
		}
		if err := r.admin().ConfigRewrite(ctx).Err(); err != nil {
			return fmt.Errorf("CONFIG REWRITE on %s: %w", r.Addr(), err)
		}
	}
	// The sentinels learn the replicas from the master's INFO, which they
	// ask for as soon as they connect and then only every ten seconds: the
	// replicas must be attached before the sentinels start.
	if err := poll(ctx, func() error { return s.checkReplication(ctx, master, "") }); err != nil {
		return err
	}
	dirs := make([]string, SentinelCount)
	for i := range dirs {
		dirs[i] = owner.TempDir()
	}
	sentinels, err := startSentinels(run, dirs, owner, master.Port())
	s.sentinels = sentinels
	if err != nil {
		return err
	}
	if err := poll(ctx, func() error { return s.checkSettled(ctx, master, "") }); err != nil {
		return fmt.Errorf("deployment did not settle: %w", err)
	}
	return nil
}

// startSentinels starts one sentinel in each of dirs, monitoring the master
// on masterPort. Each sentinel gets a fixed ID and a configuration naming the
// others (known-sentinel), so they form a group at once instead of after a
// round of hello messages. When a chosen port turns out to be taken, all of
// them start again on other ports.
func startSentinels(run Runner, dirs []string, owner testing.TB, masterPort int) ([]*Server, error) {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		servers := make([]*Server, len(dirs))
		ids := make([]string, len(dirs))
		for i, dir := range dirs {
			port, err := pickPort(false)
			if err != nil {
				stopAll(servers)
				return nil, err
			}
			servers[i] = &Server{
				run:   run,
				dir:   dir,
				conf:  filepath.Join(dir, "sentinel.conf"),
				extra: []string{"--sentinel", "--port", strconv.Itoa(port)},
				port:  port,
				owner: owner,
			}
			ids[i] = randomHex(20) // a sentinel ID is 40 hex digits
		}
		for i, srv := range servers {
			if err := srv.writeConfig(sentinelConfig(srv, i, servers, ids, masterPort)); err != nil {
				stopAll(servers)
				return nil, err
			}
		}
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for i, srv := range servers {
			wg.Go(func() { errs[i] = srv.launch() })
		}
		wg.Wait()
		err := errors.Join(errs...)
		if err == nil {
			return servers, nil
		}
		lastErr = err
		stopAll(servers)
		clash := false
		for i, srv := range servers {
			if errs[i] != nil && srv.portTaken() {
				clash = true
			}
		}
		if !clash {
			var b strings.Builder
			for i, srv := range servers {
				if errs[i] != nil {
					fmt.Fprintf(&b, "\nlog of sentinel %s:\n%s", srv.Addr(), tail(srv.Log(), 8<<10))
				}
			}
			return nil, fmt.Errorf("%w%s", err, b.String())
		}
	}
	return nil, fmt.Errorf("no free ports for the sentinels after %d attempts: %w", startAttempts, lastErr)
}

// sentinelConfig is the sentinel.conf of servers[i]: the settings of every
// Server plus the sentinel directives.
func sentinelConfig(srv *Server, i int, servers []*Server, ids []string, masterPort int) string {
	var b strings.Builder
	b.WriteString(srv.config())
	fmt.Fprintf(&b, "sentinel myid %s\n", ids[i])
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", SentinelMasterName, masterPort, SentinelQuorum)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", SentinelMasterName, SentinelDownAfter.Milliseconds())
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", SentinelMasterName, SentinelFailoverTimeout.Milliseconds())
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", SentinelMasterName)
	for j, other := range servers {
		if j != i {
			fmt.Fprintf(&b, "sentinel known-sentinel %s 127.0.0.1 %d %s\n", SentinelMasterName, other.Port(), ids[j])
		}
	}
	return b.String()
}

func (s *Sentinel) stop() {
	stopAll(append(slices.Clone(s.sentinels), s.data...))
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
}

// sentinelClient returns the harness's own client for the sentinel srv:
// short timeouts, no retries, closed when the deployment is stopped.
func (s *Sentinel) sentinelClient(srv *Server) *redis.SentinelClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[srv]
	if c == nil {
		c = redis.NewSentinelClient(&redis.Options{
			Addr:            srv.Addr(),
			MaxRetries:      -1,
			DialerRetries:   1,
			DialTimeout:     time.Second,
			ReadTimeout:     2 * time.Second,
			PoolSize:        2,
			DisableIdentity: true,
		})
		if s.clients != nil { // not stopped: stop closes it
			s.clients[srv] = c
		}
	}
	return c
}

// MasterName returns SentinelMasterName, the name to put in
// redis.FailoverOptions.MasterName.
func (s *Sentinel) MasterName() string { return SentinelMasterName }

// SentinelAddrs returns the sentinels' addresses, for
// redis.FailoverOptions.SentinelAddrs.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, srv := range s.sentinels {
		addrs[i] = srv.Addr()
	}
	return addrs
}

// Sentinels returns the sentinel processes, to kill or pause one.
func (s *Sentinel) Sentinels() []*Server { return slices.Clone(s.sentinels) }

// Servers returns the data servers: the master as started first, then the
// replicas as started. Master and Replicas tell the current roles.
func (s *Sentinel) Servers() []*Server { return slices.Clone(s.data) }

// Client returns a go-redis client for the deployment's master, built with
// redis.NewFailoverClient over every sentinel, with go-redis defaults
// changed by opts; it is closed at the test's cleanup. The client asks a
// sentinel for the master's address whenever it dials and drops its
// connections to the old master when a sentinel announces +switch-master.
func (s *Sentinel) Client(tb testing.TB, opts ...func(*redis.FailoverOptions)) *redis.Client {
	tb.Helper()
	o := &redis.FailoverOptions{MasterName: SentinelMasterName, SentinelAddrs: s.SentinelAddrs()}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewFailoverClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// dataServer returns the data server listening on addr, or nil.
func (s *Sentinel) dataServer(addr string) *Server {
	for _, srv := range s.data {
		if srv.Addr() == addr {
			return srv
		}
	}
	return nil
}

// liveSentinels returns the sentinels that run and are not paused.
func (s *Sentinel) liveSentinels() []*Server {
	var out []*Server
	for _, srv := range s.sentinels {
		if srv.live() {
			out = append(out, srv)
		}
	}
	return out
}

// masterAddr asks the live sentinels, in order, for the master's address
// and returns the first answer.
func (s *Sentinel) masterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, srv := range s.liveSentinels() {
		addr, err := s.askMaster(ctx, srv)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return "", errors.New("no live sentinel")
	}
	return "", errors.Join(errs...)
}

func (s *Sentinel) askMaster(ctx context.Context, srv *Server) (string, error) {
	hp, err := s.sentinelClient(srv).GetMasterAddrByName(ctx, SentinelMasterName).Result()
	if err != nil {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", srv.Addr(), err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: unexpected reply %q", srv.Addr(), hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Master returns the data server that the first live sentinel names as the
// master. During a failover sentinels may disagree or name a server that is
// not yet a master; call WaitMaster first for a settled answer.
func (s *Sentinel) Master() *Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := s.masterAddr(ctx)
	if err == nil {
		if srv := s.dataServer(addr); srv != nil {
			return srv
		}
		err = fmt.Errorf("the sentinels name %s, which is not a data server of this deployment", addr)
	}
	s.owner.Helper()
	s.owner.Fatalf("redistest: Sentinel.Master: %v", err)
	return nil
}

// Replicas returns the data servers that the first live sentinel lists as
// replicas of the current master and does not flag as down or
// disconnected, in the order of Servers. A replica still loading the
// master's data set is included.
func (s *Sentinel) Replicas() []*Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range s.liveSentinels() {
		rows, err := s.sentinelClient(srv).Replicas(ctx, SentinelMasterName).Result()
		if err != nil {
			errs = append(errs, fmt.Errorf("SENTINEL REPLICAS on %s: %w", srv.Addr(), err))
			continue
		}
		good := map[string]bool{}
		for _, row := range rows {
			if !flagged(row["flags"], "s_down", "o_down", "disconnected") {
				good[net.JoinHostPort(row["ip"], row["port"])] = true
			}
		}
		var out []*Server
		for _, d := range s.data {
			if good[d.Addr()] {
				out = append(out, d)
			}
		}
		return out
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no live sentinel"))
	}
	s.owner.Helper()
	s.owner.Fatalf("redistest: Sentinel.Replicas: %v", errors.Join(errs...))
	return nil
}

// flagged reports whether the comma-separated flags of a SENTINEL reply
// hold any of names.
func flagged(flags string, names ...string) bool {
	for _, f := range strings.Split(flags, ",") {
		if slices.Contains(names, f) {
			return true
		}
	}
	return false
}

// Failover asks a sentinel to fail the master over at once (SENTINEL
// FAILOVER, which needs no agreement of the others), waits as WaitMaster
// does for a replica to take over, and returns the new master. It retries
// the command while the sentinel answers that a failover is already in
// progress or that it knows no replica fit to promote yet (just after a
// previous failover it first has to hear from the replicas).
//
// The old master keeps running as a master until Sentinel turns it into a
// replica of the new one some ten seconds later; writes that reach it in
// the meantime are lost then. A deployment without replicas cannot fail
// over: Failover fails the test at once.
func (s *Sentinel) Failover(tb testing.TB) *Server {
	tb.Helper()
	if len(s.data) < 2 {
		tb.Fatalf("redistest: Sentinel.Failover: the deployment has no replica to promote")
		return nil
	}
	old := s.Master()
	ctx, cancel := context.WithTimeout(context.Background(), SentinelWaitTimeout)
	defer cancel()
	var refused error // an answer that retrying does not change
	err := poll(ctx, func() error {
		live := s.liveSentinels()
		if len(live) == 0 {
			return errors.New("no live sentinel")
		}
		err := s.sentinelClient(live[0]).Failover(ctx, SentinelMasterName).Err()
		if err == nil {
			return nil
		}
		if msg := err.Error(); strings.HasPrefix(msg, "INPROG") || strings.HasPrefix(msg, "NOGOODSLAVE") {
			return err // try again
		}
		refused = err
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		tb.Fatalf("redistest: SENTINEL FAILOVER %s: %v", SentinelMasterName, err)
		return nil
	}
	deadline, _ := ctx.Deadline()
	return s.WaitMaster(tb, old.Addr(), time.Until(deadline))
}

// WaitMaster waits up to timeout until the deployment has settled on a
// master other than the one at notAddr ("" accepts any), and returns it; it
// fails the test with the last observation otherwise. Kill or pause the
// master first, or use Failover; with SentinelDownAfter a crashed master is
// replaced within a few seconds.
//
// Settled means, leaving aside the server at notAddr and servers that are
// not running or are paused: every sentinel names the same master, does not
// flag it as down or in failover, lists every other data server as its
// replica with the replication link up, and knows the other sentinels; the
// master itself reports role:master; every other data server reports being
// its replica with the link up. Requests through a failover client then
// reach the new master once the client has heard of the switch (at once
// for new connections, which ask a sentinel).
func (s *Sentinel) WaitMaster(tb testing.TB, notAddr string, timeout time.Duration) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var master *Server
	err := poll(ctx, func() error {
		addr, err := s.masterAddr(ctx)
		if err != nil {
			return err
		}
		if addr == notAddr {
			return fmt.Errorf("the sentinels still name %s as the master", addr)
		}
		m := s.dataServer(addr)
		if m == nil {
			return fmt.Errorf("the sentinels name %s, which is not a data server of this deployment", addr)
		}
		if err := s.checkSettled(ctx, m, notAddr); err != nil {
			return err
		}
		master = m
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: Sentinel deployment did not settle on a new master within %v: %v", timeout, err)
		return nil
	}
	return master
}

// checkSettled checks the conditions WaitMaster documents for master.
func (s *Sentinel) checkSettled(ctx context.Context, master *Server, notAddr string) error {
	if !master.live() {
		return fmt.Errorf("master %s is not running or paused", master.Addr())
	}
	if err := s.checkReplication(ctx, master, notAddr); err != nil {
		return err
	}
	live := s.liveSentinels()
	if len(live) == 0 {
		return errors.New("no live sentinel")
	}
	for _, sen := range live {
		if err := s.checkSentinelView(ctx, sen, master, notAddr); err != nil {
			return err
		}
	}
	return nil
}

// checkReplication checks that master reports role:master and that every
// other live data server but the one at notAddr is its replica with the
// replication link up.
func (s *Sentinel) checkReplication(ctx context.Context, master *Server, notAddr string) error {
	info, err := replicationInfo(ctx, master)
	if err != nil {
		return err
	}
	if info["role"] != "master" {
		return fmt.Errorf("%s reports role %q, not master", master.Addr(), info["role"])
	}
	for _, d := range s.data {
		if d == master || d.Addr() == notAddr || !d.live() {
			continue
		}
		info, err := replicationInfo(ctx, d)
		if err != nil {
			return err
		}
		of := net.JoinHostPort(info["master_host"], info["master_port"])
		if info["role"] != "slave" || of != master.Addr() || info["master_link_status"] != "up" {
			return fmt.Errorf("%s is not yet a linked replica of %s: role %q, master %s, link %q",
				d.Addr(), master.Addr(), info["role"], of, info["master_link_status"])
		}
	}
	return nil
}

// checkSentinelView checks what the sentinel sen believes: master is the
// master, not flagged down or in failover; every other live data server but
// the one at notAddr is a healthy replica of it; every other live sentinel
// is known and not flagged down.
func (s *Sentinel) checkSentinelView(ctx context.Context, sen, master *Server, notAddr string) error {
	c := s.sentinelClient(sen)
	addr, err := s.askMaster(ctx, sen)
	if err != nil {
		return err
	}
	if addr != master.Addr() {
		return fmt.Errorf("sentinel %s names %s as the master, not %s", sen.Addr(), addr, master.Addr())
	}
	m, err := c.Master(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL MASTER on %s: %w", sen.Addr(), err)
	}
	if m["flags"] != "master" {
		return fmt.Errorf("sentinel %s flags the master %s as %q", sen.Addr(), master.Addr(), m["flags"])
	}
	rows, err := c.Replicas(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL REPLICAS on %s: %w", sen.Addr(), err)
	}
	seen := map[string]map[string]string{}
	for _, row := range rows {
		seen[net.JoinHostPort(row["ip"], row["port"])] = row
	}
	for _, d := range s.data {
		if d == master || d.Addr() == notAddr || !d.live() {
			continue
		}
		row := seen[d.Addr()]
		switch {
		case row == nil:
			return fmt.Errorf("sentinel %s does not list %s as a replica yet", sen.Addr(), d.Addr())
		case row["flags"] != "slave":
			return fmt.Errorf("sentinel %s flags replica %s as %q", sen.Addr(), d.Addr(), row["flags"])
		case row["master-link-status"] != "ok":
			return fmt.Errorf("sentinel %s sees the link of replica %s as %q", sen.Addr(), d.Addr(), row["master-link-status"])
		case net.JoinHostPort(row["master-host"], row["master-port"]) != master.Addr():
			return fmt.Errorf("sentinel %s sees replica %s replicate %s:%s", sen.Addr(), d.Addr(), row["master-host"], row["master-port"])
		}
	}
	peers, err := c.Sentinels(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL SENTINELS on %s: %w", sen.Addr(), err)
	}
	known := map[string]bool{}
	for _, p := range peers {
		if !flagged(p["flags"], "s_down", "o_down", "disconnected") {
			known[net.JoinHostPort(p["ip"], p["port"])] = true
		}
	}
	for _, other := range s.liveSentinels() {
		if other != sen && !known[other.Addr()] {
			return fmt.Errorf("sentinel %s does not know sentinel %s (or flags it down)", sen.Addr(), other.Addr())
		}
	}
	return nil
}

// replicationInfo returns the fields of INFO replication of srv.
func replicationInfo(ctx context.Context, srv *Server) (map[string]string, error) {
	text, err := srv.admin().Info(ctx, "replication").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO replication on %s: %w", srv.Addr(), err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}
