#!/usr/bin/env bash
# Pin a requirements.in into a lock file: every package of its tree at one version, with the
# hashes of all its files on the index (so the lock serves any platform), which
# `pip install --require-hashes` then checks. Resolves with this Python, in a throwaway venv.
# Usage: bash scripts/pin-requirements.sh REQUIREMENTS_IN LOCK_FILE REGENERATE_COMMAND
# (paths as the lock should name them: relative to the folder it is run from)
set -euo pipefail
[ "$#" -eq 3 ] || { echo "usage: $0 REQUIREMENTS_IN LOCK_FILE REGENERATE_COMMAND" >&2; exit 2; }
in=$1
out=$2
PY=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$PY" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check pip-tools==7.6.2
CUSTOM_COMPILE_COMMAND=$3 "$venv/bin/pip-compile" --quiet \
  --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file "$out" "$in"
echo "wrote $2 ($(grep -c '==' "$out") pins)"
