// Package integration holds cross-pattern tests that run the library the
// way a service runs it: several replicas, each with its own Redis client
// and distributed.Store, sharing one real redis-server started by the test,
// with the patterns stacked (bulwark.Compose, bulwarkhttp middleware, tiered
// and multi-limits) rather than exercised one by one.
//
// The package itself is empty; everything is in its _test.go files:
//
//   - stack_test.go: fallback, retry with a budget, a fleet-wide token
//     bucket, a fleet-wide bulkhead, a fleet-wide breaker and a timeout,
//     composed on three replicas, while Redis is healthy, killed mid-load
//     and restarted on the same port.
//   - http_test.go: three HTTP servers with the Limit, Bulkhead and
//     Breaker middleware, a client on bulwarkhttp.NewTransport, and Redis
//     frozen (SIGSTOP) and resumed mid-run.
//   - limits_test.go: per-user and per-tenant limits checked together
//     (Store.Multi) and a per-replica limit in front of a fleet-wide one
//     (distributed.NewTiered), across three replicas.
//
// Each of these tests runs twice, as subtests named after the test kit's
// backends: "binary" on a redis-server child process and "container" on a
// container of the Docker engine (bulwarktest.Container), where killing is
// docker kill and freezing is docker pause.
//
// These tests measure real time, because what they prove is about real
// time: a global limit per period, how long a caller waits while Redis is
// frozen, how soon replicas return to Redis. Their bounds are generous and
// the measured values are logged. They need redis-server on PATH (they are
// skipped without it unless BULWARK_REQUIRE_REDIS is set) and, for the
// container subtests, a Docker engine (skipped without one unless
// BULWARK_REQUIRE_DOCKER is set; .ci/docker-setup.sh starts one).
package integration
