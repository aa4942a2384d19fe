#!/usr/bin/env bash
# Install autodevhub and deploy the `dev` environment on this machine with Docker Compose:
# build both images, push them to a local registry, migrate, start, smoke-check.
#
#   bash scripts/quickstart.sh          then open http://127.0.0.1:8080
#
# What it sets up only when missing: the Docker engine (Debian/Ubuntu, as root), a registry on
# 127.0.0.1:5000, and base images. Where the official base images (python:3.11-slim,
# node:20-alpine, nginx:alpine) cannot be pulled, it builds Debian stand-ins and points the
# build at them through AUTODEVHUB__BUILD__ARGS__*_IMAGE variables.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[quickstart] %s\n' "$*"; }
PY=${PYTHON:-python3}

log "installing autodevhub"
"$PY" -m pip install --quiet --disable-pip-version-check -e .

if ! docker info >/dev/null 2>&1 || ! curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    SKIP_BASE_IMAGES=1 bash scripts/ci/provision-docker.sh
  elif docker info >/dev/null 2>&1; then
    log "starting a registry container on 127.0.0.1:5000"
    docker run -d --restart unless-stopped --name autodevhub-registry -p 127.0.0.1:5000:5000 registry:2 >/dev/null
  else
    log "no Docker engine: install and start Docker, then run this again"; exit 1
  fi
fi

official=(python:3.11-slim node:20-alpine nginx:alpine)
missing=0
for image in "${official[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || timeout 300 docker pull -q "$image" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
  log "official base images cannot be pulled here: using Debian stand-ins"
  bash scripts/ci/provision-docker.sh
  export AUTODEVHUB__BUILD__ARGS__PYTHON_IMAGE=autodevhub-ci/python:3.11-bookworm
  export AUTODEVHUB__BUILD__ARGS__NODE_IMAGE=autodevhub-ci/node:18-bookworm
  export AUTODEVHUB__BUILD__ARGS__NGINX_IMAGE=autodevhub-ci/nginx:1.22-bookworm
fi

autodevhub deploy --env dev
log "the app is at http://127.0.0.1:8080 (API at http://127.0.0.1:8000); stop it with: autodevhub down --env dev"
