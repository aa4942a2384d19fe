#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium and nginx, and Playwright for Python.
# Idempotent and quick when all is in place. Never runs `playwright install`: the tests drive
# Debian's /usr/bin/chromium, and no browser download is reachable from here.
set -euo pipefail

log() { printf '[provision-browser] %s\n' "$*"; }
PY=${PYTHON:-python3}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# The front-end build (service/web/build.mjs) needs Node 18+; Debian's nodejs is 18.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
# docker-entrypoint.sh is tested under busybox sh too (the Alpine nginx image's shell).
command -v busybox >/dev/null 2>&1 || missing+=(busybox)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]} and not root: install them to run the browser tests"
  else
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # nginx-light is gone from newer Debian releases; fall back to nginx there.
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]/nginx-light/nginx}" >/dev/null
    fi
  fi
fi

# Debian enables its own nginx service on install; the tests start nginx as a plain process.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi

# axe-playwright-python ships axe-core's axe.min.js, which the accessibility test injects.
if ! "$PY" -c 'import playwright, axe_playwright_python' >/dev/null 2>&1; then
  log "installing playwright (python package only) and axe-playwright-python"
  "$PY" -m pip install --quiet --disable-pip-version-check 'playwright>=1.40' 'axe-playwright-python>=0.1.4'
fi

log "chromium: $(command -v chromium || echo missing); nginx: $(command -v nginx || echo /usr/sbin/nginx); node: $(node --version 2>/dev/null || echo missing)"
