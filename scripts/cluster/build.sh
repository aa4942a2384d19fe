#!/usr/bin/env bash
# Builds the local control plane from Go modules with `go` alone and caches the binaries by version:
#   $STATE/cluster/bin/<name>-<version>      (kube-apiserver, kube-controller-manager, kube-scheduler,
#                                             etcd, kwok, kwokctl, rollouts-controller; for the
#                                             real node kubelet, kube-proxy, coredns, and pause,
#                                             versioned by the hash of its source)
#   $STATE/cluster/crds/<set>-<version>/     (Argo Rollouts and Prometheus operator CRDs)
# Each binary is built in a generated wrapper module (go.mod requires the upstream module and turns its
# local replace directives into released versions), installed with an atomic rename, and skipped when the
# cached file exists. Nothing here is committed or downloaded from anywhere but the Go module proxy.
# Usage: bash scripts/cluster/build.sh [--check]   (--check: exit 1 unless everything is cached)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
SRC=$OUT/src
mkdir -p "$BIN" "$SRC" "$OUT/crds"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}

log() { printf '[cluster-build] %s\n' "$*" >&2; }

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
want=()
for b in "${k8s_bins[@]}"; do want+=("$b-$KUBERNETES_VERSION"); done
want+=("etcd-$ETCD_VERSION" "kwok-$KWOK_VERSION" "kwokctl-$KWOK_VERSION" "rollouts-controller-$ARGO_ROLLOUTS_VERSION")
want+=("coredns-$COREDNS_BUILD" "pause-$PAUSE_VERSION")
want_crds=("argo-rollouts-$ARGO_ROLLOUTS_VERSION" "prometheus-operator-$PROMETHEUS_OPERATOR_VERSION")

missing() {
  local m=()
  for f in "${want[@]}"; do [ -x "$BIN/$f" ] || m+=("$f"); done
  for c in "${want_crds[@]}"; do [ -f "$OUT/crds/$c/.complete" ] || m+=("crds/$c"); done
  printf '%s\n' "${m[@]}"
}

if [ "${1:-}" = --check ]; then
  m=$(missing)
  [ -z "$m" ] && exit 0
  printf 'missing: %s\n' $m >&2
  exit 1
fi
command -v go >/dev/null || { log "go is not on PATH: the control plane is built from Go modules"; exit 1; }

# moddir MODULE@VERSION -> the module's extracted source folder in the module cache.
moddir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
# modhash MODULE@VERSION -> the upstream commit, when the proxy records it.
modhash() { go mod download -json "$1" | sed -n 's/^\t\t"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -n1; }

# wrapper NAME MODULE VERSION STAGING_VERSION: a fresh module folder whose go.mod requires MODULE at
# VERSION and carries MODULE's replace directives, local paths turned into STAGING_VERSION releases
# (or dropped, with STAGING_VERSION=drop).
wrapper() {
  local name=$1 mod=$2 ver=$3 staging=${4:-}
  local dir=$SRC/$name-$ver gomod
  rm -rf "$dir"; mkdir -p "$dir"
  gomod=$(go mod download -json "$mod@$ver" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  {
    echo "module autodevhub.invalid/cluster/$name"
    echo
    grep -m1 '^go ' "$gomod"
    echo
    echo "require $mod $ver"
    echo
    echo "replace ("
    # Both the block form and single-line replace directives.
    awk '/^replace \($/ {inb=1; next} inb && /^\)$/ {inb=0; next} inb {print} /^replace [^(]/ {sub(/^replace /, ""); print}' "$gomod" |
      while read -r line; do
        case "$line" in
          ""|//*) ;;
          *"=> ./"*|*"=> ../"*)
            case "$staging" in
              "") log "$mod has a local replace it cannot resolve: $line"; exit 1 ;;
              drop) ;;  # the module's own require lines pin that sibling's release
              *) echo "	${line%% *} => ${line%% *} $staging" ;;
            esac ;;
          *) echo "	$line" ;;
        esac
      done
    echo ")"
  } >"$dir/go.mod"
  echo "$dir"
}

# install DIR OUTNAME PACKAGE LDFLAGS: build PACKAGE inside DIR, then rename into the cache.
install_bin() {
  local dir=$1 out=$2 pkg=$3 ldflags=$4
  [ -x "$BIN/$out" ] && return 0
  log "building $out ($pkg)"
  local t0=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/.$out.tmp" "$pkg")
  mv -f "$BIN/.$out.tmp" "$BIN/$out"
  log "built $out in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION need=0
  for b in "${k8s_bins[@]}"; do [ -x "$BIN/$b-$v" ] || need=1; done
  [ $need = 1 ] || return 0
  local staging=v0.${v#v1.} dir commit minor
  dir=$(wrapper kubernetes k8s.io/kubernetes "$v" "$staging")
  commit=$(modhash "k8s.io/kubernetes@$v")
  minor=${v#v1.}; minor=${minor%%.*}
  local ld="" pkgv
  for pkgv in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkgv.gitVersion=$v -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$minor"
    ld+=" -X $pkgv.gitTreeState=clean -X $pkgv.gitCommit=${commit:-unknown}"
    ld+=" -X $pkgv.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  for b in "${k8s_bins[@]}"; do
    install_bin "$dir" "$b-$v" "k8s.io/kubernetes/cmd/$b" "$ld"
  done
}

build_etcd() {
  local v=$ETCD_VERSION dir
  [ -x "$BIN/etcd-$v" ] && return 0
  # etcd's server module replaces its sibling modules by local paths; its require lines name
  # their releases (api/v3 v3.5.x, client/v2 v2.305.x...), so the local replaces are dropped.
  dir=$(wrapper etcd go.etcd.io/etcd/server/v3 "$v" drop)
  install_bin "$dir" "etcd-$v" go.etcd.io/etcd/server/v3 "-X go.etcd.io/etcd/api/v3/version.GitSHA=$(modhash "go.etcd.io/etcd/server/v3@$v" | cut -c1-8)"
}

build_kwok() {
  local v=$KWOK_VERSION b
  for b in kwok kwokctl; do
    [ -x "$BIN/$b-$v" ] && continue
    log "building $b-$v (go install sigs.k8s.io/kwok/cmd/$b@$v)"
    local t0=$SECONDS tmp
    tmp=$(mktemp -d "$SRC/gobin.XXXXXX")
    GOBIN=$tmp go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}" "sigs.k8s.io/kwok/cmd/$b@$v"
    mv -f "$tmp/$b" "$BIN/$b-$v"; rm -rf "$tmp"
    log "built $b-$v in $((SECONDS - t0)) s"
  done
}

build_rollouts() {
  local v=$ARGO_ROLLOUTS_VERSION dir src
  if [ ! -x "$BIN/rollouts-controller-$v" ]; then
    dir=$(wrapper argo-rollouts github.com/argoproj/argo-rollouts "$v")
    install_bin "$dir" "rollouts-controller-$v" github.com/argoproj/argo-rollouts/cmd/rollouts-controller \
      "-X github.com/argoproj/argo-rollouts/utils/version.version=$v -X github.com/argoproj/argo-rollouts/utils/version.gitTreeState=clean"
  fi
  local crd=$OUT/crds/argo-rollouts-$v
  if [ ! -f "$crd/.complete" ]; then
    src=$(moddir "github.com/argoproj/argo-rollouts@$v")
    rm -rf "$crd"; mkdir -p "$crd"
    cp "$src"/manifests/crds/*-crd.yaml "$crd/"
    touch "$crd/.complete"
  fi
}

# CoreDNS with the plugins the local cluster's DNS uses (scripts/cluster/coredns/main.go), in a
# wrapper module that requires the CoreDNS release.
build_coredns() {
  local v=$COREDNS_VERSION dir
  [ -x "$BIN/coredns-$COREDNS_BUILD" ] && return 0
  dir=$(wrapper coredns github.com/coredns/coredns "$v")
  cp "$here/coredns/main.go" "$dir/main.go"
  install_bin "$dir" "coredns-$COREDNS_BUILD" . "-X github.com/coredns/coredns/coremain.GitCommit=$(modhash "github.com/coredns/coredns@$v" | cut -c1-8)"
}

# The pod sandbox process (scripts/cluster/pause/main.go): the standard library only.
build_pause() {
  local dir=$SRC/pause-$PAUSE_VERSION
  [ -x "$BIN/pause-$PAUSE_VERSION" ] && return 0
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$here/pause/main.go" "$dir/main.go"
  printf 'module autodevhub.invalid/cluster/pause\n\ngo 1.22\n' >"$dir/go.mod"
  install_bin "$dir" "pause-$PAUSE_VERSION" . ""
}

fetch_monitoring_crds() {
  local v=$PROMETHEUS_OPERATOR_VERSION src
  local crd=$OUT/crds/prometheus-operator-$v
  [ -f "$crd/.complete" ] && return 0
  src=$(moddir "github.com/prometheus-operator/prometheus-operator@$v")
  rm -rf "$crd"; mkdir -p "$crd"
  cp "$src"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
     "$src"/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml "$crd/"
  touch "$crd/.complete"
}

t0=$SECONDS
build_kubernetes
build_etcd
build_kwok
build_rollouts
build_coredns
build_pause
fetch_monitoring_crds
m=$(missing)
[ -z "$m" ] || { log "still missing after the build: $m"; exit 1; }
log "control plane binaries ready in $BIN ($((SECONDS - t0)) s)"
