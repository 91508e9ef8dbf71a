package main

import (
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
	"time"

	"github.com/redis/go-redis/v9"
)

// server is a private redis-server started by this program on a free
// loopback port, with persistence off, in a temporary directory of its own.
type server struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// stop kills the server, waits for it and removes its directory.
func (s *server) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = os.RemoveAll(s.dir)
}

// freePort returns a loopback port that was free a moment ago; with bus,
// port+10000 (a cluster node's bus port) was free too.
func freePort(bus bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !bus {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		_ = b.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// startServer starts redis-server (bin) and waits until it answers PING.
// cluster turns cluster mode on. It tries a few ports when one is taken in
// the meantime.
func startServer(bin string, cluster bool) (*server, error) {
	var last error
	for range 5 {
		port, err := freePort(cluster)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "bulwark-fleet-redis-")
		if err != nil {
			return nil, err
		}
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
			"--maxclients", "10000",
		}
		if cluster {
			args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "5000", "--cluster-announce-ip", "127.0.0.1")
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		s := &server{port: port, dir: dir, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.done) }()
		if last = waitPing(s); last == nil {
			return s, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		s.stop()
		if !strings.Contains(string(log), "Address already in use") {
			return nil, fmt.Errorf("%w\nredis-server log:\n%s", last, log)
		}
	}
	return nil, fmt.Errorf("redis-server did not start after 5 ports: %w", last)
}

// waitPing waits up to 10s for s to answer PING.
func waitPing(s *server) error {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: 250 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on %s exited", s.addr())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %w", s.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts a Redis Cluster of masters masters without replicas,
// each holding an equal share of the 16384 slots, and waits until every
// node reports cluster_state:ok.
func startCluster(bin string, masters int) ([]*server, error) {
	nodes := make([]*server, masters)
	errs := make([]error, masters)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i], errs[i] = startServer(bin, true) })
	}
	wg.Wait()
	fail := func(err error) ([]*server, error) {
		stopAll(nodes)
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admins := make([]*redis.Client, masters)
	for i, n := range nodes {
		admins[i] = redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		defer admins[i].Close()
	}
	for i, a := range admins {
		if err := a.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fail(fmt.Errorf("CLUSTER SET-CONFIG-EPOCH: %w", err))
		}
		lo, hi := i*16384/masters, (i+1)*16384/masters-1
		if err := a.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fail(fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d: %w", lo, hi, err))
		}
	}
	for _, n := range nodes[1:] {
		if err := admins[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
			return fail(fmt.Errorf("CLUSTER MEET: %w", err))
		}
	}
	for {
		ok := true
		for _, a := range admins {
			info, err := a.ClusterInfo(ctx).Result()
			if err != nil {
				return fail(fmt.Errorf("CLUSTER INFO: %w", err))
			}
			f := infoFields(info)
			if f["cluster_state"] != "ok" || f["cluster_known_nodes"] != strconv.Itoa(masters) || f["cluster_slots_ok"] != "16384" {
				ok = false
			}
		}
		if ok {
			return nodes, nil
		}
		select {
		case <-ctx.Done():
			return fail(errors.New("cluster did not reach cluster_state:ok within 30s"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stopAll(servers []*server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		if s != nil {
			wg.Go(s.stop)
		}
	}
	wg.Wait()
}

// infoFields parses "name:value" lines of an INFO or CLUSTER INFO reply.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// scriptCommands are the commands by which a client runs a script; their
// calls are the Redis calls the report counts. Commands a script runs
// inside Redis (GET, SET, ...) appear in commandstats too, and are not
// counted.
var scriptCommands = []string{"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"}

// serverStats is what the report takes from INFO of one server, or the sum
// over the masters of a cluster.
type serverStats struct {
	scriptCalls int64   // calls of scriptCommands
	scriptUsec  int64   // usec spent in them (commandstats)
	cpu         float64 // used_cpu_sys + used_cpu_user, seconds
	reads       int64   // total_reads_processed: socket reads, about one per round trip
	usedMemory  int64
}

func (a serverStats) sub(b serverStats) serverStats {
	return serverStats{
		scriptCalls: a.scriptCalls - b.scriptCalls,
		scriptUsec:  a.scriptUsec - b.scriptUsec,
		cpu:         a.cpu - b.cpu,
		reads:       a.reads - b.reads,
		usedMemory:  a.usedMemory - b.usedMemory,
	}
}

func (a serverStats) add(b serverStats) serverStats {
	return serverStats{
		scriptCalls: a.scriptCalls + b.scriptCalls,
		scriptUsec:  a.scriptUsec + b.scriptUsec,
		cpu:         a.cpu + b.cpu,
		reads:       a.reads + b.reads,
		usedMemory:  a.usedMemory + b.usedMemory,
	}
}

// statsOf reads INFO commandstats, cpu, stats and memory of every address
// and sums them.
func statsOf(ctx context.Context, admins []*redis.Client) (serverStats, error) {
	var total serverStats
	for _, a := range admins {
		info, err := a.Info(ctx, "commandstats", "cpu", "stats", "memory").Result()
		if err != nil {
			return serverStats{}, fmt.Errorf("INFO on %s: %w", a.Options().Addr, err)
		}
		st, err := parseStats(info)
		if err != nil {
			return serverStats{}, fmt.Errorf("INFO on %s: %w", a.Options().Addr, err)
		}
		total = total.add(st)
	}
	return total, nil
}

func parseStats(info string) (serverStats, error) {
	f := infoFields(info)
	var st serverStats
	for _, name := range scriptCommands {
		v, ok := f["cmdstat_"+name]
		if !ok {
			continue
		}
		for kv := range strings.SplitSeq(v, ",") {
			k, val, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(val, 10, 64)
			switch k {
			case "calls":
				st.scriptCalls += n
			case "usec":
				st.scriptUsec += n
			}
		}
	}
	sys, err1 := strconv.ParseFloat(f["used_cpu_sys"], 64)
	user, err2 := strconv.ParseFloat(f["used_cpu_user"], 64)
	reads, err3 := strconv.ParseInt(f["total_reads_processed"], 10, 64)
	mem, err4 := strconv.ParseInt(f["used_memory"], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return serverStats{}, fmt.Errorf("unexpected INFO reply: %w", err)
	}
	st.cpu, st.reads, st.usedMemory = sys+user, reads, mem
	return st, nil
}
