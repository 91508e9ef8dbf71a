#!/usr/bin/env bash
# Redis cost per decision of the store's token bucket as bench/redis.sh
# drives it: for each sub-benchmark of BenchmarkTokenBucketRedis (or
# BenchmarkRedisRate), N decisions against a private redis-server, then the
# server's deltas per decision: socket reads (INFO total_reads_processed:
# about one per round trip), EVALSHA calls (INFO commandstats) and CPU time
# (used_cpu_sys + used_cpu_user). A Redis at 100% of a core makes
# 1,000,000 / (CPU µs per decision) decisions per second.
#
# Usage (from the repository root): bench/rediscost.sh [out-dir]
# Environment: N=100000 decisions per sub-benchmark, BENCH=TokenBucketRedis,
#   SUBS="hot/goroutines=16 10k/goroutines=16 10k/goroutines=64"
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
BENCH=${BENCH:-TokenBucketRedis}
SUBS=${SUBS:-"hot/goroutines=1 hot/goroutines=16 hot/goroutines=64 10k/goroutines=1 10k/goroutines=16 10k/goroutines=64"}
OUT=${1:-$(mktemp -d /tmp/bulwark-rediscost.XXXXXX)}
mkdir -p "$OUT"
(cd bench && go test -c -o "$OUT/peers.test" ./peers/)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$OUT" --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export BULWARK_REDIS_ADDR=127.0.0.1:$port BULWARK_REQUIRE_REDIS=1
stats() {
	redis-cli -p "$port" info all | tr -d '\r' | awk -F'[:=,]' '
		/^total_reads_processed:/ {r = $2}
		/^cmdstat_evalsha:/ {e = $3}
		/^used_cpu_sys:/ {s = $2}
		/^used_cpu_user:/ {u = $2}
		END {printf "%d %d %.6f\n", r, e, s + u}'
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(redis-server --version | cut -d' ' -f3); $(nproc) CPUs; N=$N; $(uptime | sed 's/.*load/load/')"
printf '%-28s %10s %12s %12s %14s %14s\n' sub-benchmark ns/op reads/dec evalsha/dec 'Redis CPU µs/dec' 'dec/s at 1 core'
for sub in $SUBS; do
	read -r r0 e0 c0 < <(stats)
	ns=$("$OUT/peers.test" -test.run '^$' -test.bench "^Benchmark$BENCH\$/keys=$sub\$" -test.benchtime "${N}x" |
		awk '/^Benchmark/ {print $3}')
	read -r r1 e1 c1 < <(stats)
	python3 - "$sub" "$ns" "$N" "$r0" "$r1" "$e0" "$e1" "$c0" "$c1" <<'PY'
import sys
sub, ns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r0, r1, e0, e1 = map(int, sys.argv[4:8])
c0, c1 = map(float, sys.argv[8:10])
cpu = (c1 - c0) * 1e6 / n
print('%-28s %10s %12.3f %12.3f %14.2f %14.0f' % (sub, ns, (r1 - r0) / n, (e1 - e0) / n, cpu, 1e6 / cpu if cpu else 0))
PY
done
