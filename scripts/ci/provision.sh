#!/usr/bin/env bash
# Installs and starts everything the test suite needs. Idempotent: fast when all is in place.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[provision] %s\n' "$*"; }

# Python packages: the project itself (editable) with its dev extras.
PY=${PYTHON:-python3}
log "python packages"
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# PostgreSQL at 127.0.0.1:5432 (trust auth, database "test"): started by this machine kind, restarted if down.
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 || log "PostgreSQL is not reachable; postgres tests will fail in CI"
else
  log "pg_isready not found; postgres tests need PostgreSQL at 127.0.0.1:5432"
fi

# Browser tests: Debian chromium and nginx, Playwright for Python (never `playwright install`).
bash scripts/ci/provision-browser.sh

# Docker engine, registry on 127.0.0.1:5000, stand-in base images (docker tests).
bash scripts/ci/provision-docker.sh
