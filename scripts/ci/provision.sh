#!/usr/bin/env bash
# Installs and starts everything the test suite needs. Idempotent: fast when all is in place.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[provision] %s\n' "$*"; }

# The Kubernetes control plane (kube-apiserver, etcd, controllers, kwok nodes, Argo Rollouts),
# built from Go modules on a cold machine (CPU-bound, about 10 minutes) while the rest installs.
# Its real node's Debian packages first, in the foreground: apt runs one install at a time.
bash scripts/local-cluster.sh packages
cluster_log=$(mktemp)
bash scripts/local-cluster.sh up >"$cluster_log" 2>&1 &
cluster_pid=$!

# Python packages: the project itself (editable) with its dev extras.
PY=${PYTHON:-python3}
log "python packages"
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# PostgreSQL at 127.0.0.1:5432 (trust auth on loopback, database "test"): installed and started here.
bash scripts/ci/provision-postgres.sh

# Browser tests: Debian chromium and nginx, Playwright for Python (never `playwright install`).
bash scripts/ci/provision-browser.sh

# Docker engine, registry on 127.0.0.1:5000, stand-in base images (docker tests).
bash scripts/ci/provision-docker.sh

log "waiting for the Kubernetes control plane"
if ! wait "$cluster_pid"; then
  grep -v '^go: downloading' "$cluster_log" | tail -n 40
  log "the local Kubernetes control plane did not start (bash scripts/local-cluster.sh up)"
  exit 1
fi
grep '^\[' "$cluster_log" | grep -v '^\[cluster-build\] building' || true
rm -f "$cluster_log"
