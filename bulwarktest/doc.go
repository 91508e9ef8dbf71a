// Package bulwarktest is a test kit for services built on bulwark, and for
// any Go code that talks to Redis: it starts throw-away Redis servers, a
// Redis Cluster and a Sentinel deployment, puts a fault proxy between a
// client and Redis, and checks that a service under load keeps answering
// while Redis is away.
//
// # Servers
//
// [StartRedis], [StartCluster] (three masters by default) and [StartSentinel] (a master,
// a replica and three sentinels by default) start their servers for one
// test and stop them at its cleanup (t.Cleanup): no process, container or
// goroutine of the kit outlives the test. Each server listens on a free
// loopback port, without persistence.
//
// Servers run on one of two backends, chosen with [WithBackend] or the
// BULWARK_TEST_BACKEND environment variable ("binary", "container"):
//
//   - [Binary] runs the redis-server binary on PATH (or the one
//     BULWARK_REDIS_SERVER names) as child processes.
//   - [Container] runs each server in a Docker container through
//     testcontainers-go, sharing the host's network (Linux). The image is
//     [LocalImage], which the kit builds from this machine's redis-server and
//     its shared libraries when it is missing (see [BuildImage]); no
//     registry is needed. [WithImage] names another image instead, such as
//     the official "redis:7", which Docker pulls when it is not there.
//   - [Auto], the default, picks Binary when redis-server is installed and
//     Container when only a Docker engine is there.
//
// A test is skipped, with a message saying what to install, when its
// backend cannot run here: no redis-server for Binary, no Docker engine for
// Container. Setting BULWARK_REQUIRE_REDIS (for the binary) or
// BULWARK_REQUIRE_DOCKER (for the engine) turns that skip into a failure, so
// a CI run cannot silently lose the coverage. A server that does not come up
// fails the test with its log.
//
// The kit turns off testcontainers-go's reaper container (Ryuk), which
// needs a registry: it sets TESTCONTAINERS_RYUK_DISABLED=true unless the
// variable is set already. It labels its containers (see [LabelKit]) and
// removes them itself at cleanup; containers left by a test binary that was
// killed are removed by the next test binary that uses the engine on the same
// host.
//
// # Faults
//
// A [Proxy] sits between a client and a server and injects one [Fault] at a
// time, on command ([Proxy.Apply], [Proxy.Cut], [Proxy.Freeze], ...) or on a
// timetable ([Proxy.Schedule]): [Cut] resets every connection and refuses
// new ones (Redis crashed), [Freeze] accepts and answers nothing (a network
// that drops packets), [Slow] adds latency, [DropReplies] runs commands but
// loses their replies, and [Heal] removes the fault. Servers can also be
// killed, paused and restarted ([Server.Kill], [Server.Pause],
// [Server.Restart]).
//
// # Assertions
//
// [StartLoad] calls the code under test from several goroutines until it is
// stopped and records every answer: when it started and ended, whether it
// failed and whether it was degraded (decided without Redis). The resulting
// [Record] checks what a careful operator wants to know:
// [Record.NoErrors] (the service kept answering), [Record.DegradedDuring]
// (every answer while Redis was away says so), [Record.BackWithin] (it went
// back to Redis within a bound after the fault healed) and
// [Record.MaxLatency].
//
// [RequireDocker] skips or fails a test as above when no engine answers;
// [ImageFromBinary] builds an image FROM scratch from any binary installed
// here (the kit's own [LocalImage] is one), for other services a test needs
// in containers.
//
// # Outside Test functions
//
// [Run] gives code that has no testing.TB (an Example function, a smoke
// check in a deployment script) one whose cleanups run when it returns.
//
// # Leak checks
//
// [Main] is a TestMain body that runs the tests and then fails the binary if
// goroutines leaked, with go.uber.org/goleak:
//
//	func TestMain(m *testing.M) { bulwarktest.Main(m) }
package bulwarktest
