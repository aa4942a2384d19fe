#!/usr/bin/env bash
# Re-pin the security gates' analyzers: requirements.in -> requirements.lock, with hashes, which
# `pip install --require-hashes` in gates.sh checks.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec bash scripts/pin-requirements.sh scripts/ci/gates/requirements.in \
  scripts/ci/gates/requirements.lock "bash scripts/ci/gates/lock.sh"
