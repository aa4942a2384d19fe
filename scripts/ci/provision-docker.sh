#!/usr/bin/env bash
# Docker engine, a local registry on 127.0.0.1:5000 and stand-in base images, for the docker tests.
# Idempotent: each step is skipped when already done. Nothing here can be pulled from Docker Hub,
# so base images are Debian bookworm root filesystems made with debootstrap and `docker import`.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[provision-docker] %s\n' "$*"; }
STATE=${AUTODEVHUB_CI_STATE:-/var/lib/autodevhub-ci}
mkdir -p "$STATE"

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# The pipeline's build job uses jq (tests/deploy/test_workflow_run.py runs its steps as written).
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The Docker engine.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log; exit 1; }
fi

# A registry on 127.0.0.1:5000 (Debian's docker-registry, filesystem storage).
if ! curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; then
  log "starting the registry on 127.0.0.1:5000"
  mkdir -p "$STATE/registry"
  cat > "$STATE/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YAML
  nohup docker-registry serve "$STATE/registry.yml" >/var/log/autodevhub-registry.log 2>&1 &
  for _ in $(seq 1 50); do curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null && break; sleep 0.2; done
  curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ || { log "registry did not start"; cat /var/log/autodevhub-registry.log; exit 1; }
fi

if [ "${SKIP_BASE_IMAGES:-0}" = 1 ]; then
  log "docker engine and registry ready"
  exit 0
fi

# Stand-in base images: NAME INCLUDES
make_base() {
  local name=$1 include=$2
  if docker image inspect "$name" >/dev/null 2>&1; then return 0; fi
  log "building stand-in base image $name (debootstrap: $include)"
  local root
  root=$(mktemp -d "$STATE/rootfs.XXXXXX")
  if ! debootstrap --variant=minbase --include="$include" bookworm "$root" >"$root.log" 2>&1; then
    tail -20 "$root.log"; rm -rf "$root"; exit 1
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -cf - . | docker import - "$name" >/dev/null
  rm -rf "$root" "$root.log"
}
make_base autodevhub-ci/python:3.11-bookworm python3,python3-venv,python3-pip,python-is-python3,ca-certificates &
p1=$!
make_base autodevhub-ci/node:18-bookworm nodejs,ca-certificates &
p2=$!
wait $p1; wait $p2
make_base autodevhub-ci/nginx:1.22-bookworm nginx-light,curl,ca-certificates &
p3=$!
# The backup CronJob's image (pg_dump, sha256sum, find) for the real node's backup test.
make_base autodevhub-ci/postgresql-client:15-bookworm postgresql-client,ca-certificates &
p4=$!
wait $p3; wait $p4
log "docker engine, registry and base images ready"
