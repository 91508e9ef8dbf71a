#!/usr/bin/env bash
# Benchmarks the Redis-backed token bucket against go-redis/redis_rate on
# one Redis, in one run: Allow at 1, 16 and 64 goroutines, one hot key and
# 10k keys. Each round runs every sub-benchmark for our limiter and then
# for redis_rate, back to back, COUNT rounds in all, so both see the same
# machine conditions; benchstat then puts them side by side. Finally it
# prints MEMORY USAGE per key.
#
# Usage (from the repository root):
#   bench/redis.sh [out-dir]
# Environment:
#   COUNT=6          rounds
#   BENCHTIME=1s     -benchtime of each benchmark
#   BENCH_FILTER=.   sub-benchmark filter, e.g. 'keys=hot/goroutines=1$'
#   LANES="0 4"      also run our benchmark with these batching lanes
#                    ("dispatch": distributed.WithDispatcher)
#                    (distributed.WithBatching; 0: off); each appears as
#                    column TokenBucketRedisLanesN. Unset: the default only.
#   BULWARK_BENCH_CLIENT=plain  both libraries on go-redis's default client
#                    instead of one built with distributed.ClientOptions
#   BULWARK_REDIS_ADDR=host:port  use this Redis instead of starting a
#                    private redis-server on a free port
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
FILTER=${BENCH_FILTER:-.}
OUT=${1:-$(mktemp -d /tmp/bulwark-bench.XXXXXX)}
mkdir -p "$OUT"

(cd bench && go test -c -o "$OUT/distributed.test" ./peers/)

if [ -z "${BULWARK_REDIS_ADDR:-}" ]; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$OUT" --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
	trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	export BULWARK_REDIS_ADDR=127.0.0.1:$port
fi
export BULWARK_REQUIRE_REDIS=1

{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(redis-server --version)"
	echo "# $(go version); $(nproc) CPUs; COUNT=$COUNT BENCHTIME=$BENCHTIME"
} | tee "$OUT/bench.txt"
: >"$OUT/raw.txt"
# Interleaved finely: each sub-benchmark runs for every library (and lanes
# variant) back to back, so that all of them see the same machine load.
for i in $(seq "$COUNT"); do
	for keys in hot 10k; do
		for g in 1 16 64; do
			sub="keys=$keys/goroutines=$g\$"
			if [ "$FILTER" != . ] && ! echo "keys=$keys/goroutines=$g" | grep -Eq "$FILTER"; then
				continue
			fi
			for b in TokenBucketRedis ${LANES:+$(printf 'lanes=%s ' $LANES)} RedisRate; do
				name=$b lanes=
				case $b in lanes=*) name=TokenBucketRedis lanes=${b#lanes=} ;; esac
				BULWARK_BENCH_LANES=$lanes "$OUT/distributed.test" -test.run '^$' \
					-test.bench "^Benchmark$name\$/$sub" -test.benchtime "$BENCHTIME" -test.count 1 |
					sed "s/^BenchmarkTokenBucketRedis\//BenchmarkTokenBucketRedis${lanes:+Lanes$lanes}\//" |
					tee -a "$OUT/raw.txt"
			done
		done
	done
	echo "round $i of $COUNT done" >&2
done
grep -E '^(Benchmark|goos|goarch|pkg|cpu)' "$OUT/raw.txt" >>"$OUT/bench.txt"

echo
echo "== benchstat (columns: ours = TokenBucketRedis[LanesN], theirs = RedisRate; each compared with the first)"
(cd bench && go tool benchstat -col .name "$OUT/bench.txt") | tee "$OUT/benchstat.txt"

echo
echo "== MEMORY USAGE per key"
(cd bench/peers && "$OUT/distributed.test" -test.run '^TestMemory(PerKey|VsMinimalScript)$' -test.v) | grep -E 'bytes|ok|FAIL|PASS' | tee "$OUT/memory.txt"
echo "results in $OUT"
