# The local cluster's real node, sourced by ../local-cluster.sh: Debian's containerd (an instance
# of its own, beside dockerd's), runc and CNI plugins on a bridge, and kubelet, kube-proxy and
# CoreDNS built from Go modules (build.sh). Pods on it run for real: images are pulled (from the
# local registry at 127.0.0.1:5000 or localhost:5000, over plain HTTP), probes are called, logs
# and port-forward work, Services reach them through kube-proxy's iptables rules and cluster DNS
# answers on the bridge's gateway.
#
# The node is tainted autodevhub.io/real-node=true:NoSchedule, so the simulated nodes keep every
# pod that does not ask for it; a namespace annotated with REAL_NODE_ANNOTATIONS (PodNodeSelector
# and PodTolerationRestriction) sends its pods here, with no change to the manifests.
#
# Leaves the host as it found it on `down`: processes, mounts under its folder, the bridge, the
# iptables chains kube-proxy and the CNI plugins made, and the sysctls kubelet changes.
# shellcheck shell=bash

NODE_NAME=${AUTODEVHUB_NODE_NAME:-$NAME-node}
NODE_DIR=$RUN/node
NODE_BRIDGE=adh0
NODE_POD_CIDR=10.244.0.0/24
NODE_GATEWAY=10.244.0.1
NODE_TAINT=autodevhub.io/real-node
NODE_LABEL=autodevhub.io/node=real
CONTAINERD_SOCK=$NODE_DIR/containerd.sock
KWOK_PKI=$KWOK_WORKDIR/clusters/$NAME/pki
# The kernel settings kubelet changes at start; `down` puts them back.
NODE_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
NODE_DEBS=(containerd runc containernetworking-plugins iptables conntrack)

node_ctl() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

node_pid_alive() { [ -f "$NODE_DIR/$1.pid" ] && kill -0 "$(cat "$NODE_DIR/$1.pid")" 2>/dev/null; }

# node_start NAME COMMAND...: run a node process in the background, its log in the node folder.
node_start() {
  local what=$1
  shift
  node_pid_alive "$what" && return 0
  nohup "$@" >"$NODE_DIR/$what.log" 2>&1 &
  echo $! >"$NODE_DIR/$what.pid"
}

node_packages() {
  local missing=() p
  for p in containerd runc ctr iptables conntrack; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ -x /usr/lib/cni/bridge ] || missing+=(cni)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "the real node needs ${missing[*]}: apt-get install ${NODE_DEBS[*]} (as root)"
  log "installing ${NODE_DEBS[*]} (Debian)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${NODE_DEBS[@]}" >/dev/null
}

node_ip() {
  ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1
}

node_config() {
  local ip=$1 pause_image=$2
  mkdir -p "$NODE_DIR/cni" "$NODE_DIR/certs.d/127.0.0.1:5000" "$NODE_DIR/certs.d/localhost:5000"
  for registry in 127.0.0.1:5000 localhost:5000; do
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$registry" "$registry" >"$NODE_DIR/certs.d/$registry/hosts.toml"
  done
  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # Root lacks CAP_SYS_RESOURCE on these VMs: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE_DIR/certs.d"
EOF
  # The firewall plugin accepts the pods' traffic in FORWARD, whose policy dockerd sets to DROP.
  cat >"$NODE_DIR/cni/10-autodevhub.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "autodevhub",
  "plugins": [
    {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_DIR/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
EOF
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDNS: [$NODE_GATEWAY]
clusterDomain: cluster.local
serializeImagePulls: false
registerWithTaints:
  - {key: $NODE_TAINT, value: "true", effect: NoSchedule}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $KWOK_PKI/ca.crt}
authorization: {mode: AlwaysAllow}
# A small CI disk must not evict the pods under test.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $NODE_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  cat >"$NODE_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_GATEWAY
    errors
    health 127.0.0.1:18081
    ready 127.0.0.1:18082
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_FILE
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    forward . /etc/resolv.conf
}
EOF
}

# The bridge exists before any pod: cluster DNS listens on its gateway address.
node_bridge() {
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr show dev "$NODE_BRIDGE" | grep -q " $NODE_GATEWAY/" || ip addr add "$NODE_GATEWAY/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
}

node_up() {
  local t0=$SECONDS ip pause_image
  node_packages
  ip=$(node_ip)
  [ -n "$ip" ] || die "no interface address for the real node (kubelet refuses loopback)"
  pause_image="autodevhub.local/pause:$PAUSE_VERSION"
  mkdir -p "$NODE_DIR"
  if [ ! -f "$NODE_DIR/sysctls.saved" ]; then
    local key
    for key in "${NODE_SYSCTLS[@]}"; do printf '%s=%s\n' "$key" "$(sysctl -n "$key")"; done >"$NODE_DIR/sysctls.saved"
  fi
  node_config "$ip" "$pause_image"
  node_bridge
  modprobe br_netfilter 2>/dev/null || true
  node_start containerd containerd --config "$NODE_DIR/containerd.toml"
  local i
  for i in $(seq 1 60); do
    node_ctl version >/dev/null 2>&1 && break
    node_pid_alive containerd || { tail -n 20 "$NODE_DIR/containerd.log" >&2; die "containerd for the real node did not start"; }
    sleep 0.25
  done
  if ! node_ctl images check "name==$pause_image" 2>/dev/null | grep -q "$pause_image"; then
    python3 "$here/cluster/oci_archive.py" "$BIN/pause-$PAUSE_VERSION" "$pause_image" "$NODE_DIR/pause.tar"
    node_ctl images import "$NODE_DIR/pause.tar" >/dev/null
  fi
  node_start coredns "$BIN/coredns-$COREDNS_BUILD" -conf "$NODE_DIR/Corefile"
  node_start kubelet "$BIN/kubelet-$KUBERNETES_VERSION" \
    --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --hostname-override "$NODE_NAME" \
    --node-ip "$ip" \
    --node-labels "$NODE_LABEL" \
    --root-dir "$NODE_DIR/kubelet" \
    --cert-dir "$NODE_DIR/kubelet-pki" \
    --v 1
  node_start kube-proxy "$BIN/kube-proxy-$KUBERNETES_VERSION" --config "$NODE_DIR/kube-proxy.yaml"
  for i in $(seq 1 120); do
    [ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && {
      log "real node $NODE_NAME Ready in $((SECONDS - t0)) s ($ip; pods on $NODE_POD_CIDR, DNS on $NODE_GATEWAY)"
      return 0
    }
    local p
    for p in containerd coredns kubelet kube-proxy; do
      node_pid_alive "$p" || { tail -n 30 "$NODE_DIR/$p.log" >&2; die "$p of the real node exited (log: $NODE_DIR/$p.log)"; }
    done
    sleep 0.5
  done
  tail -n 30 "$NODE_DIR/kubelet.log" >&2
  die "the real node $NODE_NAME did not become Ready (log: $NODE_DIR/kubelet.log)"
}

node_ready() {
  local p
  for p in containerd coredns kubelet kube-proxy; do node_pid_alive "$p" || return 1; done
  [ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

node_down() {
  [ -d "$NODE_DIR" ] || return 0
  local p
  # Pods first (their sandboxes hold mounts and network namespaces), then the processes.
  if node_pid_alive containerd; then
    node_pid_alive kubelet && kill "$(cat "$NODE_DIR/kubelet.pid")" 2>/dev/null
    node_kill_tasks
  fi
  for p in kube-proxy kubelet coredns containerd; do
    if node_pid_alive "$p"; then
      kill "$(cat "$NODE_DIR/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 40); do node_pid_alive "$p" || break; sleep 0.25; done
      node_pid_alive "$p" && kill -9 "$(cat "$NODE_DIR/$p.pid")" 2>/dev/null
    fi
    rm -f "$NODE_DIR/$p.pid"
  done
  # Shims of containers that were still running.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $CONTAINERD_SOCK" 2>/dev/null || true
  # Mounts left under the node's folder (kubelet's volumes, containerd's snapshots, netns).
  awk -v dir="$NODE_DIR" '$2 ~ "^"dir {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  "$BIN/kube-proxy-$KUBERNETES_VERSION" --cleanup >/dev/null 2>&1 || true
  node_iptables_cleanup
  ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && ip link delete "$NODE_BRIDGE"
  if [ -f "$NODE_DIR/sysctls.saved" ]; then
    while IFS= read -r line; do sysctl -q -w "$line" >/dev/null || true; done <"$NODE_DIR/sysctls.saved"
  fi
  kctl delete node "$NODE_NAME" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$NODE_DIR"
}

node_kill_tasks() {
  local task
  for task in $(node_ctl tasks list -q 2>/dev/null); do
    node_ctl tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
  done
}

# The chains kube-proxy and the CNI plugins add; `kube-proxy --cleanup` leaves some (without
# ipset it exits early), so they are removed by name, in IPv4 and IPv6.
node_iptables_cleanup() {
  local tool table chain
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      "$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-A" && ($0 ~ /KUBE-|CNI-/) {print}' |
        while IFS= read -r rule; do
          # The rule as -S prints it, quoted comments included: eval keeps its words whole.
          eval "$tool -t $table ${rule/-A/-D}" 2>/dev/null || true
        done
      for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && ($2 ~ /^(KUBE-|CNI-)/) {print $2}'); do
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && ($2 ~ /^(KUBE-|CNI-)/) {print $2}'); do
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}
