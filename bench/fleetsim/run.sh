#!/usr/bin/env bash
# Runs the fleet simulation against a private Redis and a private 3-master
# Redis Cluster (redis-server and redis-cli from PATH), and writes both
# tables to the output directory.
#
# Usage (from the repository root): bench/fleetsim/run.sh [out-dir]
# Environment: ARGS (fleetsim flags, default below), TOPOLOGIES="standalone cluster"
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-$(mktemp -d /tmp/bulwark-fleetsim.XXXXXX)}
mkdir -p "$OUT"
ARGS=${ARGS:--replicas 3,30,300 -load 2000,200,20 -keys 10 -limit 300 -duration 3s}
TOPOLOGIES=${TOPOLOGIES:-standalone cluster}
(cd bench && go build -o "$OUT/fleetsim" ./fleetsim)
# A free port p with p+10000 free too (a cluster node's bus port), below
# 55536 as Redis requires.
free_port() {
	python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randrange(20000, 45000)
    if free(p) and free(p + 10000):
        print(p)
        break
PY
}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
for topo in $TOPOLOGIES; do
	case $topo in
	standalone)
		# shellcheck disable=SC2086
		"$OUT/fleetsim" $ARGS | tee "$OUT/standalone.md"
		;;
	cluster)
		addrs=()
		for i in 1 2 3; do
			port=$(free_port)
			dir="$OUT/node$i"
			mkdir -p "$dir"
			redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
				--cluster-enabled yes --cluster-config-file nodes.conf --maxclients 10000 \
				--logfile "$dir/redis.log" --daemonize no &
			pids+=($!)
			addrs+=("127.0.0.1:$port")
		done
		for a in "${addrs[@]}"; do
			for _ in $(seq 100); do redis-cli -p "${a#*:}" ping >/dev/null 2>&1 && break; sleep 0.1; done
		done
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/cluster-create.log"
		for _ in $(seq 100); do
			redis-cli -p "${addrs[0]#*:}" cluster info | grep -q 'cluster_state:ok' && break
			sleep 0.1
		done
		# shellcheck disable=SC2086
		"$OUT/fleetsim" -cluster "$(IFS=,; echo "${addrs[*]}")" $ARGS | tee "$OUT/cluster.md"
		;;
	esac
done
echo "results in $OUT"
