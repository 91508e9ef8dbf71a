#!/usr/bin/env bash
# Redis CPU per decision: redis-benchmark EVALSHA throughput of scripts on
# one hot key, each round running every script back to back so all see the
# same machine load. Reports, per call: the server's CPU time (Δ used_cpu_sys
# + used_cpu_user over the run / calls: ns/op), INFO commandstats
# usec_per_call of EVALSHA (wall time inside the script: µs/call) and
# calls/s. On a busy machine the CPU time is the figure to compare: it does
# not count the time the server waits for a core. With 50 clients pipelining 16 commands each the server
# is the bottleneck (one core), so requests/s is the inverse of the server
# time per call.
#
# Scripts:
#   ours      lua.TokenBucket (lua/token_bucket.lua), Redis TIME, admits
#   ours_fw   lua.FixedWindow, ours_sw lua.SlidingWindow (the window scripts)
#   minimal   bench/evalsha/gcra_minimal.lua, a minimal integer GCRA
#   redisrate the script of github.com/go-redis/redis_rate (read from the
#             module cache: go.mod's version)
#   EXTRA=name=file.lua ...   more scripts (e.g. an older version of ours,
#             taking our token-bucket arguments)
#
# Usage (from the repository root): bench/evalsha/run.sh [out-dir]
# Environment: COUNT=6 rounds, REQUESTS=400000 per script and round,
#   BULWARK_REDIS_PORT=port: use that local Redis instead of a private one.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-6}
REQUESTS=${REQUESTS:-400000}
OUT=${1:-$(mktemp -d /tmp/bulwark-evalsha.XXXXXX)}
mkdir -p "$OUT"

port=${BULWARK_REDIS_PORT:-}
if [ -z "$port" ]; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$OUT" --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
	trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
cli() { redis-cli -p "$port" "$@"; }
# The server's CPU time so far (s): used_cpu_sys + used_cpu_user of INFO,
# getrusage of the process, so time spent waiting for a core is not in it.
cpu() { cli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%.6f", t }'; }

# The full sources: ours are the prelude (when the script uses it) and the
# file, exactly as package lua builds them; go run prints them.
(cd bench && go run ./evalsha/source) >"$OUT/sources.txt"
rr=$(cd bench && go list -m -f '{{.Dir}}' github.com/go-redis/redis_rate/v10)/lua.go
awk '/^var allowN = redis.NewScript\(`/{on=1; next} on && /^`\)/{exit} on' "$rr" >"$OUT/redisrate.lua"

load() { cli SCRIPT LOAD "$(cat "$1")"; }
declare -A SHA ARGS
for s in ours ours_fw ours_sw; do
	awk -v want="$s" '/^=== /{on=($2==want); next} on' "$OUT/sources.txt" >"$OUT/$s.lua"
	SHA[$s]=$(load "$OUT/$s.lua")
done
ARGS[ours]='"" 0 1 1000000 1000000 1000000'
ARGS[ours_fw]='"" 0 1 1000000000 1000000'
ARGS[ours_sw]='"" 0 1 1000000000 1000000'
SHA[minimal]=$(load bench/evalsha/gcra_minimal.lua)
ARGS[minimal]='1 999999'
SHA[redisrate]=$(load "$OUT/redisrate.lua")
ARGS[redisrate]='1000000 1000000 1 1'
names="ours minimal redisrate ours_fw ours_sw"
for e in ${EXTRA:-}; do
	n=${e%%=*}
	SHA[$n]=$(load "${e#*=}")
	ARGS[$n]=${ARGS[ours]}
	names="$names $n"
done

{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(redis-server --version | cut -d' ' -f1-3); $(nproc) CPUs"
	echo "# redis-benchmark -c 50 -P 16 -n $REQUESTS EVALSHA <sha> 1 <key> <args>; COUNT=$COUNT"
	echo "# uptime: $(uptime)"
} | tee "$OUT/bench.txt"
for i in $(seq "$COUNT"); do
	for s in $names; do
		cli DEL "bench:$s" >/dev/null
		cli CONFIG RESETSTAT >/dev/null
		cpu0=$(cpu)
		# shellcheck disable=SC2086
		rps=$(eval redis-benchmark -p "$port" -c 50 -P 16 -n "$REQUESTS" -q --csv \
			EVALSHA "${SHA[$s]}" 1 "bench:$s" ${ARGS[$s]} | tail -1 | cut -d, -f2 | tr -d '"')
		# usec_per_call of EVALSHA (INFO commandstats): server time inside
		# the script, less sensitive to a busy machine than calls/s.
		cpu1=$(cpu)
		us=$(cli INFO commandstats | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p')
		awk -v s="$s" -v r="$rps" -v us="$us" -v c0="$cpu0" -v c1="$cpu1" -v n="$REQUESTS" \
			'BEGIN { printf "BenchmarkEvalsha/script=%s 1 %.0f ns/op %.0f calls/s %.3f µs/call\n", s, (c1 - c0) * 1e9 / n, r, us }' |
			tee -a "$OUT/bench.txt"
	done
	echo "round $i of $COUNT done ($(uptime | sed 's/.*load/load/'))" >&2
done
echo
(cd bench && go tool benchstat -col /script "$OUT/bench.txt") | tee "$OUT/benchstat.txt"
echo "results in $OUT"
