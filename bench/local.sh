#!/usr/bin/env bash
# Benchmarks the in-process patterns against their peers in one run:
#   - local token bucket vs golang.org/x/time/rate (one key, and 10k keys in
#     parallel against a mutex-guarded map of rate.Limiters),
#   - the other local limiters on one key,
#   - local breaker vs sony/gobreaker v2, local bulkhead,
#   - composition overhead (root package),
#   - HTTP middleware overhead (bulwarkhttp),
#   - observers (telemetry core on a recording backend, bulwarkprom,
#     bulwarkotel).
# Each round runs every benchmark once, COUNT rounds in all, so ours and the
# peers' see the same machine conditions; benchstat summarises.
#
# Usage (from the repository root): bench/local.sh [out-dir]
# Environment: COUNT=6, BENCHTIME=1s
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
OUT=${1:-$(mktemp -d /tmp/bulwark-bench.XXXXXX)}
mkdir -p "$OUT"

declare -A PKG=(
	[local]='^Benchmark(TokenBucket|XRate|SlidingWindow|SlidingLog|FixedWindow|Breaker|Gobreaker|Bulkhead)'
	[root]='^BenchmarkCompose'
	[bulwarkhttp]='^Benchmark'
	[telemetry]='^Benchmark'
	[telemetry/bulwarkprom]='^Benchmark'
	[telemetry/bulwarkotel]='^Benchmark'
)
for p in "${!PKG[@]}"; do
	dir=./$p
	[ "$p" = root ] && dir=.
	go test -c -o "$OUT/${p//\//_}.test" "$dir"
done
{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(go version); $(nproc) CPUs; COUNT=$COUNT BENCHTIME=$BENCHTIME"
} | tee "$OUT/bench.txt"
: >"$OUT/raw.txt"
for i in $(seq "$COUNT"); do
	for p in local root bulwarkhttp telemetry telemetry/bulwarkprom telemetry/bulwarkotel; do
		(cd "$( [ "$p" = root ] && echo . || echo "$p")" && "$OUT/${p//\//_}.test" -test.run '^$' -test.bench "${PKG[$p]}" \
			-test.benchtime "$BENCHTIME" -test.count 1 -test.benchmem) | tee -a "$OUT/raw.txt"
	done
	echo "round $i of $COUNT done" >&2
done
grep -E '^(Benchmark|goos|goarch|pkg|cpu)' "$OUT/raw.txt" >>"$OUT/bench.txt"
echo
go tool benchstat "$OUT/bench.txt" | tee "$OUT/benchstat.txt"
echo "results in $OUT"
