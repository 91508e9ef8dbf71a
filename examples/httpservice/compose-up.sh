#!/usr/bin/env bash
# Builds examples/httpservice as a static binary on this machine and brings
# up docker-compose.yml (Redis, three replicas, Prometheus) with it:
#
#   examples/httpservice/compose-up.sh            # docker compose up -d --build
#   examples/httpservice/compose-up.sh down       # any other compose arguments
#
# It uses "docker compose" when the plugin is there, else docker-compose.
# Set BULWARK_REDIS_IMAGE / BULWARK_PROMETHEUS_IMAGE to run without a
# registry (see docker-compose.yml).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
(cd "$root/examples" && CGO_ENABLED=0 go build -trimpath -o httpservice/bin/httpservice ./httpservice)
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
cd "$root"
if [ $# -eq 0 ]; then set -- up -d --build; fi
exec "${compose[@]}" "$@"
