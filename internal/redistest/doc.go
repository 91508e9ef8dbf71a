// Package redistest starts real Redis processes for tests and injects faults
// between a client and a server. It is imported only from _test.go files
// and by the public test kit (module bulwarktest), which wraps it.
//
// Everything here runs on one machine without Docker (the kit adds a
// container Runner):
//
//   - [RequireServer] finds redis-server, or skips the test when it is missing
//     and BULWARK_REQUIRE_REDIS is unset (with it set, a missing binary fails
//     the test, so CI cannot silently skip Redis coverage).
//   - [StartServer] runs a throw-away redis-server on a free loopback port
//     with persistence off, in the test's temporary directory; the test can
//     SIGKILL, SIGSTOP, SIGCONT and restart it on the same port.
//   - [StartCluster] builds a Redis Cluster (masters with replicas) from such
//     servers; [SharedCluster] shares one per test binary; [Cluster.WaitFailover]
//     waits for a replica promotion after a master was killed; [KeySlot]
//     computes a key's hash slot.
//   - [StartSentinel] runs a master, its replicas and three sentinels;
//     [Sentinel.Client] is a go-redis failover client for it,
//     [Sentinel.Failover] runs SENTINEL FAILOVER and [Sentinel.WaitMaster]
//     waits for the promotion of a replica after the master was killed.
//   - [Default] returns a client to the machine's Redis at 127.0.0.1:6379 when
//     it answers, else to a server started for the test; [Prefix] gives each
//     test its own key prefix and deletes its keys afterwards; [CheckTTLs] checks
//     the invariant that every key the library writes expires.
//   - [Proxy] is an in-process TCP proxy that adds latency, blackholes traffic,
//     drops replies, resets connections or refuses new ones; [Cluster.Proxies]
//     and [ViaProxies] put one in front of every cluster node.
//   - [Runner] starts the processes: [BinaryRunner] (the default) runs the
//     redis-server binary; [StartServerConfig], [StartSentinelWith] and
//     ClusterConfig.Runner take another one, such as the container runner of
//     the public test kit (module bulwarktest).
//   - [Child] re-executes the test binary to run one test in a subprocess
//     (a second "replica" that can be killed).
//   - [Main] is a TestMain body: it runs the tests, stops the shared cluster
//     and checks for goroutine leaks (internal/leakcheck).
//
// Every process, client, proxy and goroutine the package starts for a test is
// stopped by a testing.TB cleanup, so tests pass the leak check. Servers started by
// this package also receive SIGKILL when the test binary dies (Linux), so a
// panicking or timed-out test leaves no orphan redis-server behind.
//
// A typical test:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
//	func TestAllowUnderLatency(t *testing.T) {
//		srv := redistest.StartServer(t)
//		proxy := redistest.NewProxy(t, srv.Addr())
//		client := proxy.Client(t) // through the proxy; closed at cleanup
//		prefix := redistest.Prefix(t, client)
//		// ... build the limiter on client under prefix ...
//		proxy.SetLatency(2 * time.Second)
//		// ... assert it answers degraded within its budget ...
//		redistest.CheckTTLs(t, client, prefix, time.Minute)
//	}
//
// Methods without a testing.TB argument (Server.Kill, Server.Restart, ...)
// report failures through the test that created the server, so call them from
// that test's goroutine, as with testing.T.FailNow.
package redistest
