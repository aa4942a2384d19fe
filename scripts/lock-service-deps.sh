#!/usr/bin/env bash
# Re-pin the backend image's dependencies: service/requirements.in -> service/requirements.lock,
# with the hashes of all their files, which the wheelhouse download and the image's
# `pip install --require-hashes` check. Run it with the image's Python minor (3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/pin-requirements.sh service/requirements.in service/requirements.lock \
  "bash scripts/lock-service-deps.sh"
