#!/usr/bin/env bash
# Re-pin the security gates' analyzers: requirements.in -> requirements.lock, every package
# of the tree pinned with the hashes of all its files (so the lock serves any platform), which
# `pip install --require-hashes` in gates.sh then checks. Resolves in a throwaway venv.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$PY" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check pip-tools==7.6.2
CUSTOM_COMPILE_COMMAND="bash scripts/ci/gates/lock.sh" "$venv/bin/pip-compile" --quiet \
  --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock requirements.in
echo "wrote scripts/ci/gates/requirements.lock ($(grep -c '==' requirements.lock) pins)"
