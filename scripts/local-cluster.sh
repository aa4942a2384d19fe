#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, for the tests and for trying deploys:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (simulated nodes whose
# pods are scheduled and become Running/Ready, but run no process), run by `kwokctl --runtime
# binary`, plus the Argo Rollouts controller and the CRDs of the kinds autodevhub renders
# (Rollout, ServiceMonitor, PrometheusRule), and one real node (scripts/cluster/node.sh:
# containerd, kubelet, kube-proxy, CoreDNS) where pods run for real. Every binary is built from
# Go modules (scripts/cluster/build.sh; versions in scripts/cluster/versions.env) and cached by
# version; containerd, runc and the CNI plugins are Debian's. AUTODEVHUB_REAL_NODE=0 leaves the
# real node out.
#
#   bash scripts/local-cluster.sh up       # build or reuse, start; prints `export KUBECONFIG=...`
#   bash scripts/local-cluster.sh down     # stop and delete the cluster
#   bash scripts/local-cluster.sh status   # exit 0 when it serves
#   bash scripts/local-cluster.sh packages # install the real node's Debian packages (as root)
#
# Idempotent: `up` on a running cluster only prints the export line. Everything lives under
# $AUTODEVHUB_CI_STATE/cluster (default /var/lib/autodevhub-ci/cluster). The control plane listens
# on 127.0.0.1 only, and the simulated nodes and pods have loopback addresses, so nothing in it
# ever sends traffic off this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=cluster/common.sh
. "$here/cluster/common.sh"
NAME=${AUTODEVHUB_CLUSTER_NAME:-autodevhub}
RUN=$OUT/run/$NAME
KUBECONFIG_FILE=$RUN/kubeconfig
export KWOK_WORKDIR=$RUN/kwok
ROLLOUTS_PID=$RUN/rollouts-controller.pid
ROLLOUTS_LOG=$RUN/rollouts-controller.log
ROLLOUTS_HEALTHZ_PORT=${AUTODEVHUB_ROLLOUTS_HEALTHZ_PORT:-18080}
ROLLOUTS_METRICS_PORT=${AUTODEVHUB_ROLLOUTS_METRICS_PORT:-18090}
REAL_NODE=${AUTODEVHUB_REAL_NODE:-1}

log() { printf '[local-cluster] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
kctl() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }
kwokctl() { "$BIN/kwokctl-$KWOK_VERSION" --name "$NAME" "$@"; }
# shellcheck source=cluster/node.sh
. "$here/cluster/node.sh"

serves() {
  [ -f "$KUBECONFIG_FILE" ] && kctl get --raw /readyz >/dev/null 2>&1
}

rollouts_running() {
  [ -f "$ROLLOUTS_PID" ] && kill -0 "$(cat "$ROLLOUTS_PID")" 2>/dev/null &&
    curl -fsS -o /dev/null "http://127.0.0.1:$ROLLOUTS_HEALTHZ_PORT/healthz" 2>/dev/null
}

# The kwok configuration: loopback only; kwok manages only its own nodes (annotated
# kwok.x-k8s.io/node=fake), never the real one; the API server reaches the real node's kubelet by
# its address with the admin client certificate, and a namespace may pick nodes and tolerations
# (PodNodeSelector, PodTolerationRestriction); kwok's own fast pod stages from its module, and the
# crash-loop stage.
kwok_config() {
  local src file=$RUN/kwok-config.yaml pki=$KWOK_WORKDIR/clusters/$NAME/pki
  src=$(cd "$here/cluster" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/kustomize/stage/pod/fast" ] || die "kwok $KWOK_VERSION sources not found in the Go module cache"
  {
    # nodeLeaseDurationSeconds: kwok holds each of its nodes' Lease under an identity that is
    # new at every start, and manages no pod of a node whose Lease another identity holds: after
    # a restart the old Lease must expire first (kwokctl's default, 200 s, left the first
    # deploys' pods Pending). 20 s (4 times kwokctl's heartbeat factor, 5), with
    # wait_kwok_leases below, bounds that wait.
    printf 'apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n  bindAddress: 127.0.0.1\n  nodeLeaseDurationSeconds: 4\n'
    cat <<EOF
componentsPatches:
  - name: kwok-controller
    extraArgs:
      - {key: node-ip, value: 127.0.0.1}
      - {key: manage-all-nodes, value: "false", override: true}
      - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
  - name: kube-apiserver
    extraArgs:
      - {key: kubelet-preferred-address-types, value: InternalIP}
      - {key: kubelet-client-certificate, value: $pki/admin.crt}
      - {key: kubelet-client-key, value: $pki/admin.key}
      - {key: enable-admission-plugins, value: "PodNodeSelector,PodTolerationRestriction"}
---
EOF
    for stage in pod-ready pod-complete pod-delete; do
      cat "$src/kustomize/stage/pod/fast/$stage.yaml"
      echo "---"
    done
    cat "$here/cluster/crash-loop-stage.yaml"
  } >"$file"
  echo "$file"
}

create() {
  local config t0=$SECONDS
  mkdir -p "$RUN"
  config=$(kwok_config)
  log "creating cluster $NAME (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
  kwokctl create cluster \
    --runtime binary \
    --kubeconfig "$KUBECONFIG_FILE" \
    --config "$config" \
    --kube-apiserver-binary "$BIN/kube-apiserver-$KUBERNETES_VERSION" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager-$KUBERNETES_VERSION" \
    --kube-scheduler-binary "$BIN/kube-scheduler-$KUBERNETES_VERSION" \
    --etcd-binary "$BIN/etcd-$ETCD_VERSION" \
    --kwok-controller-binary "$BIN/kwok-$KWOK_VERSION" \
    --kube-authorization=true \
    --wait 120s \
    --quiet-pull >&2
  log "adding two simulated nodes"
  # Pod IPs come from each node's podCIDR: loopback addresses, like the nodes' own.
  kwokctl scale node --replicas 2 --param '.podCIDR="127.128.0.0/24"' >&2
  log "installing CRDs (Argo Rollouts $ARGO_ROLLOUTS_VERSION, Prometheus operator $PROMETHEUS_OPERATOR_VERSION)"
  kctl apply --server-side -f "$OUT/crds/argo-rollouts-$ARGO_ROLLOUTS_VERSION" \
    -f "$OUT/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" >/dev/null
  kctl wait --for condition=Established --timeout 60s crd --all >/dev/null
  sha256sum "$config" | cut -c1-64 >"$RUN/kwok-config.sha256"
  log "cluster created in $((SECONDS - t0)) s"
}

# Whether the running cluster was made with this configuration (else `up` makes it again).
same_config() {
  local config
  config=$(kwok_config)
  [ -f "$RUN/kwok-config.sha256" ] && [ "$(sha256sum "$config" | cut -c1-64)" = "$(cat "$RUN/kwok-config.sha256")" ]
}

start_rollouts() {
  rollouts_running && return 0
  log "starting the Argo Rollouts controller $ARGO_ROLLOUTS_VERSION"
  # Run under its upstream name: the client's user agent, and so the field manager name in
  # managedFields, is the program's name (rollouts-controller), as on any cluster.
  mkdir -p "$RUN/bin"
  ln -sf "$BIN/rollouts-controller-$ARGO_ROLLOUTS_VERSION" "$RUN/bin/rollouts-controller"
  nohup "$RUN/bin/rollouts-controller" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --healthzPort "$ROLLOUTS_HEALTHZ_PORT" \
    --metricsport "$ROLLOUTS_METRICS_PORT" \
    --leader-elect=false \
    --loglevel warn >"$ROLLOUTS_LOG" 2>&1 &
  echo $! >"$ROLLOUTS_PID"
  for _ in $(seq 1 120); do
    rollouts_running && return 0
    kill -0 "$(cat "$ROLLOUTS_PID")" 2>/dev/null || break
    sleep 0.5
  done
  tail -n 20 "$ROLLOUTS_LOG" >&2 || true
  die "the Argo Rollouts controller did not become healthy (log: $ROLLOUTS_LOG)"
}

wait_nodes() {
  for _ in $(seq 1 120); do
    if [ "$(kctl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True)" -ge 2 ]; then
      return 0
    fi
    sleep 0.5
  done
  die "the simulated nodes did not become Ready"
}

# Until kwok holds its nodes' Leases again after a start, pods scheduled on them stay Pending:
# wait until every simulated node's Lease was renewed since `since` (epoch seconds), which only
# the kwok just started can have done.
wait_kwok_leases() {
  local since=$1
  for _ in $(seq 1 120); do
    if kctl get lease -n kube-node-lease -o json 2>/dev/null | python3 -c '
import datetime, json, sys
since = float(sys.argv[1])
kwok = [l for l in json.load(sys.stdin)["items"] if l["metadata"]["name"].startswith("node-")]
def renewed(lease):
    stamp = lease["spec"].get("renewTime")
    return bool(stamp) and datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() >= since
sys.exit(0 if kwok and all(renewed(l) for l in kwok) else 1)
' "$since"; then
      return 0
    fi
    sleep 0.5
  done
  die "kwok did not take its simulated nodes' Leases back within 60 s (log: $KWOK_WORKDIR/clusters/$NAME/logs/kwok-controller.log)"
}

up() {
  local t0=$SECONDS started
  command -v kubectl >/dev/null || die "kubectl is not on PATH"
  bash "$here/cluster/build.sh"
  if [ -f "$KUBECONFIG_FILE" ] && ! same_config; then
    log "the cluster $NAME was made with another configuration; making it again"
    down
  fi
  if serves; then
    :
  elif [ -d "$KWOK_WORKDIR/clusters/$NAME" ] && [ -f "$KUBECONFIG_FILE" ]; then
    # Its processes ended (a new session, a reboot): start them again on the same etcd data.
    log "starting the existing cluster $NAME"
    started=$(date +%s)
    if ! { kwokctl start cluster --wait 60s >&2 && serves; }; then
      log "the existing cluster did not come back; deleting and recreating it"
      down
      create
    else
      wait_kwok_leases "$started"
    fi
  else
    rm -rf "$RUN"
    create
  fi
  serves || die "the API server does not answer /readyz (logs: kwokctl --name $NAME logs kube-apiserver)"
  wait_nodes
  start_rollouts
  if [ "$REAL_NODE" = 1 ] && ! node_ready; then
    node_down  # whatever is left of an earlier node, so that it starts clean
    node_up
  fi
  log "ready in $((SECONDS - t0)) s: $(kctl version -o json 2>/dev/null | python3 -c 'import json,sys; print("server", json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null || echo '?')"
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
}

down() {
  node_down
  if [ -f "$ROLLOUTS_PID" ]; then
    kill "$(cat "$ROLLOUTS_PID")" 2>/dev/null || true
    rm -f "$ROLLOUTS_PID"
  fi
  if [ -x "$BIN/kwokctl-$KWOK_VERSION" ] && [ -d "$KWOK_WORKDIR/clusters/$NAME" ]; then
    kwokctl delete cluster >&2 || true
  fi
  rm -rf "$RUN"
  log "cluster $NAME stopped and deleted"
}

# Namespaces whose pods run on the real node (created when missing): the node selector and the
# toleration of its taint, set on the namespace (PodNodeSelector, PodTolerationRestriction), so
# the project's own manifests need no change.
real_namespace() {
  [ $# -gt 0 ] || die "usage: $0 real-namespace NAMESPACE..."
  node_ready || die "the real node is not Ready: run \`bash scripts/local-cluster.sh up\` first"
  local ns
  for ns in "$@"; do
    kctl get namespace "$ns" >/dev/null 2>&1 || kctl create namespace "$ns" >/dev/null
    kctl annotate --overwrite namespace "$ns" >/dev/null \
      scheduler.alpha.kubernetes.io/node-selector=autodevhub.io/node=real \
      scheduler.alpha.kubernetes.io/defaultTolerations='[{"key":"autodevhub.io/real-node","operator":"Exists","effect":"NoSchedule"}]'
    log "namespace $ns: its pods run on the real node $NODE_NAME"
  done
}

case "${1:-}" in
  up) up ;;
  real-namespace) shift; real_namespace "$@" ;;
  down) down ;;
  packages) [ "$REAL_NODE" != 1 ] || node_packages ;;
  status) serves && rollouts_running && { [ "$REAL_NODE" != 1 ] || node_ready; } && echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 up|down|status|packages|real-namespace NS..." >&2; exit 2 ;;
esac
