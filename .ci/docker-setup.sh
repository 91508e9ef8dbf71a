#!/usr/bin/env bash
# Makes a Docker engine available for the Docker-backed tests, idempotently:
# installs docker.io, docker-compose and prometheus when missing, starts dockerd in the
# background when no engine answers (there is no service manager here),
# waits until it answers, and builds the kit's Redis image
# (bulwarktest/redis:local) from the installed redis-server when missing.
# No registry is used.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ -z "${apt_updated:-}" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "== installing docker.io"
  apt_install docker.io
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "== installing docker-compose"
  apt_install docker-compose
fi

# Prometheus for the compose test: its image cannot be pulled, so the test
# builds one from Debian's binary.
if [ ! -x /usr/bin/prometheus ]; then
  echo "== installing prometheus (for a local Prometheus image)"
  apt_install --no-install-recommends prometheus
fi

if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd (log: /tmp/dockerd.log)"
  setsid nohup dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not answer within 60s; its log:"; tail -50 /tmp/dockerd.log; exit 1
  fi
fi
echo "== docker engine: $(docker version --format '{{.Server.Version}}')"

echo "== Redis image for the test kit"
(cd bulwarktest && go run ./cmd/redisimage -if-missing 2>/dev/null)
