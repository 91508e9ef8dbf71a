#!/usr/bin/env bash
# Benchmarks the in-process patterns against their peers in one run:
#   - local token bucket vs golang.org/x/time/rate (one key, and 10k keys in
#     parallel against a mutex-guarded map of rate.Limiters),
#   - the other local limiters on one key,
#   - local breaker vs sony/gobreaker v2 and failsafe-go's permit path,
#     local bulkhead,
#   - composition overhead (root package),
#   - HTTP middleware overhead (bulwarkhttp),
#   - observers (telemetry core on a recording backend, bulwarkprom,
#     bulwarkotel).
# Each round runs every benchmark once, COUNT rounds in all, so ours and the
# peers' see the same machine conditions; benchstat summarises.
#
# Usage (from the repository root): bench/local.sh [out-dir]
# Environment: COUNT=6, BENCHTIME=1s, ONLY="local root bulwarkhttp telemetry
# telemetry/bulwarkprom telemetry/bulwarkotel"
# (the packages to run), LOCAL_FILTER (the -test.bench pattern of the peer
# comparisons, e.g. '^Benchmark(TokenBucketAllowOneKey|XRateAllow)$')
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
ONLY=${ONLY:-local root bulwarkhttp telemetry telemetry/bulwarkprom telemetry/bulwarkotel}
OUT=${1:-$(mktemp -d /tmp/bulwark-bench.XXXXXX)}
mkdir -p "$OUT"

declare -A PKG=(
	[local]=${LOCAL_FILTER:-'^Benchmark(TokenBucket|XRate|SlidingWindow|SlidingLog|FixedWindow|Breaker|Gobreaker|Failsafe|Bulkhead)'}
	[root]='^BenchmarkCompose'
	[bulwarkhttp]='^Benchmark'
	[telemetry]='^Benchmark'
	[telemetry/bulwarkprom]='^Benchmark'
	[telemetry/bulwarkotel]='^Benchmark'
)
for p in $ONLY; do
	case $p in
	local) (cd bench && go test -c -o "$OUT/$p.test" ./peers/) ;; # the peer comparisons
	root) go test -c -o "$OUT/$p.test" . ;;
	*) go test -c -o "$OUT/${p//\//_}.test" "./$p" ;;
	esac
done
{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(go version); $(nproc) CPUs; COUNT=$COUNT BENCHTIME=$BENCHTIME"
} | tee "$OUT/bench.txt"
: >"$OUT/raw.txt"
for i in $(seq "$COUNT"); do
	for p in $ONLY; do
		dir=$p
		case $p in root) dir=. ;; local) dir=bench/peers ;; esac
		(cd "$dir" && "$OUT/${p//\//_}.test" -test.run '^$' -test.bench "${PKG[$p]}" \
			-test.benchtime "$BENCHTIME" -test.count 1 -test.benchmem) | tee -a "$OUT/raw.txt"
	done
	echo "round $i of $COUNT done" >&2
done
grep -E '^(Benchmark|goos|goarch|pkg|cpu)' "$OUT/raw.txt" >>"$OUT/bench.txt"
echo
(cd bench && go tool benchstat "$OUT/bench.txt") | tee "$OUT/benchstat.txt"
echo "results in $OUT"

# Ours and each peer side by side, with benchstat's significance test: the
# benchmarks renamed to one name per comparison and a column per library.
sed -E \
	-e 's/^BenchmarkTokenBucketAllowOneKey-/BenchmarkOneKey\/lib=bulwark-/' \
	-e 's/^BenchmarkXRateAllow-/BenchmarkOneKey\/lib=xrate-/' \
	-e 's/^BenchmarkTokenBucketAllowParallel10kKeys-/BenchmarkParallel10kKeys\/lib=bulwark-/' \
	-e 's/^BenchmarkXRateMutexMap10kKeys-/BenchmarkParallel10kKeys\/lib=xrate-/' \
	-e 's/^BenchmarkBreakerAllowDone\/plain-/BenchmarkBreakerPermit\/lib=bulwark-/' \
	-e 's/^BenchmarkFailsafePermit\/time-/BenchmarkBreakerPermit\/lib=failsafe-time-/' \
	-e 's/^BenchmarkFailsafePermit\/count-/BenchmarkBreakerPermit\/lib=failsafe-count-/' \
	"$OUT/bench.txt" | grep -E '^(Benchmark(OneKey|Parallel10kKeys|BreakerPermit)/|goos|goarch|pkg|cpu)' >"$OUT/paired.txt" || true
if [ -s "$OUT/paired.txt" ]; then
	echo
	echo "== ours vs peers (columns: lib; each compared with bulwark)"
	(cd bench && go tool benchstat -col /lib -filter '.unit:sec/op' "$OUT/paired.txt") | tee "$OUT/paired-benchstat.txt"
fi
